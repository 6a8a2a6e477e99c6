"""Where a forward's time goes on CPU: the torch profiler's self time grouped by kind of op.

Used by ``espnet-ros bench system --op-profile`` to explain rankings that MACs alone do not:
a network with more multiply-accumulates can still be faster when its convolutions are wide
enough to keep the cores' vector units busy and it has fewer element-wise passes (BatchNorm,
PReLU, additions, concatenations) over large feature maps.
"""
from collections import OrderedDict

import torch

# (category, substrings of the aten op name), first match wins. Transposed convolutions run
# in the same oneDNN kernel as convolutions on CPU, so they count as "conv".
CATEGORIES = (
    ("conv", ("conv",)),
    ("batch norm", ("batch_norm",)),
    ("prelu", ("prelu",)),
    ("relu", ("relu", "threshold", "clamp_min")),
    ("add", ("aten::add",)),
    ("concat", ("aten::cat",)),
    ("unpooling", ("unpool",)),
    ("pooling", ("pool",)),
    ("argmax", ("argmax", "max.dim")),
    ("copies and layout", ("copy", "contiguous", "clone", "empty", "to_dense", "reorder")),
)


def category(name):
    for label, needles in CATEGORIES:
        if any(needle in name for needle in needles):
            return label
    return "other"


def op_time_split(forward, batch, iterations=3):
    """{category: self CPU ms per forward} over ``iterations`` forwards (one warm-up first)."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad():
        forward(batch)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(iterations):
                forward(batch)
    totals = OrderedDict()
    for event in prof.key_averages():
        label = category(event.key)
        # self_cpu_time_total is in microseconds in every torch release with the profiler
        totals[label] = totals.get(label, 0.0) + event.self_cpu_time_total / 1e3 / iterations
    return OrderedDict(sorted(totals.items(), key=lambda kv: -kv[1]))


def profile_model(model, entry, size, iterations=3, backend_options=None):
    """The op split of ``model`` as the torch backend runs it (its default CPU steps), with
    the convolution MACs per millisecond of convolution time."""
    from ..inference.backends import create_backend
    from ..models.complexity import count_macs

    width, height = size
    backend = create_backend(model, entry, (1, 3, height, width), "torch", fallback=False,
                             **(backend_options or {}))
    split = op_time_split(backend.forward, torch.randn(1, 3, height, width), iterations)
    total = sum(split.values())
    conv_ms = split.get("conv", 0.0)
    gmacs = count_macs(model, width, height) / 1e9
    return OrderedDict([
        ("size", "%dx%d" % (width, height)), ("steps", str(backend.info.get("steps", ""))),
        ("iterations", iterations), ("total_ms", total), ("gmacs", gmacs),
        ("conv_ms", conv_ms), ("conv_gmacs_per_s", gmacs / conv_ms * 1e3 if conv_ms else None),
        ("split_ms", split)])
