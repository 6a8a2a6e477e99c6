"""Benchmark reports: Markdown tables, JSON for regression tracking, PNG plots (matplotlib Agg)."""
import json
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


def detail_table(result):
    header = ["model", "backend", "precision", "resolution", "GMACs", "FPS", "p50 ms", "p95 ms",
              "inference p50 ms", "peak RSS MB (+added)", "power W", "J/frame"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in result["rows"]:
        if row.get("status") != "ok":
            lines.append("| %s | %s | %s | %s | %.3f | %s |%s" % (
                row["model"], row["backend"], row["precision"], row["size"], row["gmacs"],
                row["status"].replace("|", "/")[:120], " |" * 6))
            continue
        lines.append("| " + " | ".join([
            row["model"], row["backend"], row["precision"], row["size"], "%.3f" % row["gmacs"],
            "%.1f" % row["fps"], "%.1f" % row["latency_ms_p50"], "%.1f" % row["latency_ms_p95"],
            _fmt(row["inference_ms_p50"]),
            "%s (+%s)" % (_fmt(row["peak_rss_mb"], "%.0f"), _fmt(row.get("added_rss_mb"), "%.0f")),
            _fmt(row["power_w"], "%.2f", "n/a"), _fmt(row["energy_j_per_frame"], "%.3f", "n/a"),
        ]) + " |")
    return "\n".join(lines)


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
    if clocks["sweep"]:
        lines += ["## GPU frequency sensitivity", "", "| GPU MHz | FPS | p50 ms |",
                  "| --- | --- | --- |"]
        lines += ["| %.0f | %.1f | %.1f |" % (p["mhz"], p["fps"], p["latency_ms_p50"])
                  for p in clocks["sweep"]]
        lines.append("")
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


def write_reports(result, out_dir, accuracy=None, plots=True):
    """Writes bench_system.{json,md} and the plots into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if accuracy:
        result["accuracy"] = dict(accuracy)
    paths = OrderedDict([("json", out_dir / "bench_system.json"),
                         ("markdown", out_dir / "bench_system.md")])
    paths["json"].write_text(json.dumps(result, indent=1))
    paths["markdown"].write_text(markdown(result))
    if plots:
        paths["fps_plot"] = out_dir / "fps_vs_resolution.png"
        plot_fps(result, paths["fps_plot"])
        if accuracy:
            paths["accuracy_plot"] = out_dir / "accuracy_vs_fps.png"
            plot_accuracy(result, accuracy, paths["accuracy_plot"])
    return paths
