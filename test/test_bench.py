"""``espnet-ros bench``: the system and cpu benchmarks end to end on tiny configurations
(structure, never speed), the reports, GPU clock handling and energy windows with fakes."""
import json

import pytest

from espnet_ros.bench import clocks, report
from espnet_ros.bench.stats import paired_ratios, percentile
from espnet_ros.bench.system import EnergyWindow
from espnet_ros.cli import build_parser, main

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
    assert result["schema"] == "espnet_ros.bench.system/1"
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
