"""bf16 / int8 on the CPU (OpenVINO + NNCF) behind the accuracy gate: the gate's verdict, the
calibration cache and its key, refusal and fallback, that int8 really runs int8 kernels, and
the calibrate / eval / bench cpu commands end to end on tiny sizes."""
import json
import logging

import cv2
import numpy as np
import pytest
import torch

from espnet_ros.cli import main
from espnet_ros.inference.artifact_cache import cache_key
from espnet_ros.inference.backends import BackendUnavailable, create_backend
from espnet_ros.inference.backends import openvino_backend as ov_backend
from espnet_ros.inference.backends import openvino_lowp as lowp
from espnet_ros.inference.calibration import (
    CalibrationSpec,
    FrameSet,
    decide,
    gate,
    load_spec,
    read_frames,
    write_spec,
)
from espnet_ros.messages.params import backend_options
from espnet_ros.models import create_model

pytest.importorskip("openvino")
pytest.importorskip("nncf")

SHAPE = (1, 3, 32, 64)
SIZE = (64, 32)


def _images(folder, count, seed=0, constant=None):
    """Smooth random colour frames (or constant grey ones) written as PNG files."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        if constant is None:
            small = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
            image = cv2.resize(small, (128, 64), interpolation=cv2.INTER_LINEAR)
        else:
            image = np.full((64, 128, 3), constant, np.uint8)
        cv2.imwrite(str(folder / ("frame_%02d.png" % i)), image)
    return folder


def _spec(tmp_path, precision="int8", calibration=None, gate_frames=None, name="cal"):
    gate_set = FrameSet("images", str(gate_frames or _images(tmp_path / "gate", 3, seed=1)))
    cal_set = None
    if precision == "int8":
        cal_set = FrameSet("images", str(calibration or _images(tmp_path / "calib", 4, seed=2)))
    return write_spec(tmp_path / name, CalibrationSpec(
        precision, gate_set, read_frames(gate_set).sha256, cal_set,
        read_frames(cal_set).sha256 if cal_set else None, "espnet-p2q3-cityscapes"))


def _model(seed=0):
    torch.manual_seed(seed)
    return create_model("espnet-p2q3-cityscapes", pretrained=False)


@pytest.fixture
def open_gate(monkeypatch):
    """A gate every candidate passes: tests the serving path without depending on accuracy."""
    monkeypatch.setattr(gate, "MIN_AGREEMENT", 0.0)
    monkeypatch.setattr(gate, "FRAME_FLOOR", 0.0)
    monkeypatch.setattr(gate, "MAX_MIOU_DROP", 100.0)


# -- the gate's verdict ---------------------------------------------------------------------

def test_gate_passes_at_the_thresholds_and_fails_below_with_the_numbers():
    passed = decide([0.995, 0.9851], miou_fp32=57.17, miou_candidate=56.80)
    assert passed.passed and passed.reasons == ()
    assert passed.agreement_min == pytest.approx(0.9851) and passed.frames == 2
    assert passed.agreement_mean == pytest.approx(0.99005)
    assert passed.summary().startswith("passed: pixel agreement with fp32 99.00 % over 2 frame(s)"
                                       " (needs >= 99.00 %), worst frame 98.51 % (needs >= 97.00 %)")
    assert "mIoU 57.17 -> 56.80 (-0.37 points" in passed.summary()
    assert decide([0.99]).passed and decide([0.97, 1.0, 1.0, 1.0]).passed   # the bounds themselves

    low = decide([0.9538, 0.9876])
    assert not low.passed and low.reasons == ("pixel agreement 97.07 % < 99.00 %",
                                              "a frame's pixel agreement 95.38 % < 97.00 %")
    assert "failed: pixel agreement with fp32 97.07 % over 2 frame(s)" in low.summary()
    one_bad_frame = decide([0.9699] + [1.0] * 20)
    assert not one_bad_frame.passed and one_bad_frame.agreement_mean > 0.998
    assert one_bad_frame.reasons == ("a frame's pixel agreement 96.99 % < 97.00 %",)

    drop = decide([0.999], miou_fp32=57.17, miou_candidate=56.60)
    assert not drop.passed and drop.reasons == ("mIoU drop 0.57 points > 0.50",)
    with pytest.raises(ValueError):
        decide([])


def test_gate_result_round_trips_through_json():
    result = decide([0.98, 0.999], 50.0, 49.0)
    assert type(result).from_json(json.loads(json.dumps(result.to_json()))) == result


# -- the cache key ---------------------------------------------------------------------------

def _fields(**changes):
    values = dict(weights="ab" * 32, args={"class": "ESPNet", "arch": "espnet", "args": {}},
                  input_shape=(1, 3, 512, 1024), precision="int8", calibration_sha="cd" * 32,
                  gate_sha="ef" * 32,
                  versions={"torch": "2.13.0", "openvino": "2026.4.1", "nncf": "3.4.0"})
    values.update(changes)
    return lowp.cache_fields(**values)


@pytest.mark.parametrize("change", [
    {"weights": "00" * 32},
    {"args": {"class": "ESPNet", "arch": "espnet", "args": {"alpha3": 5}}},
    {"input_shape": (1, 3, 360, 640)},
    {"precision": "bf16"},
    {"calibration_sha": "11" * 32},
    {"gate_sha": "22" * 32},
    {"versions": {"torch": "2.13.0", "openvino": "2026.5.0", "nncf": "3.4.0"}},
    {"versions": {"torch": "2.13.0", "openvino": "2026.4.1", "nncf": "3.5.0"}},
    {"versions": {"torch": "2.14.0", "openvino": "2026.4.1", "nncf": "3.4.0"}},
])
def test_every_field_changes_the_key(change):
    assert cache_key(_fields(**change)) != cache_key(_fields())


def test_a_changed_key_rebuilds_and_an_unchanged_one_loads(tmp_path, open_gate):
    spec = _spec(tmp_path)
    model, entry = _model()
    first = lowp.calibrated_models(model, entry, SHAPE, "int8", spec.path, 2)
    again = lowp.calibrated_models(model, entry, SHAPE, "int8", spec.path, 2)
    assert (first.how, again.how) == ("built", "hit")
    assert again.gate == first.gate
    other_size = lowp.calibrated_models(model, entry, (1, 3, 48, 64), "int8", spec.path, 2)
    other_weights = lowp.calibrated_models(_model(seed=1)[0], entry, SHAPE, "int8", spec.path, 2)
    assert other_size.how == other_weights.how == "built"
    assert len(list(spec.folder.glob("*.ovz"))) == 3


def test_a_new_calibration_set_is_a_new_key(tmp_path, open_gate):
    model, entry = _model()
    spec = _spec(tmp_path)
    lowp.calibrated_models(model, entry, SHAPE, "int8", spec.path, 2)
    respec = _spec(tmp_path, calibration=_images(tmp_path / "other", 4, seed=9))
    assert respec.calibration_sha256 != spec.calibration_sha256
    assert lowp.calibrated_models(model, entry, SHAPE, "int8", respec.path, 2).how == "built"


def test_a_corrupt_cached_model_is_removed_with_a_warning_and_rebuilt(tmp_path, caplog,
                                                                      open_gate):
    spec = _spec(tmp_path)
    model, entry = _model()
    lowp.calibrated_models(model, entry, SHAPE, "int8", spec.path, 2)
    (cached,) = spec.folder.glob("*.ovz")
    cached.write_bytes(b"not a zip file")
    with caplog.at_level(logging.WARNING, logger="espnet_ros"):
        rebuilt = lowp.calibrated_models(model, entry, SHAPE, "int8", spec.path, 2)
    assert rebuilt.how == "built"
    assert any("unreadable calibrated model" in r.getMessage() for r in caplog.records)
    assert lowp.calibrated_models(model, entry, SHAPE, "int8", spec.path, 2).how == "hit"


def test_frames_changed_after_calibrate_are_refused_on_a_rebuild(tmp_path, open_gate):
    spec = _spec(tmp_path)
    _images(tmp_path / "calib", 4, seed=3)   # the same files, other pixels
    model, entry = _model()
    with pytest.raises(ValueError, match="changed since espnet-ros calibrate"):
        lowp.calibrated_models(model, entry, SHAPE, "int8", spec.path, 2)


# -- refusal, fallback, serving --------------------------------------------------------------

def test_constant_frame_calibration_is_refused_and_the_node_path_falls_back(tmp_path, caplog):
    """Calibrated on grey frames, the activation ranges are wrong for real content."""
    spec = _spec(tmp_path, calibration=_images(tmp_path / "grey", 4, constant=128))
    model, entry = _model()
    with pytest.raises(BackendUnavailable, match="int8 refused by the accuracy gate") as exc:
        create_backend(model, entry, SHAPE, "openvino", "cpu", "int8", fallback=False,
                       calibration_file=str(spec.path))
    assert "pixel agreement with fp32" in str(exc.value) and "needs >= 99.00 %" in str(exc.value)
    with caplog.at_level(logging.WARNING, logger="espnet_ros"):
        backend = create_backend(model, entry, SHAPE, "openvino", "cpu", "int8",
                                 calibration_file=str(spec.path))
    assert (backend.name, backend.precision) == ("torch", "fp32")
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("refused by the accuracy gate" in w and "worst frame" in w
               and "falling back to torch" in w for w in warning), warning
    assert "refused by the accuracy gate" in backend.info["fallback"]


def test_int8_without_a_calibration_file_falls_back_with_the_reason(caplog):
    model, entry = _model()
    with caplog.at_level(logging.WARNING, logger="espnet_ros"):
        backend = create_backend(model, entry, SHAPE, "openvino", "cpu", "int8")
    assert backend.precision == "fp32"
    assert "needs a calibration file" in backend.info["fallback"]


def test_an_unreadable_calibration_file_is_a_clear_refusal(tmp_path):
    (tmp_path / "calibration.json").write_text("{not json")
    model, entry = _model()
    with pytest.raises(BackendUnavailable, match="is not JSON"):
        create_backend(model, entry, SHAPE, "openvino", "cpu", "int8", fallback=False,
                       calibration_file=str(tmp_path))


def test_a_passed_int8_model_is_a_real_int8_graph(tmp_path, open_gate):
    spec = _spec(tmp_path)
    model, entry = _model()
    backend = create_backend(model, entry, SHAPE, "openvino", "cpu", "int8", fallback=False,
                             calibration_file=str(spec.path))
    assert (backend.name, backend.precision) == ("openvino", "int8")
    low, convs = (int(v) for v in backend.info["int8 convolutions"].split(" of "))
    assert convs > 0 and low >= convs // 2, backend.info   # most convolutions run u8/i8 kernels
    cached = lowp.load(next(spec.folder.glob("*.ovz")))
    types = {op.get_type_name() for op in cached.models["model"].get_ops()}
    assert "FakeQuantize" in types      # the stored IR is quantized, not an fp32 model
    out = backend.forward(torch.randn(SHAPE))
    assert tuple(out.shape) == (1, 20, 32, 64) and torch.isfinite(out).all()


def test_an_int8_model_with_every_block_kept_fp32_is_refused_though_it_passed(
        tmp_path, open_gate, monkeypatch):
    """A search that keeps every block fp32 passes any gate; it is the fp32 model, not int8."""
    from espnet_ros.inference.calibration import sensitivity as sens

    def keep_all(blocks, measure_only, measure_keeping, reaches, max_kept):
        return sens.Choice(tuple(blocks), (1.0, 1.0), [], [])
    monkeypatch.setattr(sens, "choose_fp32_blocks", keep_all)
    spec = _spec(tmp_path)
    model, entry = _model()
    with pytest.raises(BackendUnavailable, match=r"no convolution runs in int8 \(0 of \d+\)"):
        create_backend(model, entry, SHAPE, "openvino", "cpu", "int8", fallback=False,
                       calibration_file=str(spec.path))
    study = create_backend(model, entry, SHAPE, "openvino", "cpu", "int8", fallback=False,
                           calibration_file=str(spec.path), enforce_gate=False)
    assert study.gate.passed and study.refusal.startswith("int8 refused: no convolution")
    assert study.refusal_cause.startswith("no convolution runs in int8 (0 of ")
    assert study.info["int8 convolutions"].startswith("0 of ")


def _cpu_has(capability):
    return capability in ov_backend.cpu_capabilities()


def _as_cpu(monkeypatch, capabilities):
    """Makes the backend see a CPU with ``capabilities`` (OpenVINO's names, e.g. BF16)."""
    monkeypatch.setattr(ov_backend, "cpu_capabilities", lambda: tuple(capabilities))


def test_auto_times_a_gated_calibrated_model_and_skips_a_refused_one(tmp_path, monkeypatch):
    """backend auto given a calibration file: OpenVINO at the file's precision competes with the
    fp32 backends once its model passed the gate, and is skipped with the verdict otherwise."""
    model, entry = _model()
    refused = _spec(tmp_path, calibration=_images(tmp_path / "grey", 4, constant=128))
    backend = create_backend(model, entry, SHAPE, "auto", "cpu",
                             calibration_file=str(refused.path))
    assert backend.precision == "fp32" and "openvino int8" not in backend.info["auto"]
    assert "openvino int8: int8 refused by the accuracy gate" in backend.info["auto skipped"]

    monkeypatch.setattr(gate, "MIN_AGREEMENT", 0.0)
    monkeypatch.setattr(gate, "FRAME_FLOOR", 0.0)
    passed = _spec(tmp_path, name="passed")
    backend = create_backend(model, entry, SHAPE, "auto", "cpu",
                             calibration_file=str(passed.path))
    medians = {name: float(ms) for name, ms, _ in
               (part.rsplit(" ", 2) for part in backend.info["auto"].split(", "))}
    assert {"torch", "openvino", "openvino int8"} <= set(medians), backend.info["auto"]
    assert min(medians, key=medians.get) == (
        backend.name if backend.precision == "fp32" else "%s %s" % (backend.name,
                                                                    backend.precision))


@pytest.mark.parametrize("with_bf16", [True, False], ids=["cpu-with-bf16", "cpu-without-bf16"])
def test_bf16_follows_the_cpu_capability(tmp_path, open_gate, monkeypatch, caplog, with_bf16):
    """Both branches on any machine: the one this CPU takes for real, the other stubbed."""
    if with_bf16 != _cpu_has("BF16"):
        others = [c for c in ov_backend.cpu_capabilities() if c != "BF16"]
        _as_cpu(monkeypatch, others + (["BF16"] if with_bf16 else []))
        if with_bf16:  # no bf16 kernels here: the serving path runs on the fp32 ones
            monkeypatch.setitem(ov_backend.HINTS, "bf16", "f32")
    spec = _spec(tmp_path, precision="bf16")
    model, entry = _model()
    if not with_bf16:
        assert "no fast bf16 kernels" in ov_backend.OpenVinoBackend.check("cpu", "bf16")
        with pytest.raises(BackendUnavailable, match="this CPU has no fast bf16 kernels"):
            create_backend(model, entry, SHAPE, "openvino", "cpu", "bf16", fallback=False,
                           calibration_file=str(spec.path))
        with caplog.at_level(logging.WARNING, logger="espnet_ros"):
            backend = create_backend(model, entry, SHAPE, "openvino", "cpu", "bf16",
                                     calibration_file=str(spec.path))
        assert backend.precision != "bf16"
        assert "no fast bf16 kernels" in backend.info["fallback"]
        return
    backend = create_backend(model, entry, SHAPE, "openvino", "cpu", "bf16", fallback=False,
                             calibration_file=str(spec.path))
    assert backend.precision == "bf16" and backend.info["gate"].startswith("passed")
    with pytest.raises(BackendUnavailable, match="made for bf16, not int8"):
        create_backend(model, entry, SHAPE, "openvino", "cpu", "int8", fallback=False,
                       calibration_file=str(spec.path))


def test_int8_on_a_cpu_without_int8_kernels_is_refused_with_the_reason(tmp_path, monkeypatch):
    """OpenVINO reports INT8 on every x86-64 CPU it supports, so the serving tests above run
    everywhere; the other branch is stubbed (or real, on such a CPU)."""
    if _cpu_has("INT8"):
        _as_cpu(monkeypatch, [c for c in ov_backend.cpu_capabilities() if c != "INT8"])
    spec = _spec(tmp_path)
    model, entry = _model()
    with pytest.raises(BackendUnavailable, match="this CPU has no fast int8 kernels"):
        create_backend(model, entry, SHAPE, "openvino", "cpu", "int8", fallback=False,
                       calibration_file=str(spec.path))


def test_the_node_passes_its_calibration_parameter_to_the_backend():
    from espnet_ros.messages.params import defaults, pipeline_kwargs
    assert backend_options({"calibration_file": ""}) == {}
    assert backend_options({"calibration_file": "/x/cal"}) == {"calibration_file": "/x/cal"}
    config = dict(defaults(), calibration_file="/x/cal")
    assert pipeline_kwargs(config)["backend_options"] == {"calibration_file": "/x/cal"}


# -- commands end to end ---------------------------------------------------------------------

def test_calibrate_then_eval_int8_on_camvid(data_dir, tmp_path):
    """A few CamVid frames at a small size: calibrate writes the file and the cached model,
    eval --precision int8 serves it (or refuses it with the gate's figures)."""
    out = tmp_path / "cal"
    code = main(["calibrate", "--model", "espnet-p2q8-camvid", "--dataset", "camvid",
                 "--data-root", str(data_dir / "camvid"), "--frames", "3", "--gate-frames", "3",
                 "--size", "120x96", "--out", str(out)])
    assert code in (0, 1)
    spec = load_spec(out)
    assert spec.precision == "int8" and spec.gate.split == "test" and spec.gate.count == 3
    (cached,) = out.glob("*.ovz")
    result = lowp.load(cached).gate
    assert result.frames == 3 and result.miou_fp32 is not None   # CamVid test has labels
    assert code == (0 if result.passed else 1)
    args = ["eval", "--model", "espnet-p2q8-camvid", "--dataset", "camvid", "--data-root",
            str(data_dir / "camvid"), "--split", "test", "--limit", "2", "--size", "120x96",
            "--precision", "int8", "--calibration", str(out), "--no-plot", "--no-progress"]
    if not result.passed:
        assert main(args + ["--out", str(tmp_path / "refused")]) == 2
        args.append("--ignore-gate")
    assert main(args + ["--out", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    text = json.dumps(report)
    assert '"precision": "int8"' in text and '"backend": "openvino"' in text
    assert result.summary() in text


def test_bench_cpu_labels_rows(data_dir, tmp_path):
    spec = _spec(tmp_path)
    args = ["bench", "cpu", "--study", "labels", "--model", "espnet-p2q3-cityscapes", "--size",
            "64x32", "--rounds", "2", "--iterations", "1", "--camvid-frames", "1",
            "--calibration", str(spec.path), "--out", str(tmp_path / "bench")]
    assert main(args) == 0
    (result,) = json.loads((tmp_path / "bench" / "bench_cpu_labels.json").read_text())
    rows = {r["path"]: r for r in result["rows"]}
    assert list(rows) == ["original code", "default (torch fp32)", "openvino fp32",
                          "openvino int8"]
    assert rows["original code"]["speedup"] == 1.0
    for row in rows.values():
        assert "error" not in row, row
        assert row["median_ms"] > 0 and len(row["round_ms"]) == 2
        assert list(row["stages_ms"]) == ["preprocess", "forward", "argmax"]
        assert 0 < row["first_label_build_s"] <= row["first_label_process_s"]
    for name in ("default (torch fp32)", "openvino fp32"):
        assert rows[name]["agreement_min"] >= 0.999 and rows[name]["gate"] is None
    gate_row = rows["openvino int8"]["gate"]
    assert gate_row is not None and "agreement_min" in gate_row
    markdown = (tmp_path / "bench" / "bench_cpu_labels.md").read_text()
    assert "x vs original" in markdown and "load average" in markdown
    assert "best gated path" in markdown
    # The CPU it ran on, with the flags, and the goal that follows from its kernels.
    from espnet_ros.bench.cpu_features import describe, text
    assert result["cpu"] == json.loads(json.dumps(describe()))
    assert text(describe()) in markdown and "flags: " in markdown
