"""Evaluation results on disk: JSON (everything), Markdown (tables), a confusion-matrix PNG."""
import json
import math
from pathlib import Path

import numpy as np


def report_dict(report, extra=None) -> dict:
    scores = report.scores
    data = {
        "model": report.model, "dataset": report.dataset, "split": report.split,
        "images": report.images, "input_size": list(report.input_size) if report.input_size else None,
        "miou": _num(scores.miou), "pixel_accuracy": _num(scores.pixel_accuracy),
        "mean_class_accuracy": _num(scores.mean_class_accuracy),
        "labelled_pixels": scores.labelled_pixels,
        "miou_ignored_as_false_positives": _num(report.scores_ignored_as_fp.miou)
        if report.scores_ignored_as_fp else None,
        "class_iou": {name: _num(v) for name, v in zip(report.classes, scores.iou)},
        "class_accuracy": {name: _num(v) for name, v in zip(report.classes, scores.class_accuracy)},
        "category_miou": _num(report.category_miou) if report.categories else None,
        "category_iou": ({k: _num(v) for k, v in report.categories.items()}
                         if report.categories else None),
        "confusion_matrix": report.confusion.matrix.tolist(),
        "confusion_columns": list(_columns(report)),
        "seconds": round(report.seconds, 3), "warnings": list(report.warnings),
    }
    data.update(extra or {})
    return data


def markdown(report, extra=None) -> str:
    s = report.scores
    lines = ["# %s on %s %s" % (report.model, report.dataset, report.split), "",
             "| metric | value |", "| --- | --- |",
             "| images | %d |" % report.images,
             "| class mIoU | %s |" % _pct(s.miou)]
    if report.categories:
        lines.append("| category mIoU | %s |" % _pct(report.category_miou))
    if report.scores_ignored_as_fp:
        lines.append("| class mIoU, predictions on ignored pixels as false positives "
                     "(SegNet / ESPNet CamVid convention) | %s |" % _pct(report.scores_ignored_as_fp.miou))
    lines += ["| pixel accuracy | %s |" % _pct(s.pixel_accuracy),
              "| mean class accuracy | %s |" % _pct(s.mean_class_accuracy)]
    for key, value in (extra or {}).items():
        lines.append("| %s | %s |" % (key, value))
    lines += ["", "| class | IoU % | accuracy % |", "| --- | --- | --- |"]
    lines += ["| %s | %s | %s |" % (name, _pct(iou), _pct(acc))
              for name, iou, acc in zip(report.classes, s.iou, s.class_accuracy)]
    if report.categories:
        lines += ["", "| category | IoU % |", "| --- | --- |"]
        lines += ["| %s | %s |" % (name, _pct(v)) for name, v in report.categories.items()]
    if report.warnings:
        lines += [""] + ["Warning: %s" % w for w in report.warnings]
    return "\n".join(lines) + "\n"


def plot_confusion(report, path: Path):
    """Row-normalized confusion matrix (each row: where that class's pixels went)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    matrix = report.confusion.normalized()
    columns = _columns(report)
    size = max(5.0, 0.45 * len(columns) + 2)
    fig, ax = plt.subplots(figsize=(size, size * matrix.shape[0] / matrix.shape[1] + 1))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels(columns, rotation=90)
    ax.set_yticks(range(len(report.classes)))
    ax.set_yticklabels(report.classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title("%s on %s %s: mIoU %s %%" % (report.model, report.dataset, report.split,
                                              _pct(report.miou)))
    if len(columns) <= 25:
        for (i, j), value in np.ndenumerate(matrix):
            if value >= 0.005:
                ax.text(j, i, "%.0f" % (100 * value), ha="center", va="center", fontsize=6,
                        color="white" if value > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(str(path), dpi=120)
    plt.close(fig)


def write_report(report, out_dir, extra=None, plot=True) -> dict:
    """Writes eval.json, eval.md and confusion.png into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "eval.json", "markdown": out_dir / "eval.md"}
    paths["json"].write_text(json.dumps(report_dict(report, extra), indent=1))
    paths["markdown"].write_text(markdown(report, extra))
    if plot:
        paths["plot"] = out_dir / "confusion.png"
        plot_confusion(report, paths["plot"])
    return paths


def _columns(report):
    count = report.confusion.num_pred_classes
    if len(report.columns) == count:
        return tuple(report.columns)
    return tuple(report.classes) + tuple("output %d" % i for i in range(len(report.classes), count))


def _num(value):
    return None if value is None or math.isnan(value) else float(value)


def _pct(value):
    return "-" if value is None or math.isnan(value) else "%.2f" % (100 * value)


def plot_curves(log_csv, path, title=None) -> Path:
    """Training loss and validation mIoU per epoch (a stage's log.csv) as a PNG."""
    import csv

    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    with open(str(log_csv), newline="") as f:
        rows = list(csv.DictReader(f))
    epochs = [int(r["epoch"]) for r in rows]
    fig, loss_ax = plt.subplots(figsize=(7, 4))
    loss_ax.plot(epochs, [float(r["train_loss"]) for r in rows], "o-", color="tab:blue")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss", color="tab:blue")
    validated = [(e, 100 * float(r["val_miou"])) for e, r in zip(epochs, rows) if r["val_miou"]]
    if validated:
        miou_ax = loss_ax.twinx()
        miou_ax.plot(*zip(*validated), "s-", color="tab:red")
        miou_ax.set_ylabel("validation mIoU (%)", color="tab:red")
    loss_ax.set_title(title or Path(log_csv).parent.name)
    loss_ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(str(path), dpi=100)
    plt.close(fig)
    return Path(path)
