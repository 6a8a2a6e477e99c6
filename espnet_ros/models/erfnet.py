"""ERFNet (Romera et al., 2017), the ESPNet paper's second baseline.

Encoder: two down-samplers (3 -> 16 -> 64), five non-bottleneck-1D blocks at 64 channels, a
third down-sampler (-> 128) and eight non-bottleneck-1D blocks at 128 channels whose second
pair of factorized convolutions is dilated 2, 4, 8, 16, twice over. Decoder: transposed-conv
up-samplers (128 -> 64 -> 16), two non-bottleneck-1D blocks after each, and a 2x2 transposed
conv to the classes at full resolution (the kernel size of that last layer is the authors'
code's; the paper lists only the layer).

A down-sampler concatenates a 3x3 stride-2 convolution (n_out - n_in channels) with a 2x2
max-pool of its input, then BatchNorm and ReLU. A non-bottleneck-1D block is a residual block
of two (3x1, ReLU, 1x3) pairs with BatchNorm after each pair; the second pair carries the
dilation. Dropout 0.03 at 64 channels and 0.3 at 128 in the encoder, none in the decoder.
ReLU throughout; every convolution has a bias.

Blocks are ``nn.Sequential`` where the order allows, so the CPU steps fold the BatchNorms.
"""
import torch
from torch import nn

BN_EPS = 1e-3
ENCODER_DILATIONS = (2, 4, 8, 16, 2, 4, 8, 16)


class Downsampler(nn.Module):
    """Halves the resolution: [3x3 stride-2 conv (n_out - n_in), 2x2 max-pool (n_in)] -> BN, ReLU."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.conv = nn.Conv2d(n_in, n_out - n_in, 3, stride=2, padding=1)
        # ceil_mode: the pooled map has the conv's size, ceil(n/2), for odd sizes too.
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.bn = nn.BatchNorm2d(n_out, eps=BN_EPS)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))


def _factorized(channels, dilation):
    """3x1 conv, ReLU, 1x3 conv, both with ``dilation`` along their long axis."""
    return [nn.Conv2d(channels, channels, (3, 1), padding=(dilation, 0), dilation=(dilation, 1)),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, (1, 3), padding=(0, dilation), dilation=(1, dilation))]


class NonBottleneck1D(nn.Module):
    """Residual block of two factorized 3x3 convolutions; the second pair is dilated."""

    def __init__(self, channels, dilation=1, dropout=0.0):
        super().__init__()
        layers = _factorized(channels, 1) + [nn.BatchNorm2d(channels, eps=BN_EPS),
                                             nn.ReLU(inplace=True)]
        layers += _factorized(channels, dilation) + [nn.BatchNorm2d(channels, eps=BN_EPS)]
        if dropout:
            layers.append(nn.Dropout2d(dropout))
        self.branch = nn.Sequential(*layers)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(x + self.branch(x))


class Upsampler(nn.Sequential):
    """Doubles the resolution: 3x3 stride-2 transposed conv, BN, ReLU."""

    def __init__(self, n_in, n_out):
        super().__init__(nn.ConvTranspose2d(n_in, n_out, 3, stride=2, padding=1, output_padding=1),
                         nn.BatchNorm2d(n_out, eps=BN_EPS), nn.ReLU(inplace=True))


class ERFNetEncoder(nn.Module):
    """The encoder (output at 1/8); with ``classes`` it ends in a 1x1 classifier, the model the
    first training stage trains against labels down-sampled x8, as the ERFNet authors did."""

    def __init__(self, classes=None):
        super().__init__()
        layers = [Downsampler(3, 16), Downsampler(16, 64)]
        layers += [NonBottleneck1D(64, 1, 0.03) for _ in range(5)]
        layers.append(Downsampler(64, 128))
        layers += [NonBottleneck1D(128, d, 0.3) for d in ENCODER_DILATIONS]
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(128, classes, 1) if classes else None

    def forward(self, x):
        features = self.layers(x)
        return features if self.classifier is None else self.classifier(features)


class ERFNet(nn.Module):
    """Encoder and decoder; full-resolution logits (cropped back for odd input sizes)."""

    def __init__(self, classes=20):
        super().__init__()
        self.encoder = ERFNetEncoder()
        self.decoder = nn.Sequential(
            Upsampler(128, 64), NonBottleneck1D(64), NonBottleneck1D(64),
            Upsampler(64, 16), NonBottleneck1D(16), NonBottleneck1D(16),
            nn.ConvTranspose2d(16, classes, 2, stride=2))

    def forward(self, x):
        out = self.decoder(self.encoder(x))
        return out[:, :, :x.shape[2], :x.shape[3]]
