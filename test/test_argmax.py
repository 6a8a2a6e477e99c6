"""The labels' argmax over NCHW logits (what OpenVINO and onnxruntime return) equals
torch.argmax, ties included, and the segmenter takes it for NCHW and NHWC logits alike."""
import numpy as np
import pytest
import torch

from espnet_ros.inference.logits import planes_argmax
from espnet_ros.inference.segmenter import Segmenter
from espnet_ros.models import create_model


@pytest.mark.parametrize("classes", [1, 2, 12, 20])
def test_planes_argmax_equals_torch_argmax_with_ties(classes):
    torch.manual_seed(classes)
    logits = torch.randint(-3, 4, (2, classes, 7, 9)).float()   # small integers: many ties
    out = torch.full((2, 7, 9), 255, dtype=torch.uint8)
    assert torch.equal(planes_argmax(logits, out), logits.argmax(1).to(torch.uint8))


def test_the_segmenter_gives_the_same_labels_for_nchw_and_nhwc_logits():
    torch.manual_seed(0)
    model, entry = create_model("espnet-p2q3-cityscapes", pretrained=False)
    model.eval()
    image = np.random.default_rng(0).integers(0, 256, (32, 64, 3), dtype=np.uint8)
    nchw = Segmenter(model, entry, input_size=(64, 32), forward=lambda x: model(x).contiguous())
    nhwc = Segmenter(model, entry, input_size=(64, 32), forward=lambda x: model(x).contiguous(
        memory_format=torch.channels_last))
    expected = model(nchw.preprocess([image])).argmax(1)[0].to(torch.uint8).numpy()
    assert np.array_equal(nchw.segment(image, output_size="model"), expected)
    assert np.array_equal(nhwc.segment(image, output_size="model"), expected)


def test_openvino_hands_on_nhwc_logits_as_an_nchw_view_with_the_same_labels():
    pytest.importorskip("openvino")
    from espnet_ros.inference.backends import create_backend
    torch.manual_seed(0)
    model, entry = create_model("espnet-p2q3-cityscapes", pretrained=False)
    model.eval()
    backend = create_backend(model, entry, (1, 3, 32, 64), "openvino", "cpu", "fp32",
                             fallback=False)
    batch = torch.randn(1, 3, 32, 64) * 0.01
    with torch.no_grad():
        expected = model(batch)
    got = backend(batch)
    assert got.shape == expected.shape
    assert got.is_contiguous(memory_format=torch.channels_last) and not got.is_contiguous()
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-4)
    segmenter = Segmenter(model, entry, input_size=(64, 32), forward=backend)
    image = np.random.default_rng(1).integers(0, 256, (32, 64, 3), dtype=np.uint8)
    reference = Segmenter(model, entry, input_size=(64, 32))
    assert (segmenter.segment(image, output_size="model")
            == reference.segment(image, output_size="model")).mean() > 0.999
