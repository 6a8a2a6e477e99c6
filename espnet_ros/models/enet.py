"""ENet (Paszke et al., 2016), the ESPNet paper's main baseline.

Initial block, bottlenecks (regular, dilated, asymmetric 5, down-sampling with pooling indices,
up-sampling with max-unpooling), PReLU in the encoder and ReLU in the decoder, no bias in the
projections, spatial dropout 0.01 in stage 1 and 0.1 afterwards.
"""
import torch
from torch import nn
from torch.nn import functional as F


def _act(prelu, n):
    return nn.PReLU(n) if prelu else nn.ReLU(inplace=True)


class InitialBlock(nn.Module):
    """13-channel 3x3 stride-2 conv concatenated with a 2x2 max-pool of the input."""

    def __init__(self, n_out=16):
        super().__init__()
        self.conv = nn.Conv2d(3, n_out - 3, 3, stride=2, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.bn = nn.BatchNorm2d(n_out)
        self.act = nn.PReLU(n_out)

    def forward(self, x):
        conv = self.conv(x)
        pooled = self.pool(x)[:, :, :conv.shape[2], :conv.shape[3]]
        return self.act(self.bn(torch.cat([conv, pooled], 1)))


class Bottleneck(nn.Module):
    """Regular / dilated / asymmetric bottleneck with a residual identity branch.

    Only the 1x1 projections drop their bias, as in the paper; the spatial convs keep it.
    """

    def __init__(self, channels, kind="regular", dilation=1, dropout=0.1, prelu=True, ratio=4):
        super().__init__()
        inner = channels // ratio
        if kind == "asymmetric":
            middle = nn.Sequential(
                nn.Conv2d(inner, inner, (5, 1), padding=(2, 0)),
                nn.Conv2d(inner, inner, (1, 5), padding=(0, 2)))
        else:
            middle = nn.Conv2d(inner, inner, 3, padding=dilation, dilation=dilation)
        self.branch = nn.Sequential(
            nn.Conv2d(channels, inner, 1, bias=False), nn.BatchNorm2d(inner), _act(prelu, inner),
            middle, nn.BatchNorm2d(inner), _act(prelu, inner),
            nn.Conv2d(inner, channels, 1, bias=False), nn.BatchNorm2d(channels),
            nn.Dropout2d(dropout))
        self.act = _act(prelu, channels)

    def forward(self, x):
        return self.act(x + self.branch(x))


class DownBottleneck(nn.Module):
    """Halves the resolution; the main branch max-pools (keeping indices) and zero-pads channels."""

    def __init__(self, n_in, n_out, dropout, prelu=True, ratio=4):
        super().__init__()
        inner = n_in // ratio
        self.pool = nn.MaxPool2d(2, stride=2, return_indices=True, ceil_mode=True)
        self.branch = nn.Sequential(
            nn.Conv2d(n_in, inner, 2, stride=2, bias=False), nn.BatchNorm2d(inner), _act(prelu, inner),
            nn.Conv2d(inner, inner, 3, padding=1), nn.BatchNorm2d(inner), _act(prelu, inner),
            nn.Conv2d(inner, n_out, 1, bias=False), nn.BatchNorm2d(n_out), nn.Dropout2d(dropout))
        self.extra = n_out - n_in
        self.act = _act(prelu, n_out)

    def forward(self, x):
        main, indices = self.pool(x)
        ext = self.branch(F.pad(x, (0, x.shape[3] % 2, 0, x.shape[2] % 2)))
        main = F.pad(main, (0, 0, 0, 0, 0, self.extra))
        return self.act(main + ext), indices, x.shape[2:]


class UpBottleneck(nn.Module):
    """Doubles the resolution; the main branch max-unpools with the encoder's indices."""

    def __init__(self, n_in, n_out, dropout, prelu=False, ratio=4):
        super().__init__()
        inner = n_in // ratio
        self.main = nn.Sequential(nn.Conv2d(n_in, n_out, 1, bias=False), nn.BatchNorm2d(n_out))
        self.unpool = nn.MaxUnpool2d(2, stride=2)
        self.reduce = nn.Sequential(nn.Conv2d(n_in, inner, 1, bias=False), nn.BatchNorm2d(inner),
                                    _act(prelu, inner))
        self.up = nn.ConvTranspose2d(inner, inner, 3, stride=2, padding=1, output_padding=1)
        self.expand = nn.Sequential(
            nn.BatchNorm2d(inner), _act(prelu, inner),
            nn.Conv2d(inner, n_out, 1, bias=False), nn.BatchNorm2d(n_out), nn.Dropout2d(dropout))
        self.act = _act(prelu, n_out)

    def forward(self, x, indices, size):
        main = self.unpool(self.main(x), indices, output_size=size)
        ext = self.expand(self.up(self.reduce(x))[:, :, :size[0], :size[1]])
        return self.act(main + ext)


def _stage23(dropout):
    layers = []
    for kind, dilation in (("regular", 1), ("dilated", 2), ("asymmetric", 1), ("dilated", 4),
                           ("regular", 1), ("dilated", 8), ("asymmetric", 1), ("dilated", 16)):
        layers.append(Bottleneck(128, kind, dilation, dropout))
    return nn.Sequential(*layers)


class ENet(nn.Module):
    def __init__(self, classes=20):
        super().__init__()
        self.initial = InitialBlock(16)
        self.down1 = DownBottleneck(16, 64, 0.01)
        self.stage1 = nn.Sequential(*[Bottleneck(64, dropout=0.01) for _ in range(4)])
        self.down2 = DownBottleneck(64, 128, 0.1)
        self.stage2 = _stage23(0.1)
        self.stage3 = _stage23(0.1)
        self.up4 = UpBottleneck(128, 64, 0.1)
        self.stage4 = nn.Sequential(*[Bottleneck(64, dropout=0.1, prelu=False) for _ in range(2)])
        self.up5 = UpBottleneck(64, 16, 0.1)
        self.stage5 = Bottleneck(16, dropout=0.1, prelu=False)
        self.fullconv = nn.ConvTranspose2d(16, classes, 2, stride=2, bias=False)

    def encode(self, x):
        """Returns the stage-3 features and the pooling indices the decoder needs."""
        x = self.initial(x)
        x, idx1, size1 = self.down1(x)
        x = self.stage1(x)
        x, idx2, size2 = self.down2(x)
        x = self.stage3(self.stage2(x))
        return x, (idx1, size1), (idx2, size2)

    def forward(self, x):
        size = x.shape[2:]
        feat, (idx1, size1), (idx2, size2) = self.encode(x)
        feat = self.stage4(self.up4(feat, idx2, size2))
        feat = self.stage5(self.up5(feat, idx1, size1))
        return self.fullconv(feat)[:, :, :size[0], :size[1]]
