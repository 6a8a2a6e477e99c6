"""Pipeline.run: labels, colour mask, overlay, confidence and timing of one frame."""
import logging

import cv2
import numpy as np
import pytest
import torch

from espnet_ros.inference import Buffers, Pipeline, Renderer, Segmenter, palette_lut

MODEL = "espnet-p2q3-cityscapes"
SIZE = (128, 64)


@pytest.fixture(scope="module")
def pipeline(data_dir):
    return Pipeline.build(MODEL, input_size=SIZE)


@pytest.fixture(scope="module")
def frame(city_frame):
    return cv2.resize(city_frame, (331, 167), interpolation=cv2.INTER_AREA)  # odd on purpose


def test_labels_are_the_segmenters_for_either_channel_order(pipeline, frame):
    expected = pipeline.segmenter.segment(frame, "bgr", "input")
    out = pipeline.run(frame, "bgr")
    assert out.labels.shape == frame.shape[:2] and np.array_equal(out.labels, expected)
    rgb = np.ascontiguousarray(frame[..., ::-1])
    assert np.array_equal(pipeline.run(rgb, "rgb").labels, expected)
    model = pipeline.run(frame, "bgr", "model")
    assert model.labels.shape == (SIZE[1], SIZE[0])
    assert np.array_equal(model.labels, pipeline.segmenter.segment(frame, "bgr", "model"))


def test_colour_mask_and_overlay_equal_painting_the_full_size_labels(pipeline, frame):
    out = pipeline.run(frame, "bgr", color=True, overlay=True)
    labels = out.labels.copy()
    lut = palette_lut(pipeline.entry.palette, "rgb")
    assert np.array_equal(out.color, lut[labels])  # painted small, enlarged: the same pixels
    mask_bgr = palette_lut(pipeline.entry.palette, "bgr")[labels]
    expected = cv2.addWeighted(frame, 0.5, mask_bgr, 0.5, 0.0)
    assert np.array_equal(out.overlay, expected)
    rgb = np.ascontiguousarray(frame[..., ::-1])
    rgb_out = pipeline.run(rgb, "rgb", overlay=True)
    assert np.array_equal(rgb_out.overlay, expected[..., ::-1])  # the input's own order


def test_hidden_classes_stay_black_in_the_mask_and_untouched_in_the_overlay(pipeline, frame):
    common = int(np.bincount(pipeline.run(frame).labels.ravel()).argmax())
    pipeline.renderer.set_visible([common])  # one class drawn, the others hidden
    try:
        out = pipeline.run(frame, "bgr", color=True, overlay=True)
        hidden = out.labels != common
        assert hidden.any() and (~hidden).any()
        assert not out.color[hidden].any()
        assert np.array_equal(out.overlay[hidden], frame[hidden])
        assert not np.array_equal(out.overlay[~hidden], frame[~hidden])
    finally:
        pipeline.renderer.set_visible(None)


def test_outputs_are_written_into_the_callers_buffers(pipeline, frame):
    h, w = frame.shape[:2]
    buffers = Buffers(np.zeros((h, w), np.uint8), np.zeros((h, w, 3), np.uint8),
                      np.zeros((h, w, 3), np.uint8), np.zeros((h, w), np.float32))
    out = pipeline.run(frame, "bgr", color=True, overlay=True, confidence=True, out=buffers)
    for produced, given in zip((out.labels, out.color, out.overlay, out.confidence), buffers):
        assert produced is given
    assert np.array_equal(out.labels, pipeline.segmenter.segment(frame))


def test_model_resolution_overlay_uses_the_area_resized_image(pipeline, frame):
    out = pipeline.run(frame, "bgr", "model", overlay=True)
    base = cv2.resize(frame, SIZE, interpolation=cv2.INTER_AREA)
    expected = Renderer(pipeline.entry.palette).overlay(base, out.labels.copy(), "bgr")
    assert out.overlay.shape == (SIZE[1], SIZE[0], 3) and np.array_equal(out.overlay, expected)


def test_confidence_is_the_maximum_class_probability_of_each_label(pipeline, frame):
    out = pipeline.run(frame, "bgr", "model", confidence=True)
    seg = pipeline.segmenter
    with torch.no_grad():
        logits = seg.logits(seg.preprocess([frame], "bgr")).float()
    probabilities = torch.softmax(logits, 1)[0]
    expected = probabilities.max(0)[0].numpy()
    assert out.confidence.dtype == np.float32 and out.confidence.shape == out.labels.shape
    np.testing.assert_allclose(out.confidence, expected, rtol=1e-5, atol=1e-6)
    assert (out.confidence > 1.0 / pipeline.entry.num_classes - 1e-6).all()
    assert (out.confidence <= 1.0 + 1e-6).all()
    full = pipeline.run(frame, "bgr", "input", confidence=True)
    assert full.confidence.shape == frame.shape[:2]
    assert set(np.unique(full.confidence)) <= set(np.unique(out.confidence))  # nearest: no new values


def test_timing_has_every_stage_and_zero_for_what_was_not_asked(pipeline, frame):
    timing = pipeline.run(frame, "bgr").timing
    assert timing.preprocess_ms > 0 and timing.inference_ms > 0
    assert timing.color_ms >= 0 and timing.confidence_ms >= 0
    assert timing.total_ms == pytest.approx(sum(timing))
    full = pipeline.run(frame, "bgr", color=True, overlay=True, confidence=True).timing
    assert full.color_ms > 0 and full.overlay_ms > 0 and full.confidence_ms > 0


def test_a_batch_gives_each_image_its_own_outputs(pipeline, frame):
    other = np.ascontiguousarray(frame[:, ::-1])
    results = pipeline.run_batch([frame, other], "bgr", color=True, overlay=True)
    assert np.array_equal(results[0].labels, pipeline.segmenter.segment(frame))
    assert np.array_equal(results[1].labels, pipeline.segmenter.segment(other))
    assert not np.shares_memory(results[0].color, results[1].color)
    assert not np.array_equal(results[0].overlay, results[1].overlay)


def test_palette_switch_keeps_alpha_and_visible_classes(pipeline):
    pipeline.renderer.alpha = 0.8
    pipeline.renderer.set_visible([1, 2])
    try:
        pipeline.set_palette("generic")
        assert pipeline.renderer.alpha == 0.8 and pipeline.renderer.visible == [1, 2]
        assert pipeline.renderer.palette != tuple(tuple(c) for c in pipeline.entry.palette)
        with pytest.raises(ValueError, match="palette"):
            pipeline.set_palette("rainbow")
    finally:
        pipeline.set_palette("dataset")
        pipeline.renderer.alpha = 0.5
        pipeline.renderer.set_visible(None)


def test_a_fallback_is_decided_once_for_every_input_shape(data_dir, caplog):
    """torch2trt cannot run here: the replacement is chosen (and logged) once, not per shape."""
    with caplog.at_level(logging.WARNING, logger="espnet_ros"):
        seg = Segmenter.from_zoo(MODEL, backend="torch2trt", device="cpu", input_size=None)
        for size in ((64, 32), (96, 48), (128, 64)):
            seg.segment(np.zeros((size[1], size[0], 3), np.uint8))
    warnings = [r for r in caplog.records if "falling back" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert seg.backend_name == "torch"
    assert seg.backend.info["fallback"].count("falling back") == 1
