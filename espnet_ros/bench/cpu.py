"""The CPU speed study: plain eager PyTorch against each optimization step, in one run.

Every candidate runs in its own fresh worker process, because some steps change the whole
process (flush-denormal, threads, the allocator): the eager reference stays untouched by them.
The parent runs the workers one at a time in interleaved rounds, so each round's speed-up
``eager time / candidate time`` is taken under the same machine load; the report gives the
median over rounds. Label agreement with eager is computed on real frames.
"""
import os
import sys
import time
from collections import OrderedDict
from typing import NamedTuple, Optional, Tuple

from ..metrics import label_agreement
from . import stats
from .workers import WorkerPool, serve

# Cumulative steps: each candidate adds one step to the previous one ("compile" unless skipped).
STEP_SEQUENCE = ("fold_bn", "channels_last", "malloc_reuse", "compile", "flush_denormal")
MIN_AGREEMENT = 0.999
GOAL = 2.5  # speed-up over plain eager asked of the CPU path (ESPNet p2q8, 1024x512)


class Candidate(NamedTuple):
    name: str
    kind: str                      # "torch" or "onnxruntime"
    steps: Tuple[str, ...] = ()
    threads: Optional[int] = None
    # Environment set in the worker before torch is imported (e.g. OpenMP settings). Note
    # that a setting making idle threads spin (OMP_WAIT_POLICY=ACTIVE) slows every other
    # worker of the study, as it would slow every other process of a robot.
    env: Tuple[Tuple[str, str], ...] = ()


def default_candidates(compile_step=True, onnxruntime=True, thread_counts=(),
                       step_sequence=STEP_SEQUENCE):
    """eager, then each cumulative step, thread variants of the last, and onnxruntime."""
    candidates = [Candidate("eager", "torch")]
    steps = ()
    for step in step_sequence:
        if step == "compile" and not compile_step:
            continue
        steps = steps + (step,)
        candidates.append(Candidate("+" + step, "torch", steps))
    last = candidates[-1]
    for count in thread_counts:
        candidates.append(Candidate("%s, %d thread(s)" % (last.name, count), "torch",
                                    last.steps + ("threads",), count))
    if onnxruntime:
        candidates.append(Candidate("onnxruntime", "onnxruntime"))
    return candidates


def _build_forward(candidate, model, entry, shape):
    import torch

    from ..inference.backends import cpu_optim
    if candidate.threads:
        torch.set_num_threads(candidate.threads)
    if candidate.kind == "onnxruntime":
        from ..inference.backends.onnxruntime_backend import OnnxRuntimeBackend
        backend = OnnxRuntimeBackend(model, entry, shape, "cpu", "fp32")
        return backend.forward, ["onnxruntime %s" % backend.info.get("onnxruntime", "")]
    if not candidate.steps:
        return model, ["eager"]
    return cpu_optim.optimize_cpu(model, candidate.steps, candidate.threads)


def _worker(conn, spawned_at, candidate, model_name, size, frames, pretrained):
    """Builds one candidate, sends its labels on every frame, then times its forward."""
    def prepare():
        late = candidate.env and "torch" in sys.modules  # too late for OpenMP to read it
        os.environ.update(dict(candidate.env))
        import torch

        from ..inference import Preprocessor
        from ..models import create_model
        if not pretrained:  # every worker builds the same random weights: agreement stays meaningful
            torch.manual_seed(0)
        model, entry = create_model(model_name, pretrained=pretrained)
        width, height = size
        forward, notes = _build_forward(candidate, model, entry, (1, 3, height, width))
        notes = list(notes) + ["%s=%s%s" % (k, v, " (ignored: torch already loaded)" if late
                                            else "") for k, v in candidate.env]
        preprocess = Preprocessor(entry.normalization, size)
        batches = [preprocess([image]).clone() for _, image in frames]
        with torch.no_grad():
            labels = [forward(batch).argmax(1)[0].numpy().astype("uint8") for batch in batches]
            for _ in range(2):  # warm-up (first-call allocations, oneDNN primitive creation)
                forward(batches[0])

        def measure():
            with torch.no_grad():
                start = time.perf_counter()
                forward(batches[0])
                return (time.perf_counter() - start) * 1e3

        return (notes, labels, torch.get_num_threads()), measure

    serve(conn, prepare)


def run_cpu_study(model_name, size, frames, candidates=None, rounds=7, iterations=3,
                  pretrained=True, log=print, timeout_s=600):
    """Measures ``candidates`` (default: ``default_candidates()``); returns a result dict."""
    candidates = list(candidates or default_candidates())
    if candidates[0].kind != "torch" or candidates[0].steps:
        raise ValueError("the first candidate must be plain eager PyTorch (the reference)")
    results = OrderedDict()
    with WorkerPool(timeout_s, log) as pool:
        for candidate in candidates:  # all start at once: their imports overlap
            pool.launch(candidate.name, _worker, candidate, model_name, tuple(size), frames,
                        pretrained)
        for candidate in candidates:
            reply = pool.ready(candidate.name)
            if reply[0] == "error":
                results[candidate.name] = {"candidate": candidate, "error": reply[1]}
                continue
            _, notes, labels, threads = reply
            results[candidate.name] = {"candidate": candidate, "notes": notes, "labels": labels,
                                       "threads": threads}
            log("%s: ready (%s)" % (candidate.name, ", ".join(notes)))
        timings = pool.time_rounds(rounds, iterations, stats.median)
    for name, per_round in timings.items():
        results[name]["round_ms"] = [stats.median(times) for times in per_round]
    return summarize(model_name, size, results, rounds, iterations, frames)


def summarize(model_name, size, results, rounds, iterations, frames):
    names = list(results)
    reference = results[names[0]]
    rows, previous_ok = [], None
    for name in names:
        result = results[name]
        candidate = result["candidate"]
        row = OrderedDict([("candidate", name), ("kind", candidate.kind),
                           ("steps", list(candidate.steps)), ("threads", result.get("threads")),
                           ("env", dict(candidate.env))])
        if "error" in result or "error" in reference:
            row["error"] = result.get("error") or "reference failed"
            rows.append(row)
            continue
        row["notes"] = result["notes"]
        row["median_ms"] = stats.median(result["round_ms"])
        row["speedup"] = stats.median(stats.paired_ratios(reference["round_ms"], result["round_ms"]))
        if previous_ok is not None and candidate.kind == "torch":
            row["step_gain"] = stats.median(stats.paired_ratios(previous_ok["round_ms"],
                                                                result["round_ms"]))
        row["agreement_min"], row["agreement_mean"] = label_agreement(reference["labels"],
                                                                 result["labels"])
        row["round_ms"] = [round(v, 2) for v in result["round_ms"]]
        rows.append(row)
        if candidate.kind == "torch" and not candidate.threads and not candidate.env:
            previous_ok = result
    valid = [r for r in rows if "speedup" in r and r["agreement_min"] >= MIN_AGREEMENT]
    best = max(valid, key=lambda r: r["speedup"]) if valid else None
    return OrderedDict([
        ("model", model_name), ("size", "%dx%d" % tuple(size)), ("rounds", rounds),
        ("iterations_per_round", iterations), ("frames", [n for n, _ in frames]),
        ("cpu_count", os.cpu_count()), ("rows", rows),
        ("best", best["candidate"] if best else None),
        ("best_speedup", best["speedup"] if best else None),
    ])


def format_table(result):
    """Markdown table of a CPU study."""
    lines = ["| candidate | steps | median ms | speed-up vs eager | this step | label agreement "
             "(min / mean over frames) |", "| --- | --- | --- | --- | --- | --- |"]
    for row in result["rows"]:
        if "error" in row:
            lines.append("| %s | %s | failed: %s | | | |" % (
                row["candidate"], "+".join(row["steps"]) or "-", row["error"][:80]))
            continue
        gain = "x%.2f" % row["step_gain"] if row.get("step_gain") else ""
        lines.append("| %s | %s | %.1f | x%.2f | %s | %.4f %% / %.4f %% |" % (
            row["candidate"], "+".join(row["steps"]) or "-", row["median_ms"], row["speedup"], gain,
            100 * row["agreement_min"], 100 * row["agreement_mean"]))
    return "\n".join(lines)
