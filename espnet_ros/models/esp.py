"""Building blocks of ESPNet: the ESP module, its strided form and the small conv wrappers.

Attribute names (``conv``, ``bn``, ``act``, ``c1``, ``d1``, ``d2`` ...) follow the original
implementation so that the published state dicts load with strict key matching.
"""
from typing import List

import torch
from torch import nn

BN_EPS = 1e-3


class Conv(nn.Module):
    """KxK convolution without bias, 'same' padding for odd kernels and any dilation."""

    def __init__(self, n_in, n_out, kernel, stride=1, dilation=1):
        super().__init__()
        padding = (kernel - 1) // 2 * dilation
        self.conv = nn.Conv2d(n_in, n_out, kernel, stride=stride, padding=padding,
                              dilation=dilation, bias=False)

    def forward(self, x):
        return self.conv(x)


ACTIVATIONS = ("prelu", "relu")


def activation(kind, n):
    """PReLU with one slope per channel (the paper's choice), or ReLU (its ablation)."""
    if kind == "prelu":
        return nn.PReLU(n)
    if kind == "relu":
        return nn.ReLU(inplace=True)
    raise ValueError("activation must be one of %s, got %r" % (ACTIVATIONS, kind))


class BNAct(nn.Module):
    """BatchNorm followed by PReLU (or ReLU)."""

    def __init__(self, n, act="prelu"):
        super().__init__()
        self.bn = nn.BatchNorm2d(n, eps=BN_EPS)
        self.act = activation(act, n)

    def forward(self, x):
        return self.act(self.bn(x))


class ConvBNAct(nn.Module):
    """Convolution, BatchNorm, PReLU (or ReLU)."""

    def __init__(self, n_in, n_out, kernel, stride=1, act="prelu"):
        super().__init__()
        padding = (kernel - 1) // 2
        self.conv = nn.Conv2d(n_in, n_out, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(n_out, eps=BN_EPS)
        self.act = activation(act, n_out)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


def dilation_rates(k: int) -> List[int]:
    """Rates of the K parallel branches: 1, 2, 4, ..., 2^(K-1)."""
    return [2 ** i for i in range(k)]


def branch_widths(n_out: int, k: int) -> List[int]:
    """Output channels of each branch; the first takes the remainder so they sum to n_out."""
    n = n_out // k
    if n < 1:
        raise ValueError("ESP module with %d output channels cannot have K=%d branches" % (n_out, k))
    return [n_out - (k - 1) * n] + [n] * (k - 1)


class _ESPBase(nn.Module):
    """Reduce, split into K dilated branches, fuse hierarchically, concatenate."""

    def __init__(self, n_out, k, hff):
        super().__init__()
        self.k = k
        self.hff = hff
        widths = branch_widths(n_out, k)
        self.reduced = widths[-1]  # every branch but the first has this width (K=1: the only one)
        self.rates = dilation_rates(k)
        for rate, width in zip(self.rates, widths):
            setattr(self, "d%d" % rate, Conv(self.reduced, width, 3, 1, rate))

    def _fuse(self, reduced):
        outputs = [getattr(self, "d%d" % rate)(reduced) for rate in self.rates]
        if not self.hff:
            return torch.cat(outputs, 1)
        fused = outputs[:2]
        total = outputs[1] if len(outputs) > 1 else None
        for out in outputs[2:]:
            total = total + out
            fused.append(total)
        return torch.cat(fused, 1)


class ESP(_ESPBase):
    """ESP module: 1x1 reduce to N/K, K dilated 3x3 branches, HFF, optional residual, BN+PReLU."""

    def __init__(self, n_in, n_out, k=5, add=True, hff=True, act="prelu"):
        super().__init__(n_out, k, hff)
        self.c1 = Conv(n_in, self.reduced, 1)
        self.bn = BNAct(n_out, act)
        self.add = add and n_in == n_out

    def forward(self, x):
        out = self._fuse(self.c1(x))
        if self.add:
            out = x + out
        return self.bn(out)


class StridedESP(_ESPBase):
    """ESP module that halves the resolution: the reduction is a strided 3x3 conv."""

    def __init__(self, n_in, n_out, k=5, hff=True, act="prelu"):
        super().__init__(n_out, k, hff)
        self.c1 = Conv(n_in, self.reduced, 3, stride=2)
        self.bn = nn.BatchNorm2d(n_out, eps=BN_EPS)
        self.act = activation(act, n_out)

    def forward(self, x):
        return self.act(self.bn(self._fuse(self.c1(x))))


class InputProjection(nn.Module):
    """Down-samples the RGB input ``times`` times (3x3 average pooling, stride 2)."""

    def __init__(self, times):
        super().__init__()
        self.pool = nn.ModuleList([nn.AvgPool2d(3, stride=2, padding=1) for _ in range(times)])

    def forward(self, x):
        for pool in self.pool:
            x = pool(x)
        return x


def esp_conv_params(n_in: int, n_out: int, k: int, kernel: int = 3) -> int:
    """Conv weights of one ESP module by the paper's formula NM/K + (nM)^2/K (M divisible by K)."""
    return (n_in * n_out + (kernel * n_out) ** 2) // k
