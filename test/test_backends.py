"""Inference backends: parity with eager fp32 on real frames, selection and fallback, the CPU
optimizations, and the torch2trt logic that runs without TensorRT (converters, validation,
refusal, ENet pieces) against fakes."""
import logging
import types
import warnings

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from espnet_ros.inference import Segmenter
from espnet_ros.inference.backends import (
    BackendUnavailable,
    availability,
    base,
    cpu_optim,
    create_backend,
    names,
    pieces,
    select_backend,
)
from espnet_ros.inference.backends.torch_backend import TorchBackend
from espnet_ros.inference.backends.trt import Torch2trtBackend, converters, record_piece_inputs, support
from espnet_ros.inference.backends.trt.convert import ConversionRefused, captured_messages, convert
from espnet_ros.inference.backends.validate import ValidationError, fresh_input, validate
from espnet_ros.models import ENet, ERFNet, ESPNet, create_model, zoo

CPU_BACKENDS = [n for n, reason in availability("cpu", "fp32").items() if reason is None]


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _frames(data_dir, city_frame):
    other = cv2.imread(str(data_dir / "cityscapes_samples" /
                           "frankfurt_000000_000576_leftImg8bit.png"), cv2.IMREAD_COLOR)
    camvid = sorted((data_dir / "camvid" / "test").glob("*.png"))[::120][:2]
    return [city_frame, other] + [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in camvid]


def _agreement(reference, segmenter, frames):
    rates = []
    for frame in frames:
        expected = reference.segment(frame, output_size="model").copy()
        got = segmenter.segment(frame, output_size="model")
        rates.append(float((expected == got).mean()))
    return min(rates)


# -- parity on real frames -------------------------------------------------------------------

@pytest.fixture(scope="module")
def p2q8_eager(data_dir):
    return Segmenter.from_zoo("espnet-p2q8-cityscapes", backend_options={"optimize": False})


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_backend_labels_match_eager_fp32_on_real_frames(backend, data_dir, city_frame, p2q8_eager):
    segmenter = Segmenter.from_zoo("espnet-p2q8-cityscapes", backend=backend, fallback=False)
    assert segmenter.backend_name == backend and segmenter.precision == "fp32"
    agreement = _agreement(p2q8_eager, segmenter, _frames(data_dir, city_frame))
    print("%s agreement with eager fp32: %.5f %%" % (backend, 100 * agreement))
    assert agreement >= 0.999


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("model", ["espnet-c-p2q3-cityscapes", "enet", "erfnet"])
def test_encoder_and_baselines_match_eager_on_real_frames(backend, model, data_dir, city_frame):
    torch.manual_seed(0)  # ENet and ERFNet have no published weights: the same random ones
    net, entry = create_model(model, pretrained=bool(zoo.get(model).weights_file))
    size = (512, 256)
    reference = Segmenter(net, entry, input_size=size)
    backend_obj = create_backend(net, entry, (1, 3, size[1], size[0]), backend, fallback=False)
    segmenter = Segmenter(net, entry, input_size=size, forward=backend_obj)
    assert _agreement(reference, segmenter, _frames(data_dir, city_frame)[:2]) >= 0.999


# -- selection and fallback ------------------------------------------------------------------

def test_registry_has_the_three_backends():
    assert {"torch", "onnxruntime", "torch2trt"} <= set(names())


def test_unknown_backend_is_a_value_error():
    with pytest.raises(ValueError, match="unknown backend"):
        select_backend("tensorflow")
    with pytest.raises(ValueError, match="precision"):
        select_backend("torch", precision="fp8")


def test_unavailable_backend_warns_and_falls_back(no_cuda, caplog):
    with caplog.at_level(logging.WARNING, logger="espnet_ros"):
        choice = select_backend("torch2trt", device="cuda", precision="fp16")
    assert (choice.name, choice.device, choice.precision) == ("torch", "cpu", "fp32")
    message = " ".join(r.getMessage() for r in caplog.records if r.name == "espnet_ros")
    assert "torch2trt" in message and "falling back to torch" in message
    assert choice.notes and "unavailable" in choice.notes[0]


def test_no_fallback_raises_with_the_reason(no_cuda):
    with pytest.raises(BackendUnavailable, match="torch2trt.*CUDA"):
        select_backend("torch2trt", fallback=False, device="cuda")
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        select_backend("torch", fallback=False, device="cuda")
    with pytest.raises(BackendUnavailable, match="fp16 on CPU"):
        select_backend("torch", fallback=False, device="cpu", precision="fp16")


def test_fallback_order_keeps_device_then_precision():
    steps = base._fallback_steps("torch2trt", "cuda:0", "int8")
    assert steps == [("torch", "cuda:0", "int8"), ("torch", "cuda:0", "fp16"),
                     ("torch", "cpu", "fp32")]
    assert base._fallback_steps("onnxruntime", "cpu", "fp32") == [("torch", "cpu", "fp32")]


def test_auto_picks_a_runnable_backend(no_cuda):
    assert select_backend("auto", device=None).device == "cpu"
    net = ESPNet(alpha3=1).eval()
    entry = zoo.get("espnet")
    backend = create_backend(net, entry, (1, 3, 32, 64), "auto")
    candidates = [n for n in base.auto_candidates("cpu") if n in CPU_BACKENDS]
    assert backend.name in candidates
    if len(candidates) > 1:  # the trial timed every runnable candidate
        assert all(name in backend.info["auto"] for name in candidates)


@pytest.fixture
def failing_backend():
    @base.register
    class FailingBackend(base.Backend):
        name = "failing-test"

        @classmethod
        def check(cls, device, precision):
            return None

        def _build(self, model):
            raise BackendUnavailable("conversion refused (test)")

    yield FailingBackend
    base._REGISTRY.pop("failing-test")


def test_a_backend_that_fails_to_build_falls_back(failing_backend, caplog):
    net, entry = ESPNet(alpha3=1).eval(), zoo.get("espnet")
    with caplog.at_level(logging.WARNING, logger="espnet_ros"):
        backend = create_backend(net, entry, (1, 3, 32, 64), "failing-test")
    assert backend.name == "torch"
    assert "conversion refused (test)" in backend.info["fallback"]
    assert any("falling back" in r.getMessage() for r in caplog.records)
    with pytest.raises(BackendUnavailable, match="conversion refused"):
        create_backend(net, entry, (1, 3, 32, 64), "failing-test", fallback=False)


def test_segmenter_keeps_its_old_api(data_dir, city_frame):
    segmenter = Segmenter.from_zoo("espnet-p2q3-cityscapes", input_size=(256, 128))
    assert segmenter.backend_name == "torch" and segmenter.precision == "fp32"
    assert segmenter.segment(city_frame).shape == city_frame.shape[:2]
    net, entry = segmenter.model, segmenter.entry
    plain = Segmenter(net, entry, "cpu", (256, 128), forward=net)
    assert plain.backend_name == "torch" and plain.backend is None
    assert (plain.segment(city_frame) == segmenter.segment(city_frame)).mean() > 0.999


@pytest.mark.skipif("onnxruntime" not in CPU_BACKENDS, reason="onnxruntime not installed")
def test_fixed_shape_backend_is_built_per_image_size(data_dir):
    segmenter = Segmenter.from_zoo("espnet-p2q3-cityscapes", input_size=None,
                                   backend="onnxruntime")
    for height, width in ((64, 128), (96, 160), (64, 128)):
        frame = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
        assert segmenter.segment(frame).shape == (height, width)
    assert len(segmenter.backend._by_shape) == 2
    assert segmenter.backend_name == "onnxruntime"


# -- CPU optimizations -----------------------------------------------------------------------

def _randomize_batchnorm(model, seed=0):
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return model.eval()


@pytest.mark.parametrize("make", [lambda: ESPNet(alpha3=2), lambda: ENet(), lambda: ERFNet()])
def test_batchnorm_folding_is_exact(make):
    torch.manual_seed(0)
    model = _randomize_batchnorm(make())
    folded, count = cpu_optim.fold_batchnorm(model)
    assert count > 0
    assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) == \
        sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) - count
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        reference, got = model(x), folded(x)
    assert float((reference - got).abs().max()) <= 1e-4 * float(reference.abs().max())


def test_optimized_cpu_forward_matches_eager():
    model = _randomize_batchnorm(ESPNet(alpha3=2))
    forward, notes = cpu_optim.optimize_cpu(model, ("fold_bn", "channels_last", "flush_denormal"))
    try:
        assert any(n.startswith("fold_bn") for n in notes)
        result = validate(model, forward, torch.randn(1, 3, 64, 128))
        assert result.agreement >= 0.999
    finally:
        cpu_optim.set_flush_denormal(False)
    with pytest.raises(ValueError, match="unknown CPU steps"):
        cpu_optim.optimize_cpu(model, ("warp_speed",))


def test_torch_backend_keeps_eager_when_an_optimization_breaks_outputs(monkeypatch):
    model, entry = ESPNet(alpha3=1).eval(), zoo.get("espnet")
    monkeypatch.setattr(cpu_optim, "optimize_cpu",
                        lambda m, steps, threads=None: (lambda x: m(x) * -1, ["broken"]))
    backend = TorchBackend(model, entry, (1, 3, 64, 128))
    assert backend.info["steps"].startswith("eager (optimized model rejected")
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        assert torch.equal(backend.forward(x), model(x))


# -- validation ------------------------------------------------------------------------------

def test_validation_catches_a_tensor_baked_in_as_a_constant():
    model = ESPNet(alpha3=1).eval()
    sample = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        baked = model(sample)
    with pytest.raises(ValidationError, match="baked in as a constant"):
        validate(model, lambda x: baked, sample)
    assert validate(model, model, sample).relative_error == 0.0
    assert not torch.equal(fresh_input(sample), sample)


def test_runtime_check_gives_the_first_reason(no_cuda):
    assert base.runtime_check("cpu", "fp32", "cpu", ("fp32",), ("json",)) is None
    assert base.runtime_check("cuda", "fp32", "cpu") == "this backend runs on CPU only"
    assert base.runtime_check("cpu", "fp32", "cuda") == "this backend runs on CUDA only"
    assert base.runtime_check("cuda", "fp32", "cuda") == "no CUDA device"
    assert base.runtime_check("cpu", "fp16", "cpu", ("fp32",)) == "fp16 is not supported (fp32 only)"
    assert base.runtime_check("cpu", "fp16", "cpu", ("fp32", "int8")) == \
        "fp16 is not supported (fp32, int8)"
    assert base.runtime_check("cpu", "fp32", "cpu", None, ("json", "no_such_module_here")) \
        .startswith("no_such_module_here is not importable: No module named")


# -- torch2trt logic without TensorRT --------------------------------------------------------

def test_torch2trt_is_unavailable_here_with_a_reason(no_cuda):
    reason = Torch2trtBackend.check("cuda", "fp16")
    assert reason and "CUDA" in reason


@pytest.mark.parametrize("version,why", [("0.5.0", "output_padding"), ("0.6.1", "weight axis")])
def test_converter_selection(version, why):
    selected = converters.select_converters(version, ENet())
    methods = [c.method for c in selected]
    assert methods == [converters.CONV_TRANSPOSE, converters.PRELU]
    assert why in selected[0].reason
    assert converters.select_converters(version, nn.Sequential(nn.Conv2d(3, 3, 1))) == []
    assert [c.method for c in converters.select_converters(version, ERFNet())] == \
        [converters.CONV_TRANSPOSE]


def test_local_converters_are_registered_with_torch2trt():
    registered = {}
    fake = types.SimpleNamespace(
        tensorrt_converter=lambda method: (lambda fn: registered.setdefault(method, fn)))
    methods = converters.register_converters(fake, converters.select_converters("0.5.0"))
    assert set(methods) == set(registered) == {converters.CONV_TRANSPOSE, converters.PRELU}


@pytest.mark.parametrize("args", [(20, 20, 2, 2, 0, 0), (16, 20, 2, 2, 0, 0), (16, 16, 3, 2, 1, 1),
                                  (128, 64, 3, 2, 1, 1), (64, 16, 3, 2, 1, 1),
                                  (8, 4, 3, 2, 1, 0), (4, 6, 4, 2, 1, 0)])
def test_deconv_parameters_reproduce_pytorch_output_size(args):
    n_in, n_out, kernel, stride, padding, output_padding = args
    module = nn.ConvTranspose2d(n_in, n_out, kernel, stride, padding, output_padding)
    params = converters.deconv_params(module)
    out = module(torch.zeros(1, n_in, 7, 9))
    assert params.out_channels == n_out == out.shape[1]
    assert converters.deconv_output_size((7, 9), params) == tuple(out.shape[2:])


def test_deconv_without_a_tensorrt_equivalent_is_refused():
    with pytest.raises(NotImplementedError, match="dilation"):
        converters.deconv_params(nn.ConvTranspose2d(4, 4, 3, 2, dilation=2))
    with pytest.raises(NotImplementedError, match="output_padding"):
        converters.deconv_params(nn.ConvTranspose2d(4, 4, 3, 2, padding=0, output_padding=1))


class _FakeLayer(types.SimpleNamespace):
    def get_output(self, index):
        return ("out", self.kind)


class _FakeNetwork:
    def __init__(self):
        self.calls = []

    def add_deconvolution_nd(self, tensor, count, kernel, weight, bias):
        self.calls.append(("deconv", count, kernel, weight.shape))
        return _FakeLayer(kind="deconv")

    def add_constant(self, shape, weights):
        self.calls.append(("constant", tuple(shape), weights.shape))
        return _FakeLayer(kind="constant")

    def add_parametric_relu(self, tensor, slope):
        self.calls.append(("prelu", slope))
        return _FakeLayer(kind="prelu")


_FAKE_TRT = types.SimpleNamespace(float32="float32", Weights=lambda *a: np.asarray(a[0]))


def test_conv_transpose_converter_sets_padding_and_channels():
    module = nn.ConvTranspose2d(16, 20, 3, 2, padding=1, output_padding=1)
    tensor = torch.zeros(1, 16, 8, 8)
    tensor._trt = types.SimpleNamespace(shape=(1, 16, 8, 8))
    result = torch.zeros(1)
    ctx = types.SimpleNamespace(method_args=(module, tensor), method_kwargs={},
                                method_return=result, network=_FakeNetwork())
    converters.convert_conv_transpose2d(ctx, trt=_FAKE_TRT)
    assert ctx.network.calls == [("deconv", 20, (3, 3), (16, 20, 3, 3))]
    assert result._trt == ("out", "deconv")


@pytest.mark.parametrize("rank,shape", [(4, (1, 5, 1, 1)), (3, (5, 1, 1))])
def test_prelu_converter_follows_the_batch_mode(rank, shape):
    weight = torch.arange(5, dtype=torch.float32)
    tensor = torch.zeros(1, 5, 4, 4)
    tensor._trt = types.SimpleNamespace(shape=(1, 5, 4, 4)[4 - rank:])
    result = torch.zeros(1)
    ctx = types.SimpleNamespace(method_args=(tensor, weight), method_kwargs={},
                                method_return=result, network=_FakeNetwork())
    converters.convert_prelu(ctx, trt=_FAKE_TRT)
    assert ctx.network.calls[0] == ("constant", shape, shape)
    assert result._trt == ("out", "prelu")


def test_precision_support_table():
    assert support.precision_support("fp16", (6, 2)) is None          # TX2
    assert "TX2" in support.precision_support("int8", (6, 2))
    assert support.precision_support("int8", (7, 2)) is None          # Xavier
    assert support.precision_support("int8", (8, 7)) is None          # Orin
    assert "fp16" in support.precision_support("fp16", (6, 1))        # desktop Pascal
    assert support.precision_support("int8", (6, 1)) is None
    assert support.precision_support("int8", (6, 1), fast_int8=False) is not None
    assert support.parse_version("8.2.1.8") == (8, 2, 1)
    assert support.parse_version("0.5.0+jp46") == (0, 5, 0)
    assert support.parse_version("unknown") == ()


@pytest.mark.parametrize("channel", ["stdout", "warning", "logging"])
def test_conversion_is_refused_on_unsupported_methods(channel):
    message = "Warning: Encountered known unsupported method torch.nn.functional.interpolate"

    def fake_torch2trt(module, inputs, **kwargs):
        if channel == "stdout":
            print(message)
        elif channel == "warning":
            warnings.warn(message, stacklevel=2)
        else:
            logging.getLogger("torch2trt").warning(message)
        return module

    model = nn.Conv2d(3, 3, 1)
    with pytest.raises(ConversionRefused, match="interpolate"):
        convert(fake_torch2trt, model, (torch.zeros(1, 3, 4, 4),), "fp16")


def test_conversion_passes_precision_flags_and_calibration():
    seen = {}

    def fake_torch2trt(module, inputs, **kwargs):
        print("building engine")
        seen.update(kwargs)
        return module

    frames = [(torch.zeros(2, 3, 4, 4),), (torch.ones(1, 3, 4, 4),)]
    assert convert(fake_torch2trt, nn.Identity(), (torch.zeros(1, 3, 4, 4),), "int8", frames)
    assert seen["int8_mode"] and seen["fp16_mode"] and len(seen["int8_calib_dataset"]) == 3
    assert seen["int8_calib_dataset"][2][0].shape == (3, 4, 4)
    with pytest.raises(ValueError, match="calibration"):
        convert(fake_torch2trt, nn.Identity(), (torch.zeros(1, 3, 4, 4),), "int8")
    with captured_messages() as lines:
        print("hello")
    assert lines == ["hello"]


def test_enet_pieces_equal_enet_and_leave_unpooling_in_pytorch():
    torch.manual_seed(0)
    model = _randomize_batchnorm(ENet())
    x = torch.randn(1, 3, 61, 97)  # odd sizes exercise the padding and crops
    converted = {}

    def fake_convert(name, module, inputs):
        assert not any(pieces.unconvertible(m) for m in module.modules()), name
        converted[name] = tuple(tuple(t.shape) for t in inputs)
        return module

    wrapper = pieces.piecewise(model, fake_convert)
    with torch.no_grad():
        assert torch.equal(wrapper(x), model(x))
    assert set(converted) == {"initial", "down1", "stage1", "down2", "stage2_3", "up4", "stage4",
                              "up5", "stage5", "fullconv"}
    assert pieces.piecewise(ESPNet(alpha3=1), fake_convert) is None
    recorded = record_piece_inputs(model, [x, x])
    assert set(recorded) == set(converted) and len(recorded["up4"]) == 2

