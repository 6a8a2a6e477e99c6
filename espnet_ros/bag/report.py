"""Replay / eval reports: JSON (everything), Markdown (the numbers a reader wants), PNG plot."""
import json
import math
from pathlib import Path

import numpy as np


def latency_summary(values_ms):
    if not values_ms:
        return None
    values = np.asarray(values_ms, np.float64)
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)),
            "p99": float(np.percentile(values, 99)), "mean": float(values.mean()),
            "min": float(values.min()), "max": float(values.max())}


def _num(value, fmt="%.1f"):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt % value


def _percent(value):
    return "-" if value is None else "%.2f %%" % (100.0 * value)


def accuracy_lines(accuracy):
    if not accuracy or accuracy.get("miou") is None:
        return ["No ground truth scored (no label topic, --no-eval, or no output matched a label)."]
    lines = ["mIoU **%s** over %d frames (pixel accuracy %s)."
             % (_percent(accuracy["miou"]), accuracy["frames"], _percent(accuracy["pixel_accuracy"])),
             "", "| class | IoU |", "| --- | --- |"]
    lines += ["| %s | %s |" % (name, _percent(iou)) for name, iou in accuracy["per_class_iou"].items()]
    return lines


def replay_markdown(report):
    frames, lat = report["frames"], report["latency_ms"] or {}
    counters = report.get("node_counters")
    mode = ("closed loop (next frame when the previous output arrived)" if report["mode"] == "closed-loop"
            else "open loop at %gx the bag's timing" % report["rate"])
    lines = [
        "# Rosbag replay through segment_node",
        "",
        "| | |", "| --- | --- |",
        "| bag | `%s` (%s) |" % (report["bag"], report["image_topic"]),
        "| model | %s at %s |" % (report["model"], "x".join(map(str, report["input_size"] or ["native"]))),
        "| mode | %s; %d pass(es)%s |" % (mode, report["loops"],
                                         "; /clock + use_sim_time" if report["use_sim_time"] else ""),
        "| node | `%s`%s |" % (report["node"], " (attached)" if report.get("attached") else ""),
        "",
        "## Throughput and latency",
        "",
        "| frames sent | outputs | dropped | throughput (FPS) | input rate (Hz) | latency p50 | p95 | p99 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        "| %d | %d | %d (%s) | %s | %s | %s ms | %s ms | %s ms |"
        % (frames["sent"], frames["outputs"], frames["dropped"],
           _percent(frames["dropped"] / frames["sent"] if frames["sent"] else None),
           _num(report["throughput_fps"], "%.2f"), _num(report["input_rate_hz"], "%.2f"),
           _num(lat.get("p50")), _num(lat.get("p95")), _num(lat.get("p99"))),
        "",
        "Latency: from publishing the frame to receiving its label, both on this process's clock, "
        "matched by header stamp. Dropped: frames sent without a label output.",
    ]
    if counters:
        lines += ["", "Node counters over the run (/diagnostics): received %d, processed %d, dropped %d, "
                  "rejected %d; %s." % (counters["received"], counters["processed"], counters["dropped"],
                                        counters["rejected"],
                                        "consistent with the drops seen here" if report["counters_consistent"]
                                        else "NOT consistent with the drops seen here")]
    else:
        lines += ["", "Node counters: not available (no /diagnostics from the node)."]
    if report.get("interrupted"):
        lines += ["", "The replay was interrupted; numbers cover the frames sent until then."]
    lines += ["", "## Accuracy", ""] + accuracy_lines(report.get("accuracy"))
    if report.get("output_bag"):
        lines += ["", "Outputs written to `%s`: %s." % (report["output_bag"], ", ".join(
            "%s (%d)" % kv for kv in sorted(report["output_topics"].items())))]
    for note in report.get("notes", []):
        lines += ["", "Note: " + note]
    if report.get("plot"):
        lines += ["", "![latency over time](%s)" % Path(report["plot"]).name]
    return "\n".join(lines) + "\n"


def eval_markdown(report):
    lines = ["# Offline evaluation of a bag", "",
             "`%s` (%s vs %s), %s at %s, no ROS graph." % (report["bag"], report["image_topic"],
                                                           report["label_topic"], report["model"],
                                                           "x".join(map(str, report["input_size"]))),
             "Frames without ground truth: %d; rejected (undecodable): %d."
             % (report["frames_unlabelled"], report["frames_rejected"]), ""]
    return "\n".join(lines + accuracy_lines(report["accuracy"])) + "\n"


def plot_latency(timeline, path, title):
    """Latency over publish time; dropped frames as red marks on the time axis."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    done = [(t, lat) for t, lat in timeline if lat is not None]
    dropped = [t for t, lat in timeline if lat is None]
    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    if done:
        ax.plot([t for t, _ in done], [lat for _, lat in done], ".-", lw=0.8, ms=3, label="latency")
        p50 = float(np.percentile([lat for _, lat in done], 50))
        ax.axhline(p50, color="grey", ls="--", lw=0.8, label="p50 %.1f ms" % p50)
    if dropped:
        ax.plot(dropped, [0.0] * len(dropped), "|", color="red", ms=10, label="dropped (%d)" % len(dropped))
    ax.set_xlabel("publish time (s since the first frame)")
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(str(path))
    plt.close(fig)


def write_report(report, out_dir, stem, to_markdown, timeline=None, title=""):
    """Writes STEM.json, STEM.md (and STEM_latency.png with a timeline); returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / (stem + ".json"), "markdown": out_dir / (stem + ".md")}
    if timeline is not None:
        paths["plot"] = out_dir / (stem + "_latency.png")
        plot_latency(timeline, paths["plot"], title)
        report["plot"] = str(paths["plot"])
    paths["json"].write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")
    paths["markdown"].write_text(to_markdown(report))
    return paths


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError("not JSON serializable: %r" % type(value))
