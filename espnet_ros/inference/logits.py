"""From a forward callable's logits to labels: the encoder variants' upsampling, the argmax and
the confidence.

``Segmenter`` and the accuracy gate (which compares two forward callables, e.g. eager PyTorch
and a compiled OpenVINO model) both take their labels here. Imports nothing of the project.
"""
import torch
from torch.nn import functional as F


def model_logits(forward, batch):
    """``forward(batch)`` without autograd, at the batch's resolution.

    Encoder-only variants predict at 1/8; the original code upsamples the logits x8
    bilinearly with align_corners=True before the argmax.
    """
    with torch.no_grad():
        out = forward(batch)
    if out.shape[2:] != batch.shape[2:]:
        out = F.interpolate(out.float(), size=batch.shape[2:], mode="bilinear",
                            align_corners=True)
    return out


def planes_argmax(logits, out):
    """argmax over the channels of NCHW ``logits`` into ``out`` (uint8 NxHxW), first maximum on
    ties as torch.argmax. A running maximum over the contiguous class planes: torch.argmax(1)
    strides across them (measured at 1024x512, 20 classes: 100 ms against 30 ms, 2 threads)."""
    best = logits[:, 0].clone()
    out.zero_()
    for c in range(1, logits.shape[1]):
        plane = logits[:, c]
        better = plane > best
        torch.maximum(best, plane, out=best)
        out.masked_fill_(better, c)
    return out


def argmax_labels(logits, out=None):
    """Labels (uint8 NxHxW tensor) of NCHW ``logits``, written into ``out`` when its shape fits,
    else into a new tensor."""
    shape = (logits.shape[0],) + tuple(logits.shape[2:])
    if out is None or tuple(out.shape) != shape:
        out = torch.empty(shape, dtype=torch.uint8)
    if logits.device.type == "cpu" and logits.dim() == 4 and logits.is_contiguous():
        planes_argmax(logits, out)
    else:
        out.copy_(logits.argmax(1))
    return out


def max_probability(logits):
    """Per-pixel maximum class probability (float32 NxHxW numpy array):
    max softmax = 1 / sum(exp(logit - max logit)), without a full softmax tensor."""
    logits = logits.float()
    top = logits.max(1, keepdim=True)[0]
    return torch.reciprocal(torch.exp(logits - top).sum(1)).cpu().numpy()
