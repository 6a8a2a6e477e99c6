"""Image in -> labels out on the CPU: the original code's steps against the project's paths.

Each candidate (the original-code reference, the node's default path, each backend and
precision) runs in its own fresh worker process, started one after the other so that the
first-label times (process start -> first labels, and model build -> first labels) are not
shared with other starts. Then the workers are timed in interleaved rounds; a candidate's
speed-up is the median over rounds of reference time / its time in the same round, so machine
load hits both alike. Every stage (preprocess, forward, argmax) is timed too, and labels are
compared with the reference's on real frames. bf16 / int8 rows carry their accuracy-gate
result; a model that failed the gate is still timed here (speed only) and marked so.
"""
import time
from collections import OrderedDict
from typing import NamedTuple, Optional

from ..metrics import label_agreement
from . import cpu_features, stats
from .workers import WorkerPool, serve

MOONSHOT = 8.0          # image -> labels speed-up over the original code, beyond the goal
MIN_AGREEMENT = 0.99    # of the labels with the original code's, for a path to count


class LabelPath(NamedTuple):
    name: str
    backend: Optional[str] = None        # None: the original code
    precision: str = "fp32"
    calibration_file: Optional[str] = None


def default_paths(calibrations=(), openvino=True):
    """original, default (the node's torch CPU path), openvino fp32, then each calibration."""
    paths = [LabelPath("original code"), LabelPath("default (torch fp32)", "torch")]
    if openvino:
        paths.append(LabelPath("openvino fp32", "openvino"))
    for precision, path in calibrations:
        paths.append(LabelPath("openvino %s" % precision, "openvino", precision, str(path)))
    return paths


def _runner(path, model, entry, size):
    """fn(image) -> (labels, {stage: ms}) and notes for one path."""
    if path.backend is None:
        from .original import OriginalCode
        return OriginalCode(model, entry, size), ["eager, original preprocessing"], None
    from ..inference import Segmenter
    from ..inference.backends import create_backend
    options = {"enforce_gate": False}
    if path.calibration_file:
        options["calibration_file"] = path.calibration_file
    backend = create_backend(model, entry, (1, 3, size[1], size[0]), path.backend, "cpu",
                             path.precision, fallback=False, **options)
    segmenter = Segmenter(model, entry, input_size=size, forward=backend)

    def run(image):
        times = OrderedDict()
        start = time.perf_counter()
        batch = segmenter.preprocess([image])
        times["preprocess"] = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        logits = segmenter.logits(batch)
        times["forward"] = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        labels = segmenter.argmax(logits)[0]
        times["argmax"] = (time.perf_counter() - start) * 1e3
        return labels, times

    notes = ["%s: %s" % kv for kv in backend.info.items() if kv[0] != "fallback"]
    gate = getattr(backend, "gate", None)
    if gate is None:
        return run, notes, None
    # passed: what the node would do (a gate passed without int8 convolutions is refused too)
    refusal = getattr(backend, "refusal", None)
    return run, notes, dict(gate._asdict(), passed=refusal is None, refusal=refusal,
                            refusal_cause=getattr(backend, "refusal_cause", None))


def _worker(conn, spawned_at, path, model_name, size, frames, pretrained):
    def prepare():
        import torch

        from ..models import create_model
        build_start = time.perf_counter()
        torch.manual_seed(0)   # random-weight models get the same weights in every worker
        model, entry = create_model(model_name, pretrained=pretrained)
        run, notes, gate = _runner(path, model, entry, tuple(size))
        first, _ = run(frames[0][1])
        first_label = (time.perf_counter() - build_start, time.time() - spawned_at)
        labels = [first.copy()] + [run(image)[0].copy() for _, image in frames[1:]]
        for _ in range(2):
            run(frames[0][1])

        def measure():
            start = time.perf_counter()
            _, stages = run(frames[0][1])
            return (time.perf_counter() - start) * 1e3, stages

        return (notes, labels, first_label, gate), measure

    serve(conn, prepare)


def _round_total(results):
    return stats.median([total for total, _ in results])


def run_labels_study(model_name, size, frames, paths, rounds=7, iterations=3, pretrained=True,
                     log=print, timeout_s=900):
    """Measures ``paths`` (the first must be the original code) on ``frames``[0]; a dict."""
    if paths[0].backend is not None:
        raise ValueError("the first path must be the original code (the reference)")
    results = OrderedDict()
    with WorkerPool(timeout_s, log) as pool:
        for path in paths:   # one at a time: first-label times without other starts
            pool.launch(path.name, _worker, path, model_name, tuple(size), frames, pretrained)
            reply = pool.ready(path.name)
            if reply[0] == "error":
                results[path.name] = {"path": path, "error": reply[1]}
                continue
            _, notes, labels, first_label, gate = reply
            results[path.name] = {"path": path, "notes": notes, "labels": labels,
                                  "first_label_s": first_label, "gate": gate}
            log("%s: ready, first labels %.1f s after build start (%.1f s after process start)"
                % (path.name, first_label[0], first_label[1]))
        timings = pool.time_rounds(rounds, iterations, _round_total)
    for name, per_round in timings.items():
        results[name]["rounds"] = per_round
    return summarize(model_name, size, frames, results, rounds, iterations)


def _round_medians(rounds):
    totals = [_round_total(r) for r in rounds]
    stages = OrderedDict()
    for name in rounds[0][0][1]:
        stages[name] = stats.median([stats.median([s[name] for _, s in r]) for r in rounds])
    return totals, stages


def summarize(model_name, size, frames, results, rounds, iterations):
    names = list(results)
    reference = results[names[0]]
    rows = []
    ref_totals = _round_medians(reference["rounds"])[0] if "rounds" in reference else None
    for name in names:
        result = results[name]
        path = result["path"]
        row = OrderedDict([("path", name), ("backend", path.backend or "eager (original)"),
                           ("precision", path.precision),
                           ("calibration_file", path.calibration_file)])
        if "error" in result or ref_totals is None:
            row["error"] = result.get("error") or "reference failed"
            rows.append(row)
            continue
        totals, stages = _round_medians(result["rounds"])
        row["notes"] = result["notes"]
        row["median_ms"] = stats.median(totals)
        row["stages_ms"] = stages
        row["speedup"] = stats.median(stats.paired_ratios(ref_totals, totals))
        row["round_ms"] = [round(v, 2) for v in totals]
        row["first_label_build_s"], row["first_label_process_s"] = result["first_label_s"]
        row["agreement_min"], row["agreement_mean"] = label_agreement(reference["labels"],
                                                                      result["labels"])
        row["gate"] = result["gate"]
        rows.append(row)
    return OrderedDict([("model", model_name), ("size", "%dx%d" % tuple(size)),
                        ("frame", frames[0][0]),
                        ("frame_size", "%dx%d" % (frames[0][1].shape[1], frames[0][1].shape[0])),
                        ("frames", [n for n, _ in frames]), ("rounds", rounds),
                        ("iterations_per_round", iterations), ("rows", rows),
                        ("cpu", cpu_features.describe())])


def _gate_text(gate):
    if gate is None:
        return "-"
    verdict = "passed" if gate["passed"] else "FAILED"
    if gate.get("refusal") and not gate["reasons"]:  # the gate passed; refused for another reason
        verdict = "REFUSED (%s)" % gate["refusal_cause"]
    text = "%s %.2f %% (worst frame %.2f %%)" % (verdict, 100 * gate["agreement_mean"],
                                                100 * gate["agreement_min"])
    if gate.get("miou_fp32") is not None:
        text += ", mIoU %.2f -> %.2f" % (gate["miou_fp32"], gate["miou_candidate"])
    return text


def format_table(result):
    lines = ["| path | image->labels ms | x vs original | preprocess / forward / argmax ms | "
             "first labels s (build / process) | labels = original (min / mean) | gate |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in result["rows"]:
        if "error" in row:
            lines.append("| %s | failed: %s | | | | | |" % (row["path"], row["error"][:120]))
            continue
        stages = " / ".join("%.1f" % v for v in row["stages_ms"].values())
        lines.append("| %s | %.1f | x%.2f | %s | %.1f / %.1f | %.4f %% / %.4f %% | %s |" % (
            row["path"], row["median_ms"], row["speedup"], stages, row["first_label_build_s"],
            row["first_label_process_s"], 100 * row["agreement_min"], 100 * row["agreement_mean"],
            _gate_text(row["gate"])))
    return "\n".join(lines)


def verdict(result):
    """The fastest path whose gate passed (fp32 paths need none) and whose labels equal the
    original code's on >= 99 % of the pixels, against this CPU's goal (x5 with AVX-512
    kernels, x3 without)."""
    goal = result["cpu"]["goal"]
    ran = [r for r in result["rows"][1:] if "speedup" in r]
    gated = [r for r in ran if r["gate"] is None or r["gate"]["passed"]]
    ok = [r for r in gated if r["agreement_mean"] >= MIN_AGREEMENT]
    if not ok:
        return "no path ran" if not ran else \
            "no path passed its gate with >= %.0f %% of the labels equal to the original's" % (
                100 * MIN_AGREEMENT)
    best = max(ok, key=lambda r: r["speedup"])
    state = "met" if best["speedup"] >= goal else "not met"
    if best["speedup"] >= MOONSHOT:
        state = "met, moonshot x%.0f too" % MOONSHOT
    text = ("best gated path with >= %.0f %% of the labels equal: %s, x%.2f the original code "
            "image->labels (goal x%.0f: %s)" % (100 * MIN_AGREEMENT, best["path"], best["speedup"],
                                               goal, state))
    faster = [r for r in gated if r["speedup"] > best["speedup"]]  # all below 99 % equal
    if faster:
        fastest = max(faster, key=lambda r: r["speedup"])
        text += "; faster but below %.0f %% equal: %s, x%.2f (%.2f %% equal)" % (
            100 * MIN_AGREEMENT, fastest["path"], fastest["speedup"],
            100 * fastest["agreement_mean"])
    return text
