"""Class-balanced cross entropy, with the weighting of ENet and ESPNet: w_c = 1 / ln(c + p_c).

p_c is class c's share of the labelled training pixels. ENet uses c = 1.02; the ESPNet code
uses c = 1.10 (its ``normVal``), which bounds the weights more tightly (at most 1/ln(1.10),
about 10.5, against 50.5).
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

from ..data.base import IGNORE_INDEX


def class_weights(histogram, c: float) -> torch.Tensor:
    """``histogram``: labelled pixels per class. A class never seen gets the largest weight."""
    if c <= 1.0:
        raise ValueError("the weighting constant must exceed 1 (ln(c + p) > 0), got %g" % c)
    total = float(sum(histogram))
    if total <= 0:
        raise ValueError("the training split has no labelled pixels")
    return torch.tensor([1.0 / math.log(c + count / total) for count in histogram],
                        dtype=torch.float32)


class SegmentationLoss(nn.Module):
    """Weighted cross entropy over logits (N, C, H, W) and targets (N, H, W), ignoring 255."""

    def __init__(self, weight=None, ignore_index=IGNORE_INDEX):
        super().__init__()
        self.register_buffer("weight", weight if weight is not None else None)
        self.ignore_index = ignore_index

    def forward(self, logits, target):
        """The weighted mean over the labelled pixels, as ``F.cross_entropy``'s "mean"."""
        total, weight = self.sum_and_weight(logits, target)
        if float(weight) <= 0:
            return total * 0.0  # an all-ignore batch: no signal, and no NaN from 0/0
        return total / weight

    def sum_and_weight(self, logits, target):
        """(sum of the weighted per-pixel losses, sum of their weights): the weighted mean is
        their ratio. A distributed run divides by the weight summed over all processes, so N
        processes compute the gradient of the one-process mean over the same frames."""
        self._check(logits, target)
        total = F.cross_entropy(logits.float(), target, weight=self.weight,
                                ignore_index=self.ignore_index, reduction="sum")
        valid = target != self.ignore_index
        if self.weight is None:
            weight = valid.sum().float()
        else:
            weight = self.weight[target[valid]].sum()
        return total, weight.detach()

    def _check(self, logits, target):
        if logits.shape[2:] != target.shape[1:]:
            raise ValueError("logits %s and target %s differ in size (label_stride wrong for "
                             "this architecture?)" % (tuple(logits.shape), tuple(target.shape)))
        if self.weight is not None and logits.shape[1] != self.weight.numel():
            raise ValueError("%d logits for %d class weights" % (logits.shape[1], self.weight.numel()))
