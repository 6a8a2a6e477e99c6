"""Checks that a converted or optimized forward computes what eager PyTorch computes.

Every check runs on a fresh input, never on the sample a conversion saw: a converter that bakes
an intermediate tensor in as a constant reproduces the sample's output perfectly and fails here.
"""
from typing import NamedTuple

import torch

# Intermediate outputs: largest max|a-b| / max|ref| accepted per precision. fp32 allows 1 %:
# deep random-weight nets (ENet has no published weights) amplify summation-order differences
# that far; a baked constant is off by ~100 %.
RELATIVE_TOLERANCE = {"fp32": 1e-2, "fp16": 5e-2, "bf16": 5e-2, "int8": 0.25}
# Logits: the labels decide (smallest argmax agreement), with a loose bound on the values.
MIN_AGREEMENT = {"fp32": 0.999, "fp16": 0.99, "bf16": 0.99, "int8": 0.95}
LOGIT_TOLERANCE = 0.25


class ValidationError(RuntimeError):
    """A converted or optimized module does not reproduce the eager PyTorch outputs."""


class Comparison(NamedTuple):
    relative_error: float   # max |out - ref| / max |ref|
    agreement: float        # fraction of equal argmax over channels (1.0 for non-4D outputs)


def fresh_input(sample, seed=0):
    """An input unlike ``sample`` but with its statistics: mirrored, plus a little noise."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(sample.shape, generator=generator).to(sample.device, sample.dtype)
    scale = float(sample.float().std()) if sample.numel() > 1 else 1.0
    fresh = torch.flip(sample, [sample.dim() - 1]) + noise * 0.1 * (scale or 1.0)
    return fresh.contiguous()


def _as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def compare(reference, output):
    """Worst ``Comparison`` over the tensors of two (tuples of) outputs."""
    worst_err, worst_agree = 0.0, 1.0
    refs, outs = _as_tuple(reference), _as_tuple(output)
    if len(refs) != len(outs):
        raise ValidationError("%d outputs instead of %d" % (len(outs), len(refs)))
    for ref, out in zip(refs, outs):
        if not torch.is_tensor(ref):
            continue
        if tuple(ref.shape) != tuple(out.shape):
            raise ValidationError("output shape %s instead of %s"
                                  % (tuple(out.shape), tuple(ref.shape)))
        ref32, out32 = ref.detach().float().cpu(), out.detach().float().cpu()
        scale = float(ref32.abs().max()) or 1.0
        worst_err = max(worst_err, float((out32 - ref32).abs().max()) / scale)
        if ref32.dim() == 4 and ref32.shape[1] > 1:
            agreement = float((ref32.argmax(1) == out32.argmax(1)).float().mean())
            worst_agree = min(worst_agree, agreement)
    return Comparison(worst_err, worst_agree)


def validate(reference_fn, candidate_fn, sample, precision="fp32", check_labels=True, seed=0):
    """Runs both on a fresh input and raises ``ValidationError`` when they differ too much.

    ``check_labels``: the outputs are logits: require the argmax agreement of MIN_AGREEMENT
    and only LOGIT_TOLERANCE on the values; otherwise RELATIVE_TOLERANCE on the values.
    Returns the ``Comparison``.
    """
    fresh = fresh_input(sample, seed)
    with torch.no_grad():
        expected = reference_fn(fresh)
        got = candidate_fn(fresh)
        result = compare(expected, got)
        tolerance = LOGIT_TOLERANCE if check_labels else RELATIVE_TOLERANCE[precision]
        if result.relative_error > tolerance or (
                check_labels and result.agreement < MIN_AGREEMENT[precision]):
            hint = ""
            # Reproducing the conversion sample's output on another input means a tensor of
            # the sample was baked in as a constant.
            if compare(reference_fn(sample), got).relative_error <= tolerance:
                hint = "; the output does not follow the input (a tensor was baked in as a constant)"
            raise ValidationError(
                "relative error %.3g (tolerance %.3g), label agreement %.4f (minimum %.4f)%s"
                % (result.relative_error, tolerance, result.agreement, MIN_AGREEMENT[precision],
                   hint))
    return result
