"""Model sizes side by side: fp32 and fp16, parameters and files, against the ESPNet paper.

The paper's size figure says ESPNet's 32-bit uncompressed model is 1.12x smaller than ENet's
and 5.45x smaller than ERFNet's, and its text gives ESPNet 0.7 MB. The ratios are recomputed
here for this implementation (parameters and serialized state dicts), and the 0.7 MB is
matched against what it could be: parameters or files, fp32 or fp16, MB or MiB.
"""
from collections import OrderedDict

import torch

from ..models import build, zoo
from ..models.complexity import count_parameters, parameter_megabytes, serialized_megabytes

REFERENCE = "espnet-p2q8-cityscapes"          # the paper's ESPNet (alpha2=2, alpha3=8)
COMPARED = (REFERENCE, "enet", "erfnet")       # the paper's three networks
PAPER_SMALLER_THAN = {"enet": 1.12, "erfnet": 5.45}  # ESPNet is this many times smaller
PAPER_ESPNET_MB = 0.7
MIB = 2.0 ** 20


def model_size(name):
    """Parameters and sizes of a zoo model; weights do not change sizes, so none are loaded."""
    model = build(zoo.get(name))
    params = count_parameters(model)
    return OrderedDict([
        ("arch", zoo.get(name).arch), ("parameters", params),
        ("fp32_params_mb", parameter_megabytes(model, 4)),
        ("fp16_params_mb", parameter_megabytes(model, 2)),
        ("fp32_file_mb", serialized_megabytes(model)),
        ("fp16_file_mb", serialized_megabytes(model, torch.float16)),
        ("engine_mb", OrderedDict())])   # filled from torch2trt rows: {"WxH precision": MB}


def ratios(sizes, reference=REFERENCE):
    """For each compared network: how many times larger than ESPNet, here and in the paper."""
    ref = sizes.get(reference)
    result = OrderedDict()
    if ref is None:
        return result
    for name, paper in PAPER_SMALLER_THAN.items():
        other = sizes.get(name)
        if other is None:
            continue
        result[name] = OrderedDict([
            ("paper", paper),
            ("fp32_file", other["fp32_file_mb"] / ref["fp32_file_mb"]),
            ("parameters", other["parameters"] / float(ref["parameters"]))])
    return result


def reconcile_paper_size(size, paper_mb=PAPER_ESPNET_MB):
    """(sentence, candidates): which reading of ESPNet's size is nearest the paper's 0.7 MB."""
    params = size["parameters"]
    candidates = OrderedDict([
        ("fp16 parameters, MiB", params * 2 / MIB),
        ("fp16 parameters, MB", size["fp16_params_mb"]),
        ("fp16 state dict file, MB", size["fp16_file_mb"]),
        ("fp32 parameters, MiB", params * 4 / MIB),
        ("fp32 parameters, MB", size["fp32_params_mb"]),
        ("fp32 state dict file, MB", size["fp32_file_mb"])])
    best = min(candidates, key=lambda k: abs(candidates[k] - paper_mb))
    width = 2 if best.startswith("fp16") else 4
    sentence = (
        "The paper's %.1f MB for ESPNet is nearest its %s, %.3f (%s parameters x %d bytes = "
        "%.3f MB = %.3f MiB); the fp32 state dict this repository loads is %.2f MB, %.2fx the "
        "paper's figure." % (
            paper_mb, best, candidates[best], "{:,}".format(params), width, params * width / 1e6,
            params * width / MIB, size["fp32_file_mb"], size["fp32_file_mb"] / paper_mb))
    return sentence, candidates


def size_section(names, rows=()):
    """The report's size comparison: ``names`` plus the paper's three networks."""
    ordered = list(OrderedDict.fromkeys(list(COMPARED) + list(names)))
    sizes = OrderedDict((name, model_size(name)) for name in ordered)
    for row in rows:
        if row.get("engine_mb") and row["model"] in sizes:
            key = "%s %s" % (row["size"], row["precision"])
            sizes[row["model"]]["engine_mb"][key] = row["engine_mb"]
    sentence, candidates = reconcile_paper_size(sizes[REFERENCE])
    return OrderedDict([("reference", REFERENCE), ("models", sizes), ("ratios", ratios(sizes)),
                        ("paper_mb", PAPER_ESPNET_MB), ("paper_mb_readings", candidates),
                        ("paper_mb_note", sentence)])
