"""ESPNet-A, -B, -C (encoders, output at 1/8) and ESPNet (ESPNet-C + reduce-upsample-merge decoder).

Variants as in the paper (Mehta et al., ECCV 2018, Fig. 4):
  A: conv -> strided ESP -> alpha2 x ESP -> strided ESP -> alpha3 x ESP -> 1x1 classifier
  B: A plus concatenation of each level's first (strided) and last ESP outputs
  C: B plus input reinforcement (the RGB image, average-pooled, joins levels 1 and 2)

Ablation switches (training only; the defaults are the paper's design and the published
checkpoints' graph): ``residual`` (the ESP modules' skip connection), ``hff`` (hierarchical
feature fusion in every ESP module), ``act`` ("prelu" or "relu", everywhere), ``downsample``
("esp": strided ESP modules; "conv": a strided 3x3 conv, BN and activation instead).
"""
import torch
from torch import nn

from .esp import ACTIVATIONS, ESP, BNAct, Conv, ConvBNAct, InputProjection, StridedESP

VARIANTS = ("A", "B", "C")
ABLATION_DEFAULTS = {"residual": True, "hff": True, "act": "prelu", "downsample": "esp"}
DOWNSAMPLERS = ("esp", "conv")
# Input channels of the decoder's last 3x3 conv besides the C class maps: the level-1 conv
# output (16, Cityscapes checkpoints) or that plus the reinforced RGB image (19, CamVid).
DECODER_SKIPS = {"l1": 16, "l1_rgb": 19}


def crop_to(x, ref):
    """Crop an up-sampled map to the spatial size of ``ref`` (odd input sizes round up)."""
    h, w = ref.shape[2], ref.shape[3]
    if x.shape[2] == h and x.shape[3] == w:
        return x
    return x[:, :, :h, :w]


def check_ablation(residual, hff, act, downsample):
    if act not in ACTIVATIONS:
        raise ValueError("act must be one of %s, got %r" % (ACTIVATIONS, act))
    if downsample not in DOWNSAMPLERS:
        raise ValueError("downsample must be one of %s, got %r" % (DOWNSAMPLERS, downsample))
    for name, value in (("residual", residual), ("hff", hff)):
        if not isinstance(value, bool):
            raise ValueError("%s must be true or false, got %r" % (name, value))


def _downsampler(n_in, n_out, k, hff, act, downsample):
    if downsample == "conv":
        return ConvBNAct(n_in, n_out, 3, 2, act)
    return StridedESP(n_in, n_out, k, hff, act)


class ESPNetEncoder(nn.Module):
    def __init__(self, classes=20, alpha2=2, alpha3=8, k=5, variant="C", residual=True,
                 hff=True, act="prelu", downsample="esp"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError("variant must be one of %s, got %r" % (VARIANTS, variant))
        check_ablation(residual, hff, act, downsample)
        self.variant = variant
        share = variant in ("B", "C")
        self.reinforce = variant == "C"
        l1_ch = 16 + (3 if self.reinforce else 0)
        l2_ch = (128 if share else 64) + (3 if self.reinforce else 0)
        l3_ch = 256 if share else 128
        self.level1 = ConvBNAct(3, 16, 3, 2, act)
        if self.reinforce:
            self.sample1 = InputProjection(1)
            self.sample2 = InputProjection(2)
            self.b1 = BNAct(l1_ch, act)
        self.level2_0 = _downsampler(l1_ch, 64, k, hff, act, downsample)
        self.level2 = nn.ModuleList([ESP(64, 64, k, residual, hff, act) for _ in range(alpha2)])
        if share:
            self.b2 = BNAct(l2_ch, act)
        self.level3_0 = _downsampler(l2_ch, 128, k, hff, act, downsample)
        self.level3 = nn.ModuleList([ESP(128, 128, k, residual, hff, act) for _ in range(alpha3)])
        if share:
            self.b3 = BNAct(l3_ch, act)
        self.classifier = Conv(l3_ch, classes, 1)

    def features(self, x):
        """Returns (level-1 conv output, level-1 merged, level-2 merged, level-3 merged)."""
        out0 = self.level1(x)
        merged0 = out0
        if self.reinforce:
            merged0 = self.b1(torch.cat([out0, self.sample1(x)], 1))
        down1 = self.level2_0(merged0)
        out1 = down1
        for layer in self.level2:
            out1 = layer(out1)
        merged1 = out1
        if self.variant != "A":
            parts = [out1, down1] + ([self.sample2(x)] if self.reinforce else [])
            merged1 = self.b2(torch.cat(parts, 1))
        down2 = self.level3_0(merged1)
        out2 = down2
        for layer in self.level3:
            out2 = layer(out2)
        merged2 = out2 if self.variant == "A" else self.b3(torch.cat([down2, out2], 1))
        return out0, merged0, merged1, merged2

    def forward(self, x):
        return self.classifier(self.features(x)[3])


class ESPNet(nn.Module):
    """ESPNet-C encoder with the light-weight reduce-upsample-merge decoder; full-resolution logits."""

    def __init__(self, classes=20, alpha2=2, alpha3=8, k=5, decoder_skip="l1", residual=True,
                 hff=True, act="prelu", downsample="esp"):
        super().__init__()
        if decoder_skip not in DECODER_SKIPS:
            raise ValueError("decoder_skip must be one of %s" % sorted(DECODER_SKIPS))
        self.decoder_skip = decoder_skip
        self.encoder = ESPNetEncoder(classes, alpha2, alpha3, k, "C", residual, hff, act,
                                     downsample)
        self.level3_C = Conv(128 + 3, classes, 1)
        self.br = nn.BatchNorm2d(classes, eps=1e-3)
        self.conv = ConvBNAct(DECODER_SKIPS[decoder_skip] + classes, classes, 3, 1, act)
        self.up_l3 = nn.Sequential(nn.ConvTranspose2d(classes, classes, 2, stride=2, bias=False))
        # The decoder's ESP module has C outputs: with fewer classes than branches it keeps
        # one channel per branch (K = C); for C >= K it is the original module.
        self.combine_l2_l3 = nn.Sequential(
            BNAct(2 * classes, act),
            ESP(2 * classes, classes, min(k, classes), add=False, hff=hff, act=act))
        self.up_l2 = nn.Sequential(nn.ConvTranspose2d(classes, classes, 2, stride=2, bias=False),
                                   BNAct(classes, act))
        self.classifier = nn.ConvTranspose2d(classes, classes, 2, stride=2, bias=False)

    def forward(self, x):
        out0, merged0, merged1, merged2 = self.encoder.features(x)
        up3 = crop_to(self.up_l3(self.br(self.encoder.classifier(merged2))), merged1)
        level2 = self.level3_C(merged1)
        up2 = self.up_l2(self.combine_l2_l3(torch.cat([level2, up3], 1)))
        skip = out0 if self.decoder_skip == "l1" else merged0
        merged = self.conv(torch.cat([crop_to(up2, skip), skip], 1))
        return crop_to(self.classifier(merged), x)
