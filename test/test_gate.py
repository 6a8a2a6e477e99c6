"""The accuracy gate compares two forward callables (no Segmenter, no OpenVINO needed): it sees
the labels the segmenter would give, refuses a candidate that changes them, and scores both
against ground truth where the frames have it."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from espnet_ros.inference import Preprocessor, Segmenter
from espnet_ros.inference.calibration import run_gate
from espnet_ros.models import create_model

SIZE = (64, 32)


def _frames(count=3, seed=0, shape=(40, 80, 3)):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(count)]


def _model(name):
    torch.manual_seed(0)
    model, entry = create_model(name, pretrained=False)
    return model.eval(), entry


@pytest.mark.parametrize("name", ["espnet-p2q3-cityscapes", "espnet-c"])  # full and 1/8 logits
def test_the_same_forward_passes_with_full_agreement(name):
    model, entry = _model(name)
    result = run_gate(model, model, Preprocessor(entry.normalization, SIZE), _frames(), entry)
    assert result.passed and result.agreement_min == 1.0 and result.frames == 3
    assert result.miou_fp32 is None   # no labelled frames: agreement only


def _swapping(model, first, second):
    """A candidate whose logits of two classes trade places on the left half of the frame."""
    def forward(batch):
        out = model(batch).clone()
        half = out.shape[3] // 2
        out[:, [first, second], :, :half] = out[:, [second, first], :, :half]
        return out
    return forward


def test_a_candidate_that_changes_labels_is_refused_with_its_agreement():
    model, entry = _model("espnet-p2q3-cityscapes")
    preprocess = Preprocessor(entry.normalization, SIZE)
    frames = _frames()
    segmenter = Segmenter(model, entry, input_size=SIZE)
    common = np.bincount(segmenter.segment(frames[0], output_size="model").ravel()).argsort()
    candidate = _swapping(model, int(common[-1]), int(common[-2]))
    result = run_gate(model, candidate, preprocess, frames, entry)
    # The gate's labels are the segmenter's: its agreement is what they say.
    expected = min(float((segmenter.segment(f, output_size="model").copy() ==
                          Segmenter(model, entry, input_size=SIZE, forward=candidate)
                          .segment(f, output_size="model")).mean()) for f in frames)
    assert not result.passed and result.agreement_min == pytest.approx(expected)
    assert result.agreement_min < 0.99 and result.reasons[0].startswith("pixel agreement")


def test_labelled_frames_give_both_mious():
    model, entry = _model("espnet-p2q3-cityscapes")
    frames = _frames(shape=(SIZE[1], SIZE[0], 3))
    segmenter = Segmenter(model, entry, input_size=SIZE)
    # Ground truth = the reference's own labels (frames at the model's size: no resampling of
    # a random model's noisy labels), the void output ignored.
    truths = [np.where(label == entry.void_id, 255, label).astype(np.uint8)
              for label in (segmenter.segment(f).copy() for f in frames)]
    dataset = SimpleNamespace(kind="fake", num_classes=19, classes=entry.classes[:19],
                              ignore_index=255, read_label=lambda i: truths[i])
    result = run_gate(model, model, Preprocessor(entry.normalization, SIZE), frames, entry,
                      dataset)
    assert result.miou_fp32 == pytest.approx(100.0) and result.miou_drop == pytest.approx(0.0)
    other = SimpleNamespace(**dict(vars(dataset), num_classes=3, classes=("a", "b", "c")))
    assert run_gate(model, model, Preprocessor(entry.normalization, SIZE), frames, entry,
                    other).miou_fp32 is None   # other classes than the model's: agreement only
