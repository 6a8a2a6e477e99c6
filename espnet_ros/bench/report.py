"""Benchmark reports: Markdown tables, JSON for regression tracking, PNG plots (matplotlib Agg).

``write_reports`` for ``bench system``, ``write_cpu_report`` and ``write_labels_report`` for the
two studies of ``bench cpu``.
"""
import json
import os
from collections import OrderedDict
from pathlib import Path


def _fmt(value, pattern="%.1f", missing="-"):
    return missing if value is None else pattern % value


def _ok(rows):
    return [r for r in rows if r.get("status") == "ok"]


def _pixels(size):
    width, height = (int(v) for v in size.split("x"))
    return width * height


def summary_table(result):
    """One row per model and backend: facts, then FPS per resolution."""
    sizes = result["config"]["sizes"]
    mac_size = "1024x512" if "1024x512" in sizes else sizes[-1]
    header = ["model", "backend", "params", "size MB", "GMACs@%s" % mac_size] + \
        ["FPS@%s" % s for s in sizes]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    groups = OrderedDict()
    for row in result["rows"]:
        groups.setdefault((row["model"], row["backend"]), {})[row["size"]] = row
    for (model, backend), by_size in groups.items():
        first = next(iter(by_size.values()))
        gmacs = by_size.get(mac_size, first)["gmacs"] if mac_size in by_size else None
        cells = [model, backend, "{:,}".format(first["parameters"]), "%.2f" % first["size_mb"],
                 _fmt(gmacs, "%.3f")]
        for size in sizes:
            row = by_size.get(size)
            if row is None:
                cells.append("-")
            elif row.get("status") != "ok":
                cells.append("n/a")
            else:
                cells.append("%.1f" % row["fps"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _util(row, field):
    return (row.get("utilization") or {}).get(field)


def detail_table(result):
    header = ["model", "backend", "precision", "resolution", "GMACs", "FPS", "p50 ms", "p95 ms",
              "inference p50 ms", "peak RSS MB (+added)", "CPU % all / process", "GPU %",
              "power W", "J/frame", "engine MB"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in result["rows"]:
        if row.get("status") != "ok":
            lines.append("| %s | %s | %s | %s | %.3f | %s |%s" % (
                row["model"], row["backend"], row["precision"], row["size"], row["gmacs"],
                row["status"].replace("|", "/")[:120], " |" * (len(header) - 6)))
            continue
        lines.append("| " + " | ".join([
            row["model"], row["backend"], row["precision"], row["size"], "%.3f" % row["gmacs"],
            "%.1f" % row["fps"], "%.1f" % row["latency_ms_p50"], "%.1f" % row["latency_ms_p95"],
            _fmt(row["inference_ms_p50"]),
            "%s (+%s)" % (_fmt(row["peak_rss_mb"], "%.0f"), _fmt(row.get("added_rss_mb"), "%.0f")),
            "%s / %s" % (_fmt(_util(row, "cpu_percent_mean"), "%.0f"),
                         _fmt(_util(row, "process_cpu_percent_mean"), "%.0f")),
            _fmt(_util(row, "gpu_percent_mean"), "%.0f", "n/a"),
            _fmt(row["power_w"], "%.2f", "n/a"), _fmt(row["energy_j_per_frame"], "%.3f", "n/a"),
            _fmt(row.get("engine_mb"), "%.2f"),
        ]) + " |")
    return "\n".join(lines)


def size_table(section):
    """The paper's three networks (and the other measured models) side by side."""
    header = ["model", "params", "fp32 params MB", "fp32 file MB", "fp16 params MB",
              "fp16 file MB", "engine MB", "x ESPNet (file)", "x ESPNet (params)", "paper"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    ratios = section["ratios"]
    for name, size in section["models"].items():
        ratio = ratios.get(name)
        engines = ", ".join("%.2f (%s)" % (mb, key) for key, mb in size["engine_mb"].items())
        lines.append("| " + " | ".join([
            name, "{:,}".format(size["parameters"]), "%.3f" % size["fp32_params_mb"],
            "%.3f" % size["fp32_file_mb"], "%.3f" % size["fp16_params_mb"],
            "%.3f" % size["fp16_file_mb"], engines or "-",
            "%.2fx" % ratio["fp32_file"] if ratio else ("1.00x" if name == section["reference"]
                                                       else "-"),
            "%.2fx" % ratio["parameters"] if ratio else ("1.00x" if name == section["reference"]
                                                         else "-"),
            "%.2fx" % ratio["paper"] if ratio else "-"]) + " |")
    return "\n".join(lines)


def sweep_section(clocks):
    """Per model: each pinned clock's time, power and energy, then the sensitivity pairs."""
    if not clocks["sweep"]:
        return ["## GPU frequency sensitivity", "",
                "Not measured: %s." % (clocks.get("sweep_reason") or "no sweep"), ""]
    lines = ["## GPU frequency sensitivity", "",
             "sensitivity = (% decrease of inference time) / (% increase of GPU clock) between "
             "neighbouring pinned clocks, both from the lower one; a purely clock-bound network "
             "gives f_low/f_high (column 'clock-bound').", ""]
    for model, sweep in clocks["sweep"].items():
        lines += ["### %s (%s, %s)" % (model, sweep["backend"], sweep["size"]), ""]
        if sweep.get("status"):
            lines += [sweep["status"], ""]
            continue
        lines += ["| GPU MHz | FPS | inference p50 ms | power W | J/frame | GPU % |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for p in sweep["points"]:
            lines.append("| %.0f | %.1f | %s | %s | %s | %s |" % (
                p["mhz"], p["fps"], _fmt(p["inference_ms_p50"]), _fmt(p["power_w"], "%.2f", "n/a"),
                _fmt(p["energy_j_per_frame"], "%.3f", "n/a"),
                _fmt(_util(p, "gpu_percent_mean"), "%.0f", "n/a")))
        lines += ["", "| clocks MHz | time change % | clock change % | sensitivity | clock-bound |",
                  "| --- | --- | --- | --- | --- |"]
        pairs = list(sweep["pairs"]) + ([dict(sweep["overall"], overall=True)]
                                        if sweep["overall"] and len(sweep["pairs"]) > 1 else [])
        for pair in pairs:
            lines.append("| %.0f -> %.0f%s | %.1f | %.1f | %.2f | %.2f |" % (
                pair["low_mhz"], pair["high_mhz"], " (lowest -> highest)" if pair.get("overall")
                else "", pair["time_change_pct"], pair["freq_change_pct"], pair["sensitivity"],
                pair["clock_bound"]))
        lines.append("")
    return lines


OP_COLUMNS = ("conv", "concat", "add", "batch norm", "prelu", "relu", "pooling", "unpooling")


def op_profile_lines(profiles):
    if not profiles:
        return []
    header = ["model", "resolution", "profiled ms", "GMACs", "conv GMAC/s"] + \
        ["%s %%" % c for c in OP_COLUMNS] + ["other %"]
    lines = ["## Where the CPU time goes (torch profiler)", "",
             "Self CPU time of the torch backend's forward by kind of op (its CPU steps "
             "applied: BatchNorm after a conv is folded into it); conv GMAC/s = the model's "
             "MACs per second of convolution time.", "",
             "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for model, prof in profiles.items():
        total = prof["total_ms"] or 1e-9
        split = prof["split_ms"]
        other = total - sum(split.get(c, 0.0) for c in OP_COLUMNS)
        lines.append("| " + " | ".join(
            [model, prof["size"], "%.1f" % prof["total_ms"], "%.3f" % prof["gmacs"],
             _fmt(prof["conv_gmacs_per_s"])] +
            ["%.1f" % (100 * split.get(c, 0.0) / total) for c in OP_COLUMNS] +
            ["%.1f" % (100 * other / total)]) + " |")
    return lines + [""]


def utilization_lines(series):
    if not series:
        return []
    missing = "; ".join("%s: %s" % kv for kv in series.get("unavailable", {}).items())
    samples = series["samples"]
    return ["## Utilization", "",
            "- sources: %s, every %.2f s; %d samples (`utilization.csv`, `utilization.json`, "
            "`utilization.png`)" % (", ".join(series["sources"]) or "none",
                                    series["interval_s"],
                                    samples if isinstance(samples, int) else len(samples)),
            "- not measured: %s" % (missing or "nothing"),
            "- per row (timed frames only): the 'CPU %' and 'GPU %' columns above; CPU % all = "
            "every core (100 = all busy), process = this process (100 = one core)", ""]


def markdown(result):
    machine = result["machine"]
    config = result["config"]
    power = result["power"]
    clocks = result["gpu_clocks"]
    lines = [
        "# espnet-ros bench system", "",
        "- machine: %s, %s CPU(s), %s torch thread(s); %s; Python %s, torch %s, onnxruntime %s%s"
        % (machine["cpu"], machine["cpu_count"], machine["torch_threads"], machine["platform"],
           machine["python"], machine["torch"], machine.get("onnxruntime") or "-",
           ("; GPU %s" % machine["gpu"]) if machine.get("gpu") else ""),
        "- command: `%s`" % result.get("command", "espnet-ros bench system"),
        "- %d timed frames after %d warm-up frames per row (warm-up and engine builds excluded "
        "from time, memory and energy); frame: %s; device %s, %s; torch backend steps: %s"
        % (config["iterations"], config["warmup"], config["frame"], config["device"],
           config["precision"], config.get("torch_optimize", "default")),
        "- FPS and latency are end to end (uint8 frame in, labels out); peak RSS is the "
        "process's, +added the part above the process before the row's backend was built",
        "- power: %s" % (power["source"] if power["available"] else
                         "unavailable (%s)" % power["reason"]),
        "- GPU clocks: %s" % (
            "%s, %s MHz now, %s" % (clocks["source"], _fmt(clocks["current_mhz"], "%.0f"),
                                   "sweep below" if clocks["sweep"] else "not pinned")
            if clocks["source"] != "unavailable" else "unavailable (%s)" % clocks["reason"]),
        "", "## FPS per resolution", "", summary_table(result),
        "", "## Details", "", detail_table(result), ""]
    if result.get("model_sizes"):
        section = result["model_sizes"]
        lines += ["## Model size", "",
                  "MB = 10^6 bytes; file = the state dict as torch.save writes it (fp16: floats "
                  "cast first); x ESPNet = times the size of %s; paper = the ESPNet paper's "
                  "figure (32-bit, uncompressed)." % section["reference"], "",
                  size_table(section), "", section["paper_mb_note"], ""]
    lines += sweep_section(clocks)
    lines += op_profile_lines(result.get("op_profile"))
    lines += utilization_lines(result.get("utilization"))
    return "\n".join(lines)


def load_accuracy(paths):
    """{model: mIoU} from eval.json files of ``espnet-ros eval`` or a {model: mIoU} mapping."""
    accuracy = OrderedDict()
    for path in paths:
        data = json.loads(Path(path).read_text())
        items = data if isinstance(data, list) else [data]
        for item in items:
            if "model" in item and "miou" in item:
                accuracy[item["model"]] = float(item["miou"])
            else:
                accuracy.update((k, float(v)) for k, v in item.items()
                                if isinstance(v, (int, float)))
    return accuracy


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot
    return pyplot


def plot_fps(result, path):
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    groups = OrderedDict()
    for row in _ok(result["rows"]):
        groups.setdefault("%s (%s)" % (row["model"], row["backend"]), []).append(row)
    for label, rows in groups.items():
        rows = sorted(rows, key=lambda r: _pixels(r["size"]))
        axes.plot([_pixels(r["size"]) / 1e6 for r in rows], [r["fps"] for r in rows],
                  marker="o", label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("input megapixels (%s)" % ", ".join(result["config"]["sizes"]))
    axes.set_ylabel("frames per second (end to end)")
    axes.set_title("FPS vs resolution on %s" % result["machine"].get("gpu", result["machine"]["cpu"]))
    axes.grid(True, which="both", alpha=0.3)
    if groups:
        axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(str(path), dpi=120)
    pyplot.close(figure)


def plot_accuracy(result, accuracy, path, size=None):
    """mIoU vs FPS at one resolution (default 1024x512 when measured)."""
    pyplot = _pyplot()
    sizes = result["config"]["sizes"]
    size = size or ("1024x512" if "1024x512" in sizes else sizes[-1])
    figure, axes = pyplot.subplots(figsize=(6, 4.5))
    points = 0
    for row in _ok(result["rows"]):
        if row["size"] == size and row["model"] in accuracy:
            axes.scatter(row["fps"], 100 * accuracy[row["model"]])
            axes.annotate("%s\n(%s)" % (row["model"], row["backend"]),
                          (row["fps"], 100 * accuracy[row["model"]]), fontsize=7)
            points += 1
    axes.set_xlabel("FPS at %s" % size)
    axes.set_ylabel("mIoU (%)")
    axes.set_title("accuracy vs speed")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(str(path), dpi=120)
    pyplot.close(figure)
    return points


def plot_utilization(series, path):
    """CPU, memory and GPU utilization over the run; timed windows shaded and numbered."""
    pyplot = _pyplot()
    samples = series["samples"]
    panels = [("CPU %", ("cpu_percent", "process_cpu_percent")),
              ("memory", ("memory_percent", "ram_percent", "process_rss_mb")),
              ("GPU %", ("gpu_percent", "gpu_memory_busy_percent", "emc_percent"))]
    figure, axes = pyplot.subplots(len(panels), 1, figsize=(9, 7), sharex=True)
    times = [s["t_s"] for s in samples]
    for ax, (title, fields) in zip(axes, panels):
        drawn = 0
        for field in fields:
            values = [s.get(field) for s in samples]
            if any(v is not None for v in values):
                ax.plot(times, [v if v is not None else float("nan") for v in values],
                        label=field, linewidth=0.8)
                drawn += 1
        for index, window in enumerate(series.get("windows", [])):
            ax.axvspan(window["start_s"], window["end_s"], color="C%d" % (index % 10), alpha=0.08)
        ax.set_ylabel(title)
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend(fontsize=7, loc="upper right")
        else:
            ax.text(0.5, 0.5, "not measured here", transform=ax.transAxes, ha="center")
    axes[-1].set_xlabel("seconds since the start of the run (shaded: timed windows)")
    figure.tight_layout()
    figure.savefig(str(path), dpi=110)
    pyplot.close(figure)


def write_reports(result, out_dir, accuracy=None, plots=True):
    """Writes bench_system.{json,md}, the utilization series and the plots into ``out_dir``;
    returns their paths. bench_system.json holds the series' summary, not its samples."""
    from .utilization import write_csv

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if accuracy:
        result["accuracy"] = dict(accuracy)
    paths = OrderedDict([("json", out_dir / "bench_system.json"),
                         ("markdown", out_dir / "bench_system.md")])
    series = result.get("utilization")
    if not (series and isinstance(series.get("samples"), list)):
        series = None   # a result read back from bench_system.json has the summary only
    summary = dict(result)
    if series:
        summary["utilization"] = {k: v for k, v in series.items() if k != "samples"}
        summary["utilization"]["samples"] = len(series["samples"])
        paths["utilization_json"] = out_dir / "utilization.json"
        paths["utilization_csv"] = out_dir / "utilization.csv"
        paths["utilization_json"].write_text(json.dumps(series, indent=1))
        write_csv(series, paths["utilization_csv"])
    paths["json"].write_text(json.dumps(summary, indent=1))
    paths["markdown"].write_text(markdown(result))
    if plots:
        paths["fps_plot"] = out_dir / "fps_vs_resolution.png"
        plot_fps(result, paths["fps_plot"])
        if series:
            paths["utilization_plot"] = out_dir / "utilization.png"
            plot_utilization(series, paths["utilization_plot"])
        if accuracy:
            paths["accuracy_plot"] = out_dir / "accuracy_vs_fps.png"
            plot_accuracy(result, accuracy, paths["accuracy_plot"])
    return paths


def load_text():
    """The machine's load averages, for a report to say under what load it was measured."""
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def write_cpu_report(result, out_dir):
    """bench_cpu.json and bench_cpu.md of the CPU steps study (``bench.cpu``) in ``out_dir``;
    returns (the Markdown text, the JSON path)."""
    from .cpu import GOAL, format_table
    out_dir = Path(out_dir)
    verdict = "no candidate kept >= 99.9 % agreement"
    if result["best"]:
        verdict = "best: %s, x%.2f the throughput of plain eager (goal x%.1f: %s)" % (
            result["best"], result["best_speedup"], GOAL,
            "met" if result["best_speedup"] >= GOAL else "not met")
    text = "%s\n\n%s\n\n%s at %s, %d rounds x %d forwards, %d CPU(s), frames: %s\n`%s`\n" % (
        format_table(result), verdict, result["model"], result["size"], result["rounds"],
        result["iterations_per_round"], os.cpu_count(), ", ".join(result["frames"]),
        result["command"])
    path = out_dir / "bench_cpu.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    (out_dir / "bench_cpu.md").write_text(text)
    return text, path


def write_labels_report(results, command, out_dir):
    """bench_cpu_labels.json and bench_cpu_labels.md of the image -> labels study
    (``bench.labels``, one result per model) in ``out_dir``; returns (the Markdown text, the
    JSON path)."""
    from .cpu_features import text as cpu_text
    from .labels import format_table, verdict
    out_dir = Path(out_dir)
    sections = []
    for result in results:
        sections.append("### %s at %s, frame %s (%s), %d rounds x %d\n\n%s\n\n%s\n%s\n%s, %d "
                        "CPU(s)\n" % (result["model"], result["size"], result["frame"],
                                      result["frame_size"], result["rounds"],
                                      result["iterations_per_round"], format_table(result),
                                      verdict(result), cpu_text(result["cpu"]), result["load"],
                                      os.cpu_count()))
    text = "\n".join(sections) + "`%s`\n" % command
    path = out_dir / "bench_cpu_labels.json"
    path.write_text(json.dumps(results, indent=1, default=str))
    (out_dir / "bench_cpu_labels.md").write_text(text)
    return text, path
