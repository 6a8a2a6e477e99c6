"""Which blocks of a model int8 may quantize: per-block sensitivity and the fp32 blocks it implies.

A block is the first level of an exported op's name (``/level3.4/...`` -> ``/level3.4/``,
``/conv/...`` -> ``/conv/``). ``sensitivity`` quantizes one block at a time (every other op in
fp32) and measures the pixel agreement of its labels with fp32; ``choose_fp32_blocks`` keeps in
fp32 every block that alone already misses the target, then, worst first, more blocks
until the whole model reaches it. Both take the quantize / measure steps as callables, so the
choice is plain logic (tested without OpenVINO) and the runtime lives in backends.openvino_lowp.
"""
import re
from typing import NamedTuple

_BLOCK = re.compile(r"^(/[^/]+/[^/]+?\.\d+/|/[^/]+/)")
OTHER = "(other)"  # ops outside any named block: the graph's input and output nodes


class BlockSensitivity(NamedTuple):
    block: str
    agreement_min: float    # pixel agreement with fp32 with only this block in int8
    agreement_mean: float

    def to_json(self):
        return list(self)


def block_of(op_name):
    """The block an exported op belongs to (``OTHER`` for names outside any module)."""
    match = _BLOCK.match(op_name)
    return match.group(1) if match else OTHER


def model_blocks(op_names):
    """The blocks of ``op_names`` in graph order, each once (``OTHER`` left out)."""
    seen = []
    for name in op_names:
        block = block_of(name)
        if block != OTHER and block not in seen:
            seen.append(block)
    return seen


def block_pattern(block):
    """An NNCF ignored-scope regex for every op of ``block``."""
    return "^%s.*" % re.escape(block)


def all_but_pattern(block):
    """An NNCF ignored-scope regex for every op outside ``block``."""
    return "^(?!%s).*" % re.escape(block)


def sensitivity(blocks, measure_only):
    """[BlockSensitivity] of each block; ``measure_only(block) -> (min, mean)`` quantizes that
    block alone and measures its agreement with fp32."""
    return [BlockSensitivity(block, *[float(v) for v in measure_only(block)]) for block in blocks]


class Choice(NamedTuple):
    kept: tuple          # blocks kept in fp32
    agreement: tuple     # (min, mean) of the model quantized so
    table: list          # [BlockSensitivity]; empty when the whole model already reached target
    steps: list          # [(kept blocks, (min, mean))] in the order tried


def choose_fp32_blocks(blocks, measure_only, measure_keeping, reaches, max_kept):
    """The blocks int8 leaves in fp32, as a ``Choice``.

    ``measure_keeping(kept) -> (min, mean)`` quantizes all but ``kept``; ``reaches(min, mean)``
    says whether agreements meet the target. The whole model first; where it misses, the
    sensitivity table is measured and every block that alone misses the target stays fp32,
    then, least mean agreement first, more blocks until the model reaches the target or
    ``max_kept`` blocks are fp32 (past that int8 is no faster than fp32: the gate then judges
    what was reached).
    """
    def measure(kept):
        result = tuple(float(v) for v in measure_keeping(tuple(kept)))
        steps.append((tuple(kept), result))
        return result

    steps = []
    result = measure(())
    if reaches(*result) or max_kept <= 0:
        return Choice((), result, [], steps)
    table = sensitivity(blocks, measure_only)
    ranked = [row.block for row in sorted(table, key=lambda r: (r.agreement_mean,
                                                                r.agreement_min))]
    alone_missing = sum(not reaches(row.agreement_min, row.agreement_mean) for row in table)
    count = min(max(alone_missing, 1), max_kept)
    while True:
        result = measure(ranked[:count])
        if reaches(*result) or count >= max_kept:
            return Choice(tuple(ranked[:count]), result, table, steps)
        count += 1


def format_table(table, kept=()):
    """The sensitivity table as Markdown (the form of docs/backends.md)."""
    lines = ["| block | agreement with only this block int8 (min / mean) | kept fp32 |",
             "| --- | --- | --- |"]
    for row in table:
        lines.append("| `%s` | %.2f %% / %.2f %% | %s |" % (
            row.block, 100 * row.agreement_min, 100 * row.agreement_mean,
            "yes" if row.block in kept else ""))
    return "\n".join(lines)
