"""``espnet-ros bench``: the system and cpu benchmarks end to end on tiny configurations
(structure, never speed), the reports, GPU clock handling and energy windows with fakes."""
import json

import pytest
from test_power import HWMON, hwmon_rail

from espnet_ros.bench import clocks, frequency, report, sizes
from espnet_ros.bench.stats import paired_ratios, percentile
from espnet_ros.bench.system import EnergyWindow, SystemConfig, run_system
from espnet_ros.cli import build_parser, main
from espnet_ros.power import detect_power_source

TINY = ["--models", "espnet-p2q3-cityscapes", "--sizes", "64x32", "--iterations", "2",
        "--warmup", "1"]


@pytest.fixture(scope="module")
def system_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert main(["bench", "system"] + TINY + ["--out", str(out)]) == 0
    return out, json.loads((out / "bench_system.json").read_text())


def test_bench_system_writes_markdown_json_and_plot(system_run):
    out, result = system_run
    assert (out / "fps_vs_resolution.png").stat().st_size > 1000
    assert result["schema"] == "espnet_ros.bench.system/2"
    assert result["command"].startswith("espnet-ros ")
    assert result["config"]["sizes"] == ["64x32"]
    assert "torch" in result["config"]["backends"]
    assert len(result["rows"]) == len(result["config"]["backends"])
    for row in result["rows"]:
        assert row["status"] == "ok", row["status"]
        assert row["model"] == "espnet-p2q3-cityscapes" and row["size"] == "64x32"
        assert row["parameters"] == 202649 and row["size_mb"] > 0 and row["gmacs"] > 0
        assert row["fps"] > 0 and row["latency_ms_p95"] >= row["latency_ms_p50"] > 0
        assert row["peak_rss_mb"] > 0 and row["added_rss_mb"] is not None
        if not result["power"]["available"]:
            assert row["power_w"] is None and row["power_source"].startswith("unavailable")
    assert result["power"]["available"] or result["power"]["reason"]
    markdown = (out / "bench_system.md").read_text()
    assert "| model | backend | params |" in markdown and "FPS@64x32" in markdown
    assert "machine:" in markdown and "command: `espnet-ros bench system" in markdown
    assert "## GPU frequency sensitivity" in markdown and "not requested" in markdown


def test_bench_system_sizes_the_three_networks_side_by_side(system_run):
    out, result = system_run
    section = result["model_sizes"]
    assert list(section["models"])[:3] == ["espnet-p2q8-cityscapes", "enet", "erfnet"]
    assert "espnet-p2q3-cityscapes" in section["models"]   # the measured model too
    espnet = section["models"]["espnet-p2q8-cityscapes"]
    assert espnet["parameters"] == 364569
    assert espnet["fp32_params_mb"] == 364569 * 4 / 1e6 and espnet["fp16_params_mb"] == 364569 * 2 / 1e6
    assert 0.5 < espnet["fp16_file_mb"] / espnet["fp32_file_mb"] < 0.53   # floats halved
    assert section["ratios"]["erfnet"]["paper"] == 5.45 and section["ratios"]["enet"]["paper"] == 1.12
    erfnet = section["models"]["erfnet"]
    assert section["ratios"]["erfnet"]["fp32_file"] == erfnet["fp32_file_mb"] / espnet["fp32_file_mb"]
    row = result["rows"][0]
    assert row["size_fp16_mb"] < row["size_mb"] and row["engine_mb"] is None
    markdown = (out / "bench_system.md").read_text()
    assert "## Model size" in markdown and "| erfnet | 2,064,256 |" in markdown
    assert "The paper's 0.7 MB for ESPNet is nearest its fp16 parameters" in markdown


def test_the_paper_size_is_reconciled_with_fp16_parameters():
    size = sizes.model_size("espnet-p2q8-cityscapes")
    sentence, readings = sizes.reconcile_paper_size(size)
    assert readings["fp16 parameters, MiB"] == pytest.approx(0.6954, abs=1e-4)
    assert "364,569 parameters x 2 bytes = 0.729 MB = 0.695 MiB" in sentence
    assert "1.55 MB, 2.21x" in sentence


def test_engine_sizes_from_torch2trt_rows_reach_the_size_table():
    rows = [{"model": "erfnet", "size": "1024x512", "precision": "fp16", "engine_mb": 4.5},
            {"model": "enet", "size": "1024x512", "precision": "fp16", "engine_mb": None}]
    section = sizes.size_section(["erfnet"], rows)
    assert section["models"]["erfnet"]["engine_mb"] == {"1024x512 fp16": 4.5}
    assert "4.50 (1024x512 fp16)" in report.size_table(section)


def test_bench_system_samples_utilization_over_the_run(system_run):
    pytest.importorskip("psutil")
    out, result = system_run
    series = json.loads((out / "utilization.json").read_text())
    assert series["sources"][0] == "psutil" and len(series["samples"]) >= 2
    assert result["utilization"]["samples"] == len(series["samples"])  # summary only in the report
    phases = {w["phase"] for w in series["windows"]}
    for row in result["rows"]:
        label = "%s/%s/%s" % (row["model"], row["backend"], row["size"])
        assert label in phases
        assert row["utilization"]["samples"] >= 1
        assert 0 <= row["utilization"]["cpu_percent_mean"] <= 100
        assert row["utilization"]["process_rss_mb_max"] > 0
    header = (out / "utilization.csv").read_text().splitlines()[0]
    assert header.startswith("t_s,phase,cpu_percent,process_cpu_percent")
    assert (out / "utilization.png").stat().st_size > 1000
    assert "## Utilization" in (out / "bench_system.md").read_text()


def test_op_profile_splits_the_forward_by_kind_of_op(tmp_path):
    args = ["bench", "system", "--models", "espnet-p2q3-cityscapes,enet", "--backends", "torch",
            "--sizes", "64x32", "--iterations", "2", "--warmup", "1", "--op-profile",
            "--no-utilization", "--no-plots", "--out", str(tmp_path)]
    assert main(args) == 0
    result = json.loads((tmp_path / "bench_system.json").read_text())
    assert result["command"].endswith("--op-profile --no-utilization")
    espnet, enet = result["op_profile"]["espnet-p2q3-cityscapes"], result["op_profile"]["enet"]
    for prof in (espnet, enet):
        assert prof["size"] == "64x32" and prof["split_ms"]["conv"] > 0
        assert prof["total_ms"] == pytest.approx(sum(prof["split_ms"].values()))
        assert prof["conv_gmacs_per_s"] == pytest.approx(prof["gmacs"] / prof["conv_ms"] * 1e3)
    assert espnet["split_ms"]["prelu"] > 0 and espnet["split_ms"]["concat"] > 0
    assert "unpooling" in enet["split_ms"] and "unpooling" not in espnet["split_ms"]
    markdown = (tmp_path / "bench_system.md").read_text()
    assert "## Where the CPU time goes" in markdown and "| enet | 64x32 |" in markdown


def test_ops_are_grouped_by_kind():
    from espnet_ros.bench.profile import category
    assert category("aten::mkldnn_convolution") == category("aten::conv_transpose2d") == "conv"
    assert category("aten::_prelu_kernel") == "prelu" and category("aten::clamp_min_") == "relu"
    assert category("aten::max_unpool2d") == "unpooling" and category("aten::avg_pool2d") == "pooling"
    assert category("aten::cat") == "concat" and category("aten::add") == "add"
    assert category("aten::native_batch_norm") == "batch norm" and category("aten::view") == "other"


def test_plain_bench_means_bench_system():
    args = build_parser().parse_args(["bench"] + TINY)
    assert args.func.__name__ == "run_system" and args.bench_command is None
    args = build_parser().parse_args(["bench", "system"] + TINY)
    assert args.func.__name__ == "run_system" and args.sizes == ((64, 32),)


def test_bench_node_is_a_sibling_subcommand():
    pytest.importorskip("espnet_ros.cli.bench_node")
    args = build_parser().parse_args(["bench", "node", "--seconds", "1"])
    assert args.bench_command == "node"


def test_unknown_model_is_a_user_error(tmp_path, capsys):
    assert main(["bench", "--models", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_accuracy_plot_from_eval_results(system_run, tmp_path):
    _, result = system_run
    eval_json = tmp_path / "eval.json"
    eval_json.write_text(json.dumps({"model": "espnet-p2q3-cityscapes", "miou": 0.55}))
    accuracy = report.load_accuracy([eval_json])
    assert accuracy == {"espnet-p2q3-cityscapes": 0.55}
    paths = report.write_reports(result, tmp_path / "out", accuracy)
    assert paths["accuracy_plot"].stat().st_size > 1000
    assert json.loads(paths["json"].read_text())["accuracy"] == accuracy


def test_unavailable_rows_are_reported_not_dropped(system_run):
    _, result = system_run
    result = dict(result, rows=result["rows"] + [dict(result["rows"][0], backend="torch2trt",
                                                      status="unavailable: no CUDA device")])
    assert "| n/a |" in report.summary_table(result)
    assert "unavailable: no CUDA device" in report.detail_table(result)


def test_bench_cpu_runs_end_to_end(tmp_path):
    args = ["bench", "cpu", "--model", "espnet-p2q3-cityscapes", "--size", "64x32", "--rounds",
            "2", "--iterations", "1", "--steps", "fold_bn", "--threads", "", "--no-onnxruntime",
            "--camvid-frames", "1", "--out", str(tmp_path)]
    assert main(args) == 0
    result = json.loads((tmp_path / "bench_cpu.json").read_text())
    assert [r["candidate"] for r in result["rows"]] == ["eager", "+fold_bn"]
    for row in result["rows"]:
        assert row["median_ms"] > 0 and len(row["round_ms"]) == 2
        assert 0.999 <= row["agreement_min"] <= 1.0
    assert result["rows"][0]["speedup"] == 1.0
    assert "speed-up vs eager" in (tmp_path / "bench_cpu.md").read_text()


def test_statistics():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 95) == 5.0 and percentile([], 50) is None
    assert percentile(list(range(101)), 95) == 95.0
    assert paired_ratios([10, 20], [5, 10]) == [2.0, 2.0]


class FakeMeter:
    available, name, reason = True, "fake-counter", ""

    def __init__(self):
        self.joules = 0.0

    def start(self):
        self.joules = 0.0

    def read(self):
        self.joules += 0.5
        return self.joules


def test_energy_window_with_and_without_a_source():
    with EnergyWindow(FakeMeter(), interval_s=0.01) as window:
        pass
    assert window.joules >= 0.5 and not window.reason
    unavailable = type("U", (), {"available": False, "reason": "no rails"})()
    with EnergyWindow(unavailable) as window:
        pass
    assert window.joules is None and window.reason == "no rails"


def _fake_devfreq(root, current=1300500000, available="114750000 522750000 1300500000"):
    node = root / "sys" / "class" / "devfreq" / "17000000.gp10b"
    node.mkdir(parents=True)
    (node / "cur_freq").write_text("%d\n" % current)
    (node / "available_frequencies").write_text(available + "\n")
    (node / "min_freq").write_text("114750000\n")
    (node / "max_freq").write_text("1300500000\n")
    return node


def test_jetson_gpu_clocks_are_read_pinned_and_restored(tmp_path):
    node = _fake_devfreq(tmp_path)
    gpu = clocks.detect_gpu_clocks(root=str(tmp_path), use_nvml=False)
    assert gpu.source == "jetson-devfreq" and gpu.current_mhz() == pytest.approx(1300.5)
    assert gpu.available_mhz() == pytest.approx([114.75, 522.75, 1300.5])
    assert gpu.can_set
    gpu.pin_mhz(522.75)
    assert (node / "min_freq").read_text() == (node / "max_freq").read_text() == "522750000"
    gpu.restore()
    assert (node / "min_freq").read_text().strip() == "114750000"
    assert (node / "max_freq").read_text().strip() == "1300500000"


def test_no_gpu_clocks_is_reported_with_a_reason(tmp_path):
    gpu = clocks.detect_gpu_clocks(root=str(tmp_path), use_nvml=False)
    assert not gpu.available and "devfreq" in gpu.reason
    assert clocks.sweep_points([100, 200, 300, 400, 500, 600, 700], 4) == [100, 300, 500, 700]
    assert clocks.sweep_points([100, 200], 4) == [100, 200]


# -- GPU frequency sensitivity ------------------------------------------------------------------

def test_sensitivity_arithmetic_on_known_numbers():
    points = [{"mhz": 1300.0, "inference_ms_p50": 50.0}, {"mhz": 800.0, "inference_ms_p50": 80.0},
              {"mhz": 1000.0, "inference_ms_p50": 70.0}]
    pairs = frequency.sensitivity(points)
    assert [(p["low_mhz"], p["high_mhz"]) for p in pairs] == [(800.0, 1000.0), (1000.0, 1300.0)]
    # 800 -> 1000 MHz: +25 % clock, 80 -> 70 ms: -12.5 % time -> 0.5
    assert pairs[0]["time_change_pct"] == pytest.approx(12.5)
    assert pairs[0]["freq_change_pct"] == pytest.approx(25.0)
    assert pairs[0]["sensitivity"] == pytest.approx(0.5) and pairs[0]["clock_bound"] == 0.8
    # 1000 -> 1300: +30 %, 70 -> 50: -28.57 % -> 0.952
    assert pairs[1]["sensitivity"] == pytest.approx((20 / 70) / 0.3)
    overall = frequency.overall(points)
    assert (overall["low_mhz"], overall["high_mhz"]) == (800.0, 1300.0)
    assert overall["sensitivity"] == pytest.approx((30 / 80) / (500 / 800))
    # Time exactly proportional to 1/f is the clock-bound value; no change is 0.
    bound = frequency.sensitivity([{"mhz": 500.0, "inference_ms_p50": 40.0},
                                   {"mhz": 1000.0, "inference_ms_p50": 20.0}])[0]
    assert bound["sensitivity"] == pytest.approx(bound["clock_bound"]) == 0.5
    flat = frequency.sensitivity([{"mhz": 500.0, "inference_ms_p50": 40.0},
                                  {"mhz": 1000.0, "inference_ms_p50": 40.0}])[0]
    assert flat["sensitivity"] == 0.0
    assert frequency.sensitivity([{"mhz": 500.0, "inference_ms_p50": None}]) == []
    assert frequency.overall([{"mhz": 500.0, "inference_ms_p50": 3.0}]) is None


class RecordingClocks(clocks.DevfreqClocks):
    """The fake Jetson devfreq node, remembering what was pinned."""

    def __init__(self, node):
        super().__init__(node)
        self.pinned = []

    def pin_mhz(self, mhz):
        super().pin_mhz(mhz)
        self.pinned.append(mhz)


def test_sweep_pins_each_clock_and_measures_power_there(tmp_path):
    node = _fake_devfreq(tmp_path, available="114750000 522750000 828750000 1300500000")
    gpu = RecordingClocks(node)
    hwmon_rail(tmp_path, HWMON, 1, "VDD_IN", 5000, 1000)  # a 5 W Jetson input rail
    meter = detect_power_source(str(tmp_path), sources=("ina3221_hwmon",))
    seen = []
    start = meter.start

    def start_and_look():  # which clock is pinned while energy is measured
        seen.append((node / "min_freq").read_text().strip())
        start()

    meter.start = start_and_look
    config = SystemConfig(models=("espnet-p2q3-cityscapes", "erfnet"), backends=("torch",),
                          sizes=((64, 32),), iterations=2, warmup=1, gpu_sweep=True)
    result = run_system(config, log=lambda *_: None, clocks=gpu, meter=meter)
    sweep = result["gpu_clocks"]["sweep"]
    assert list(sweep) == ["espnet-p2q3-cityscapes", "erfnet"]
    assert gpu.pinned == [114.75, 522.75, 828.75, 1300.5] * 2
    assert seen[-8:] == ["114750000", "522750000", "828750000", "1300500000"] * 2
    assert (node / "min_freq").read_text().strip() == "114750000"      # restored
    assert (node / "max_freq").read_text().strip() == "1300500000"
    for run in sweep.values():
        assert run["backend"] == "torch" and run["size"] == "64x32"
        assert [p["mhz"] for p in run["points"]] == [114.75, 522.75, 828.75, 1300.5]
        for point in run["points"]:
            assert point["power_source"] == "ina3221_hwmon:VDD_IN"
            assert point["power_w"] > 0
            assert point["energy_j_per_frame"] * point["fps"] == pytest.approx(point["power_w"])
            assert point["inference_ms_p50"] > 0
        assert len(run["pairs"]) == 3 and run["overall"]["low_mhz"] == 114.75
        assert run["pairs"][0]["clock_bound"] == pytest.approx(114.75 / 522.75)
    assert result["rows"][0]["power_source"] == "ina3221_hwmon:VDD_IN"
    markdown = report.markdown(dict(result, command="test"))
    assert "### erfnet (torch, 64x32)" in markdown and "| 828 |" not in markdown
    assert "| 829 |" in markdown and "(lowest -> highest)" in markdown


class ReadOnlyClocks(clocks.DevfreqClocks):
    can_set = False   # as for a user who is not root


def test_sweep_is_skipped_with_the_reason(tmp_path):
    gpu = ReadOnlyClocks(_fake_devfreq(tmp_path))
    config = SystemConfig(models=("espnet-p2q3-cityscapes",), backends=("torch",),
                          sizes=((64, 32),), iterations=1, warmup=1, gpu_sweep=True,
                          utilization=False)
    result = run_system(config, log=lambda *_: None, clocks=gpu)
    assert result["gpu_clocks"]["sweep"] == {} and result["gpu_clocks"]["current_mhz"] == 1300.5
    assert result["gpu_clocks"]["sweep_reason"] == "GPU clocks cannot be pinned here (needs root)"
    assert "Not measured: GPU clocks cannot be pinned" in report.markdown(dict(result, command="x"))
    assert result["utilization"]["unavailable"] == {"all": "disabled (--no-utilization)"}


def test_the_labels_report_says_why_a_model_that_passed_its_gate_is_refused():
    from espnet_ros.bench.labels import _gate_text
    refused = {"agreement_mean": 0.9965, "agreement_min": 0.9949, "reasons": [], "passed": False,
               "refusal": "int8 refused: no convolution runs in int8 (0 of 85), so this is the "
                          "fp32 model; use bf16, or calibrate on other frames",
               "refusal_cause": "no convolution runs in int8 (0 of 85)"}
    assert _gate_text(refused) == \
        "REFUSED (no convolution runs in int8 (0 of 85)) 99.65 % (worst frame 99.49 %)"
    failed = dict(refused, reasons=["pixel agreement 98.99 % < 99.00 %"],
                  refusal="int8 refused by the accuracy gate (cal): failed: ...",
                  refusal_cause="accuracy gate")
    assert _gate_text(failed) == "FAILED 99.65 % (worst frame 99.49 %)"
    assert _gate_text(dict(refused, passed=True, refusal=None, miou_fp32=57.17,
                           miou_candidate=57.12)) == \
        "passed 99.65 % (worst frame 99.49 %), mIoU 57.17 -> 57.12"
    assert _gate_text(None) == "-"


CPUINFO = """processor\t: 0
cpu family\t: 23
model\t\t: 49
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse2 avx avx2 fma
"""
CPUINFO_AVX512 = CPUINFO.replace("avx avx2 fma", "avx avx2 fma avx512f avx512bw avx512_bf16")


def test_the_labels_report_names_the_cpu_and_its_goal_follows_the_kernels():
    from espnet_ros.bench.cpu_features import describe, text
    zen2 = describe(CPUINFO, env={}, torch_kernels="AVX2")
    assert zen2["model"] == "AMD EPYC 7B12 (family 23, model 49)"
    assert zen2["flags"] == ["avx2", "fma"] and not zen2["avx512"] and zen2["goal"] == 3.0
    assert text(zen2) == ("CPU: AMD EPYC 7B12 (family 23, model 49); flags: avx2 fma; PyTorch "
                          "kernels: AVX2; goal x3 (no AVX-512 kernels)")
    wide = describe(CPUINFO_AVX512, env={}, torch_kernels="AVX512")
    assert wide["avx512"] and wide["goal"] == 5.0
    assert wide["flags"] == ["avx2", "fma", "avx512f", "avx512bw", "avx512_bf16"]
    # Kernels capped at AVX2 on an AVX-512 machine: the AVX2 goal, and the report says why.
    capped = describe(CPUINFO_AVX512, env={"ONEDNN_MAX_CPU_ISA": "AVX2"},
                      torch_kernels="AVX512")
    assert not capped["avx512"] and capped["goal"] == 3.0
    assert "capped by ONEDNN_MAX_CPU_ISA=AVX2; goal x3" in text(capped)
    assert describe("", env={}, torch_kernels="DEFAULT")["model"] == "unknown"


def _labels_row(path, speedup, agreement_mean, gate=None):
    return {"path": path, "speedup": speedup, "agreement_mean": agreement_mean, "gate": gate}


def test_the_labels_verdict_counts_only_gated_paths_with_99_percent_of_the_labels_equal():
    from espnet_ros.bench.cpu_features import describe
    from espnet_ros.bench.labels import verdict
    cpu = describe(CPUINFO_AVX512, env={}, torch_kernels="AVX512")
    rows = [_labels_row("original code", 1.0, 1.0),
            _labels_row("default (torch fp32)", 2.86, 1.0),
            _labels_row("openvino bf16", 3.41, 0.9881, {"passed": True}),
            _labels_row("openvino int8", 3.9, 0.995, {"passed": False})]
    text = verdict({"rows": rows, "cpu": cpu})
    assert text.startswith("best gated path with >= 99 % of the labels equal: default (torch "
                           "fp32), x2.86 the original code image->labels (goal x5: not met)")
    assert text.endswith("faster but below 99 % equal: openvino bf16, x3.41 (98.81 % equal)")
    avx2 = describe(CPUINFO, env={}, torch_kernels="AVX2")
    rows[2]["agreement_mean"] = 0.995
    assert verdict({"rows": rows, "cpu": avx2}) == (
        "best gated path with >= 99 % of the labels equal: openvino bf16, x3.41 the original "
        "code image->labels (goal x3: met)")
    assert verdict({"rows": rows[:1] + [dict(rows[3])], "cpu": avx2}).startswith(
        "no path passed its gate")
    assert verdict({"rows": rows[:1], "cpu": avx2}) == "no path ran"
