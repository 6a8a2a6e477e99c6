"""The persistent engine cache: key stability and invalidation, corrupt files, and the torch2trt
backend's build -> validate -> cache flow run against a fake torch2trt (no TensorRT here)."""
import copy
import logging
import pickle
import sys
import types

import pytest
import torch
from torch import nn

from espnet_ros.inference.backends import BackendUnavailable
from espnet_ros.inference.backends.trt import Torch2trtBackend, support
from espnet_ros.inference.backends.trt.engine_cache import (
    CACHE_ENV,
    EngineCache,
    cache_dir,
    cache_fields,
    cache_key,
    weights_sha256,
)
from espnet_ros.models import ENet, ERFNet, ESPNet, zoo


def _fields(**changes):
    values = dict(weights="ab" * 32, model_args={"class": "ESPNet", "arch": "espnet",
                                                 "args": {"alpha3": 8, "classes": 20}},
                  input_shape=(1, 3, 512, 1024), precision="fp16", torch2trt_version="0.5.0",
                  tensorrt_version="8.2.1.8", gpu_name="NVIDIA Tegra X2",
                  compute_capability=(6, 2))
    values.update(changes)
    return cache_fields(**values)


# -- keys ------------------------------------------------------------------------------------

def test_key_is_stable():
    assert cache_key(_fields()) == cache_key(_fields())
    # Pinned: a change in how keys are derived must come with a FORMAT_VERSION bump.
    assert cache_key(_fields()) == \
        "a4a80be521abc1ffce68ebbe0e8f6177dfa88b2fb7bf1dd6354c68616b81bae1"


@pytest.mark.parametrize("change", [
    {"weights": "cd" * 32},
    {"model_args": {"class": "ESPNet", "arch": "espnet", "args": {"alpha3": 5, "classes": 20}}},
    {"input_shape": (1, 3, 360, 640)},
    {"precision": "int8"},
    {"torch2trt_version": "0.4.0"},
    {"tensorrt_version": "8.5.2.2"},
    {"gpu_name": "Orin"},
    {"compute_capability": (8, 7)},
    {"piece": "stage1"},
    {"piece_shapes": [(1, 16, 256, 512)]},
    {"calibration": "ef" * 32},
])
def test_every_field_changes_the_key(change):
    assert cache_key(_fields(**change)) != cache_key(_fields())


def test_weights_hash_follows_the_values_not_the_object():
    torch.manual_seed(0)
    model = ESPNet(alpha3=1)
    digest = weights_sha256(model)
    assert weights_sha256(copy.deepcopy(model)) == digest
    other = copy.deepcopy(model)
    with torch.no_grad():
        next(other.parameters()).view(-1)[0] += 1e-3
    assert weights_sha256(other) != digest


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "engines"))
    assert cache_dir() == tmp_path / "engines"
    assert EngineCache().root == tmp_path / "engines"


# -- files -----------------------------------------------------------------------------------

def _save(engine, path):
    path.write_bytes(pickle.dumps(engine))


def _load(path):
    return pickle.loads(path.read_bytes())


def test_store_and_load_round_trip(tmp_path):
    cache = EngineCache(tmp_path)
    assert cache.load(_fields(), _load) is None
    path = cache.store(_fields(), lambda p: _save({"engine": 1}, p))
    assert path.name == cache_key(_fields()) + ".engine"
    assert cache.load(_fields(), _load) == {"engine": 1}
    assert cache.load(_fields(precision="fp32"), _load) is None
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave nothing behind


def test_a_corrupt_engine_is_discarded_and_rebuilt(tmp_path, caplog):
    cache = EngineCache(tmp_path)
    builds = []

    def build():
        builds.append(1)
        return {"engine": len(builds)}

    assert cache.get_or_build(_fields(), build, _save, _load) == ({"engine": 1}, "built")
    assert cache.get_or_build(_fields(), build, _save, _load) == ({"engine": 1}, "hit")
    engine_path, _ = cache.paths(cache_key(_fields()))
    engine_path.write_bytes(b"\x00garbage")
    with caplog.at_level(logging.WARNING, logger="espnet_ros"):
        assert cache.get_or_build(_fields(), build, _save, _load) == ({"engine": 2}, "built")
    assert any("unreadable engine" in r.getMessage() for r in caplog.records)
    assert cache.get_or_build(_fields(), build, _save, _load) == ({"engine": 2}, "hit")


def test_mismatching_or_unreadable_metadata_is_discarded(tmp_path):
    cache = EngineCache(tmp_path)
    cache.store(_fields(), lambda p: _save("x", p))
    _, meta = cache.paths(cache_key(_fields()))
    meta.write_text('{"format": 0}')
    assert cache.load(_fields(), _load) is None
    assert not any(tmp_path.iterdir())
    cache.store(_fields(), lambda p: _save("x", p))
    meta.write_text("{not json")
    assert cache.load(_fields(), _load) is None


def test_a_cached_engine_failing_its_check_is_rebuilt(tmp_path):
    cache = EngineCache(tmp_path)
    cache.store(_fields(), lambda p: _save("stale", p))

    def check(engine):
        if engine == "stale":
            raise ValueError("does not reproduce PyTorch")

    assert cache.get_or_build(_fields(), lambda: "fresh", _save, _load, check) == \
        ("fresh", "built")
    assert cache.load(_fields(), _load) == "fresh"


def test_an_unwritable_cache_still_returns_the_engine(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = EngineCache(blocker / "engines")
    with caplog.at_level(logging.WARNING, logger="espnet_ros"):
        assert cache.get_or_build(_fields(), lambda: "e", _save, _load) == ("e", "built")
    assert any("could not store" in r.getMessage() for r in caplog.records)


# -- the torch2trt backend against a fake torch2trt ------------------------------------------

class FakeTRTModule(nn.Module):
    """Stands in for torch2trt.TRTModule: the "engine" is a pickled copy of the module."""

    def __init__(self, module=None):
        super().__init__()
        self.inner = module

    def forward(self, *inputs):
        return self.inner(*inputs)

    def state_dict(self, *args, **kwargs):
        return {"engine": bytearray(pickle.dumps(self.inner))}

    def load_state_dict(self, state, strict=True):
        self.inner = pickle.loads(bytes(state["engine"]))


@pytest.fixture
def fake_tensorrt(monkeypatch):
    calls = []
    fake = types.ModuleType("torch2trt")
    fake.__version__ = "0.5.0"
    fake.TRTModule = FakeTRTModule
    fake.registered = {}
    fake.tensorrt_converter = lambda method, **kw: (lambda fn: fake.registered.setdefault(method, fn))
    fake.bake = False

    def torch2trt(module, inputs, **kwargs):
        calls.append((type(module).__name__, kwargs))
        if fake.bake:  # an engine that froze the sample's output
            with torch.no_grad():
                constant = module(*inputs)
            return FakeTRTModule(_Constant(constant))
        return FakeTRTModule(copy.deepcopy(module))

    fake.torch2trt = torch2trt
    fake.calls = calls
    tensorrt = types.ModuleType("tensorrt")
    tensorrt.__version__ = "8.2.1.8"
    monkeypatch.setitem(sys.modules, "torch2trt", fake)
    monkeypatch.setitem(sys.modules, "tensorrt", tensorrt)
    monkeypatch.setattr(support, "gpu_identity", lambda device: ("Fake Xavier", (7, 2)))
    return fake


class _Constant(nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, *inputs):
        return self.value


def _backend(model, tmp_path, precision="fp32", shape=(1, 3, 32, 64), **options):
    return Torch2trtBackend(model, zoo.get("espnet"), shape, "cpu", precision,
                            cache_dir=str(tmp_path), **options)


def test_backend_builds_caches_and_reuses_engines(fake_tensorrt, tmp_path, caplog):
    torch.manual_seed(0)
    model = ESPNet(alpha3=1).eval()
    first = _backend(model, tmp_path)
    assert dict(first.info["engines"]) == {"model": "built"}
    assert set(fake_tensorrt.registered) == {"torch.nn.ConvTranspose2d.forward",
                                             "torch.nn.functional.prelu"}
    x = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        assert torch.equal(first.forward(x), model(x))
    second = _backend(model, tmp_path)
    assert dict(second.info["engines"]) == {"model": "hit"}
    assert len(fake_tensorrt.calls) == 1
    for path in tmp_path.glob("*.engine"):
        path.write_bytes(b"corrupt")
    with caplog.at_level(logging.WARNING, logger="espnet_ros"):
        third = _backend(model, tmp_path)
    assert dict(third.info["engines"]) == {"model": "built"}
    assert len(fake_tensorrt.calls) == 2
    _backend(model, tmp_path, precision="fp16")  # another precision is another engine
    assert len(list(tmp_path.glob("*.engine"))) == 2
    assert fake_tensorrt.calls[-1][1]["fp16_mode"] is True


def test_backend_converts_enet_in_pieces_with_int8_calibration(fake_tensorrt, tmp_path):
    torch.manual_seed(0)
    model = ENet().eval()
    frames = [torch.randn(1, 3, 32, 64) for _ in range(2)]
    backend = _backend(model, tmp_path, precision="int8", calibration=frames)
    assert len(backend.info["engines"]) == 10 and "up4" in backend.info["engines"]
    assert all(kwargs["int8_mode"] and len(kwargs["int8_calib_dataset"]) == 2
               for _, kwargs in fake_tensorrt.calls)
    assert len(list(tmp_path.glob("*.engine"))) == 10
    with pytest.raises(BackendUnavailable, match="calibration"):
        _backend(model, tmp_path, precision="int8")


def test_backend_converts_erfnet_whole_and_reports_the_engine_size(fake_tensorrt, tmp_path):
    torch.manual_seed(0)
    model = ERFNet(20).eval()
    backend = _backend(model, tmp_path, precision="fp16")
    assert dict(backend.info["engines"]) == {"model": "built"}   # no pieces: nothing unpools
    # Its transposed convs (output_padding 1) need the local converter; it has no PReLU.
    assert backend.info["local converters"] == "torch.nn.ConvTranspose2d.forward"
    stored = sum(p.stat().st_size for p in tmp_path.glob("*.engine"))
    assert 0 < backend.engine_bytes <= stored
    x = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        assert torch.equal(backend.forward(x), model(x))
    cached = _backend(model, tmp_path, precision="fp16")
    assert dict(cached.info["engines"]) == {"model": "hit"} and cached.engine_bytes > 0


def test_backend_rejects_an_engine_with_baked_constants(fake_tensorrt, tmp_path):
    fake_tensorrt.bake = True
    with pytest.raises(BackendUnavailable, match="baked in as a constant"):
        _backend(ESPNet(alpha3=1).eval(), tmp_path)
    assert not list(tmp_path.glob("*.engine"))  # a rejected engine is never cached
