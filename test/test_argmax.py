"""The labels' argmax over NCHW logits (what OpenVINO and onnxruntime return) equals
torch.argmax, ties included, and the segmenter takes it for NCHW and NHWC logits alike."""
import numpy as np
import pytest
import torch

from espnet_ros.inference.segmenter import Segmenter, planes_argmax
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
