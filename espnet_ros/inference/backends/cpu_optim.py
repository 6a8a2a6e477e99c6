"""CPU speed-ups for the torch backend, each a named step that ``espnet-ros bench cpu`` measures.

Steps (applied in this order by ``optimize_cpu``):

- ``fold_bn``: BatchNorm folded into the convolution that feeds it (eval only).
- ``channels_last``: NHWC weights and activations, which oneDNN runs without layout reorders.
- ``flush_denormal``: denormal floats flushed to zero (process-wide).
- ``threads``: intra-op threads set to the physical cores given (process-wide).
- ``malloc_reuse``: glibc keeps large freed blocks for reuse instead of unmapping them, so the
  per-frame activations and logits stop page-faulting in fresh memory (process-wide).
- ``compile``: ``torch.compile`` where this torch has it.

Which steps pay off differs by machine and model, so none is assumed: the step lists below are
those measured to help here (docs/benchmarks.md, "bench cpu"), and every optimized model is validated
against eager fp32 before use. ``DEFAULT_CPU_STEPS`` start in well under a second (the torch
backend's default); ``MAX_CPU_STEPS`` add ``torch.compile``, the fastest here but with a
first call of seconds to a minute (backend option ``optimize="max"``).
"""
import copy
import logging

import torch
from torch import nn

from ...malloc import set_malloc_reuse

LOG = logging.getLogger("espnet_ros")

ALL_STEPS = ("fold_bn", "channels_last", "flush_denormal", "threads", "malloc_reuse", "compile")
DEFAULT_CPU_STEPS = ("fold_bn", "channels_last", "malloc_reuse", "flush_denormal")
MAX_CPU_STEPS = DEFAULT_CPU_STEPS + ("compile",)


def steps_for(optimize):
    """Step names for the torch backend's ``optimize`` option (True, "max", False or names)."""
    if optimize is True or optimize == "default":
        return DEFAULT_CPU_STEPS
    if optimize == "max":
        return MAX_CPU_STEPS
    if not optimize:
        return ()
    return tuple(optimize)

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def fold_conv_bn(conv, bn):
    """Folds eval-mode ``bn`` into ``conv`` in place (conv then gets a bias)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("BatchNorm without running statistics cannot be folded")
    with torch.no_grad():
        inv_std = torch.rsqrt(bn.running_var.float() + bn.eps)
        gamma = bn.weight.float() if bn.weight is not None else torch.ones_like(inv_std)
        beta = bn.bias.float() if bn.bias is not None else torch.zeros_like(inv_std)
        scale = gamma * inv_std
        shift = beta - bn.running_mean.float() * scale
        weight = conv.weight.float()
        if isinstance(conv, nn.ConvTranspose2d):
            if conv.groups != 1:
                raise ValueError("grouped transposed convolutions are not folded")
            weight = weight * scale.view(1, -1, 1, 1)   # (in, out, kh, kw)
        else:
            weight = weight * scale.view(-1, 1, 1, 1)   # (out, in/groups, kh, kw)
        bias = conv.bias.float() if conv.bias is not None else torch.zeros_like(scale)
        conv.weight.copy_(weight.to(conv.weight.dtype))
        conv.bias = nn.Parameter((bias * scale + shift).to(conv.weight.dtype),
                                 requires_grad=False)


def _bn_of(module):
    """The BatchNorm a module starts with: itself, or ``.bn`` of a BN+activation block."""
    if isinstance(module, nn.BatchNorm2d):
        return module, None
    bn = getattr(module, "bn", None)
    # Blocks whose forward starts with self.bn (esp.BNAct); checked by class name so that
    # this module does not depend on the model definitions.
    if type(module).__name__ == "BNAct" and isinstance(bn, nn.BatchNorm2d):
        return bn, module
    return None, None


def _fold_pairs(model):
    """(conv, bn, parent, attribute) pairs where the conv's output goes only into the BN.

    Only structural certainties are used: consecutive children of a Sequential, conv/bn
    blocks whose forward is ``bn(conv(x))`` (esp.ConvBNAct), and ESPNet's classifier -> ``br``.
    """
    pairs = []
    for module in model.modules():
        kind = type(module).__name__
        if isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for (_, first), (second_name, second) in zip(children, children[1:]):
                bn, holder = _bn_of(second)
                if isinstance(first, _CONVS) and bn is not None:
                    if holder is not None:
                        pairs.append((first, bn, holder, "bn"))
                    else:
                        pairs.append((first, bn, module, second_name))
        elif kind == "ConvBNAct" and isinstance(getattr(module, "bn", None), nn.BatchNorm2d):
            pairs.append((module.conv, module.bn, module, "bn"))
        elif kind == "ESPNet" and isinstance(getattr(module, "br", None), nn.BatchNorm2d):
            pairs.append((module.encoder.classifier.conv, module.br, module, "br"))
    return pairs


def fold_batchnorm(model):
    """A copy of ``model`` with every foldable BatchNorm folded; returns (copy, count)."""
    model = copy.deepcopy(model).eval()
    pairs = _fold_pairs(model)
    for conv, bn, parent, attribute in pairs:
        fold_conv_bn(conv, bn)
        setattr(parent, attribute, nn.Identity())
    return model, len(pairs)


def to_channels_last(model):
    return model.to(memory_format=torch.channels_last)


def set_flush_denormal(enabled=True):
    """Returns whether the CPU supports it (SSE3); affects the whole process."""
    return bool(torch.set_flush_denormal(enabled))


def set_threads(count):
    torch.set_num_threads(max(1, int(count)))
    return torch.get_num_threads()


def compile_model(model):
    """``torch.compile`` (torch 2.0+); None where this torch has none.

    Static shapes: each input shape gets its own specialised kernels instead of one dynamic
    graph (camera sizes are few and fixed). Inductor's own freezing is left off: on these
    models it folds BatchNorm into transposed convolutions wrongly (labels change), and our
    fold_bn step already does that part.
    """
    compile_fn = getattr(torch, "compile", None)
    if compile_fn is None:
        return None
    return compile_fn(model, dynamic=False)


class ChannelsLastForward(nn.Module):
    """Feeds ``model`` NHWC input; the preallocated input buffer is reused between calls."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self._input = None

    def forward(self, x):
        if self._input is None or self._input.shape != x.shape or self._input.dtype != x.dtype:
            self._input = torch.empty_like(x, memory_format=torch.channels_last)
        self._input.copy_(x)
        return self.model(self._input)


def optimize_cpu(model, steps=DEFAULT_CPU_STEPS, threads=None):
    """Applies ``steps`` (names from ALL_STEPS) and returns (forward module, applied notes).

    Process-wide steps (flush_denormal, threads, malloc_reuse) change this whole process.
    """
    unknown = set(steps) - set(ALL_STEPS)
    if unknown:
        raise ValueError("unknown CPU steps %s; known: %s" % (sorted(unknown), ", ".join(ALL_STEPS)))
    notes = []
    model = copy.deepcopy(model).eval()
    if "fold_bn" in steps:
        model, count = fold_batchnorm(model)
        notes.append("fold_bn: %d BatchNorm layers folded" % count)
    if "channels_last" in steps:
        model = to_channels_last(model)
        notes.append("channels_last")
    if "flush_denormal" in steps:
        notes.append("flush_denormal" if set_flush_denormal(True)
                     else "flush_denormal: not supported by this CPU")
    if "threads" in steps and threads:
        notes.append("threads: %d" % set_threads(threads))
    if "malloc_reuse" in steps:
        notes.append("malloc_reuse" if set_malloc_reuse(True)
                     else "malloc_reuse: not glibc, skipped")
    if "compile" in steps:
        # Only the network is compiled; the NHWC input copy stays outside the graph.
        compiled = compile_model(model)
        if compiled is None:
            notes.append("compile: not available in torch %s" % torch.__version__)
        else:
            model = compiled
            notes.append("compile")
    if "channels_last" in steps:
        return ChannelsLastForward(model), notes
    return model, notes
