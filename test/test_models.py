import collections

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from espnet_ros.models import ENet, ERFNet, ERFNetEncoder, ESPNet, ESPNetEncoder, build, zoo
from espnet_ros.models.complexity import count_macs, count_parameters
from espnet_ros.models.erfnet import Downsampler, NonBottleneck1D
from espnet_ros.models.esp import ESP, ConvBNAct, StridedESP, branch_widths, esp_conv_params
from espnet_ros.models.espnet import ABLATION_DEFAULTS


@pytest.mark.parametrize("q, expected", [(8, 364569), (5, 267417), (3, 202649)])
def test_espnet_parameters_match_published(q, expected):
    assert count_parameters(ESPNet(20, 2, q)) == expected


def test_espnet_c_parameters_match_published():
    assert count_parameters(ESPNetEncoder(20, 2, 8, variant="C")) == 349449


@pytest.mark.parametrize("n_in, n_out, k", [(100, 100, 5), (64, 64, 4), (120, 60, 3)])
def test_esp_module_conv_parameters_follow_paper_formula(n_in, n_out, k):
    module = ESP(n_in, n_out, k)
    conv = sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv == esp_conv_params(n_in, n_out, k)


def test_branch_widths_give_remainder_to_first_branch():
    assert branch_widths(64, 5) == [16, 12, 12, 12, 12]
    assert sum(branch_widths(131, 4)) == 131
    with pytest.raises(ValueError):
        branch_widths(3, 5)


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
def test_k_is_a_real_parameter(k):
    module = ESP(64, 64, k)
    assert module.rates == [2 ** i for i in range(k)]
    assert module(torch.rand(1, 64, 9, 11)).shape == (1, 64, 9, 11)
    assert StridedESP(19, 64, k)(torch.rand(1, 19, 9, 11)).shape == (1, 64, 5, 6)


@pytest.mark.parametrize("name", [e.name for e in zoo.entries() if not e.weights_file])
@pytest.mark.parametrize("height, width", [(64, 128), (67, 101), (33, 45)])
def test_forward_shapes_for_every_variant_and_odd_sizes(name, height, width):
    entry = zoo.get(name)
    model = build(entry).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, height, width))
    stride = entry.output_stride
    expected = (2, entry.num_classes, -(-height // stride), -(-width // stride))
    assert tuple(out.shape) == expected


@pytest.mark.parametrize("arch", ["espnet-a", "espnet-b", "espnet-c"])
def test_the_encoder_variant_follows_the_arch_alone(arch):
    """The zoo entry and a trained checkpoint's entry (whose arch_args name no variant) both
    build the variant their arch names; an explicit variant in arch_args still wins."""
    entry = zoo.get(arch)
    assert "variant" not in entry.arch_args
    assert build(entry).variant == arch[-1].upper()
    assert build(entry._replace(arch_args=dict(entry.arch_args, variant="A"))).variant == "A"


def test_an_unknown_architecture_is_a_value_error():
    with pytest.raises(ValueError, match="unknown architecture 'segnet'"):
        build(zoo.get("enet")._replace(arch="segnet"))


@pytest.mark.parametrize("classes", [1, 2, 3, 19, 40])
def test_models_build_for_any_class_count(classes):
    for model in (ESPNet(classes, 1, 1, k=4), ENet(classes), ESPNetEncoder(classes, 1, 1),
                  ERFNet(classes)):
        assert model.eval()(torch.rand(1, 3, 48, 64)).shape[1] == classes


def test_decoder_skip_variants():
    assert ESPNet(12, 2, 8, decoder_skip="l1_rgb").conv.conv.in_channels == 31
    assert ESPNet(20, 2, 8, decoder_skip="l1").conv.conv.in_channels == 36
    with pytest.raises(ValueError):
        ESPNet(20, decoder_skip="bogus")


def test_enet_shapes_and_parameters():
    model = ENet(20).eval()
    # ENet paper: 0.37M parameters; this implementation has 360,767 for 20 classes.
    assert count_parameters(model) == 360767
    assert count_parameters(ENet(19)) == 360703
    with torch.no_grad():
        assert model(torch.rand(1, 3, 360, 480)).shape == (1, 20, 360, 480)
        assert model(torch.rand(1, 3, 97, 131)).shape == (1, 20, 97, 131)
    dropouts = sorted({m.p for m in model.modules() if isinstance(m, torch.nn.Dropout2d)})
    assert dropouts == [0.01, 0.1]
    assert isinstance(model.stage1[0].act, torch.nn.PReLU)
    assert isinstance(model.stage4[0].act, torch.nn.ReLU)


def test_mac_counter_on_known_layers():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
                              torch.nn.ConvTranspose2d(8, 4, 2, stride=2),
                              torch.nn.Conv2d(4, 4, 3, padding=1, groups=2))
    # 8x5x5 outputs of 3*9 MACs; 8x5x5 inputs each spread to 4 outputs x 4 taps; grouped conv.
    expected = 8 * 25 * 27 + 8 * 25 * 4 * 4 + 4 * 100 * 2 * 9
    assert count_macs(net, 10, 10) == expected


def test_macs_of_espnet_p2q8_at_1024x512():
    assert count_macs(ESPNet(20, 2, 8), 1024, 512) == 4709441536


def _group_support(hff, group, size=81):
    """Input offsets (dy, dx) that reach the centre output of one channel of branch ``group``."""
    torch.manual_seed(0)
    k = 5
    module = ESP(5, 5, k=k, add=False, hff=hff).eval()
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.fill_(1.0)
    x = torch.ones(1, 5, size, size, requires_grad=True)
    out = module(x)
    c = size // 2
    out[0, group, c, c].backward()  # 5 channels, K=5: one channel per branch group
    support = (x.grad[0].abs().sum(0) > 0).nonzero().tolist()
    return {(y - c, xx - c) for y, xx in support}


def _lattice(rate):
    return {(dy * rate, dx * rate) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}


def test_hff_removes_gridding_holes_from_the_receptive_field():
    """Receptive field of each branch group of one ESP module (K=5, rates 1..16).

    Without HFF a group with rate r sees only the 3x3 lattice of spacing r: every point of the
    smaller rates' lattices inside its field is a hole (the gridding pattern). With HFF the group
    sums branches 2..k, so its field holds every lattice point of rates 2..r: no holes at any of
    the module's rates. (Odd offsets are covered only by branch 1 in both cases; HFF does not
    change what the module as a whole sees, only what each output channel sees.)
    """
    rates = [1, 2, 4, 8, 16]
    for group in range(2, 5):
        plain = _group_support(False, group)
        fused = _group_support(True, group)
        assert plain == _lattice(rates[group])
        expected = set().union(*(_lattice(r) for r in rates[1:group + 1]))
        assert fused == expected
        holes_plain = expected - plain
        holes_fused = expected - fused
        assert len(holes_plain) > 0 and len(holes_fused) == 0
    union = lambda hff: set().union(*(_group_support(hff, g) for g in range(5)))  # noqa: E731
    assert union(True) == union(False)


# -- ERFNet ----------------------------------------------------------------------------------

def _factorized_3x3_params(channels):
    """One (3x1, 1x3) pair with biases."""
    return 2 * (3 * channels * channels + channels)


def test_erfnet_follows_the_paper_layer_table():
    model = ERFNet(20).eval()
    blocks = [m for m in model.modules() if isinstance(m, NonBottleneck1D)]
    assert len(blocks) == 5 + 8 + 2 + 2
    dilations = [b.branch[5].dilation[0] for b in model.encoder.layers
                 if isinstance(b, NonBottleneck1D)]
    assert dilations == [1] * 5 + [2, 4, 8, 16, 2, 4, 8, 16]
    downsamplers = [(d.conv.in_channels, d.bn.num_features) for d in model.modules()
                    if isinstance(d, Downsampler)]
    assert downsamplers == [(3, 16), (16, 64), (64, 128)]
    assert not any(isinstance(m, nn.PReLU) for m in model.modules())  # ReLU throughout
    # Parameters from the layer table: non-bottleneck-1D = two factorized pairs + 2 BN.
    nb = {c: 2 * _factorized_3x3_params(c) + 4 * c for c in (16, 64, 128)}
    down = {(i, o): (o - i) * (9 * i + 1) + 2 * o for i, o in ((3, 16), (16, 64), (64, 128))}
    up = {(i, o): o * (9 * i + 1) + 2 * o for i, o in ((128, 64), (64, 16))}
    expected = sum(down.values()) + 5 * nb[64] + 8 * nb[128] + sum(up.values()) + \
        2 * nb[64] + 2 * nb[16] + 20 * (16 * 4 + 1)
    assert count_parameters(model) == expected == 2064256
    assert count_parameters(ERFNet(19)) == 2064191  # the count usually quoted (19 classes)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 360, 480)).shape == (1, 20, 360, 480)
        assert ERFNetEncoder(12).eval()(torch.rand(1, 3, 97, 131)).shape == (1, 12, 13, 17)
    dropouts = sorted({m.p for m in model.modules() if isinstance(m, nn.Dropout2d)})
    assert dropouts == [0.03, 0.3]
    assert not any(isinstance(m, nn.Dropout2d) for m in model.decoder.modules())


def test_erfnet_is_about_5_45_times_the_size_of_espnet():
    """The ESPNet paper: ESPNet is 5.45x smaller than ERFNet (32-bit, uncompressed)."""
    ratio = count_parameters(ERFNet(20)) / count_parameters(ESPNet(20, 2, 8))
    assert 5.3 < ratio < 5.8


# -- ablation switches -------------------------------------------------------------------------

class _CountCalls(TorchFunctionMode):
    """Counts the torch functions and tensor methods a forward calls, by name."""

    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func)).strip("_")
        self.counts["add" if name in ("add", "iadd") else name] += 1
        return func(*args, **(kwargs or {}))


def _ops(model, size=(32, 64)):
    """Calls of one forward: "add" (tensor additions), "prelu", "relu", "conv2d", "cat" ..."""
    counter = _CountCalls()
    with torch.no_grad(), counter:
        model.eval()(torch.rand(1, 3, *size))
    return counter.counts


def _esp_modules(model):
    return [m for m in model.modules() if isinstance(m, (ESP, StridedESP))]


def test_ablation_defaults_are_the_published_graph():
    plain = ESPNet(20, 2, 8)
    explicit = ESPNet(20, 2, 8, **ABLATION_DEFAULTS)
    assert [(k, v.shape) for k, v in plain.state_dict().items()] == \
        [(k, v.shape) for k, v in explicit.state_dict().items()]
    assert ABLATION_DEFAULTS == {"residual": True, "hff": True, "act": "prelu",
                                 "downsample": "esp"}


def test_ablation_switches_change_the_graph():
    base = ESPNet(20, 2, 8)
    ops = _ops(base)
    residuals = 2 + 8                       # one skip per ESP module of the encoder
    esp_count = len(_esp_modules(base))     # 10 ESP + 2 strided ESP + the decoder's ESP
    assert esp_count == 13
    hff_adds = esp_count * (5 - 2)          # K=5: branches 2..5 summed in 3 additions
    assert ops["add"] == residuals + hff_adds

    no_residual = ESPNet(20, 2, 8, residual=False)
    assert _ops(no_residual)["add"] == hff_adds
    assert not any(m.add for m in no_residual.modules() if isinstance(m, ESP))
    assert count_parameters(no_residual) == count_parameters(base)

    no_hff = ESPNet(20, 2, 8, hff=False)
    assert _ops(no_hff)["add"] == residuals
    assert not any(m.hff for m in _esp_modules(no_hff))
    assert count_parameters(no_hff) == count_parameters(base)

    relu = ESPNet(20, 2, 8, act="relu")
    prelus = [m for m in base.modules() if isinstance(m, nn.PReLU)]
    assert not any(isinstance(m, nn.PReLU) for m in relu.modules())
    assert _ops(relu)["prelu"] == 0 and ops["prelu"] == len(prelus)
    assert count_parameters(base) - count_parameters(relu) == sum(p.num_parameters
                                                                   for p in prelus)

    conv = ESPNet(20, 2, 8, downsample="conv")
    for name, n_in, n_out in (("level2_0", 19, 64), ("level3_0", 131, 128)):
        layer = getattr(conv.encoder, name)
        assert isinstance(layer, ConvBNAct) and layer.conv.stride == (2, 2)
        assert count_parameters(layer) == 9 * n_in * n_out + 3 * n_out  # conv, BN, PReLU
        assert isinstance(getattr(base.encoder, name), StridedESP)
    assert len(_esp_modules(conv)) == esp_count - 2
    assert _ops(conv)["add"] == residuals + (esp_count - 2) * 3
    with torch.no_grad():
        for model in (no_residual, no_hff, relu, conv):
            assert model.eval()(torch.rand(1, 3, 33, 45)).shape == (1, 20, 33, 45)


@pytest.mark.parametrize("bad", [{"act": "gelu"}, {"downsample": "pool"}, {"hff": "yes"}])
def test_unknown_ablation_values_are_refused(bad):
    with pytest.raises(ValueError):
        ESPNetEncoder(20, 2, 8, **bad)
