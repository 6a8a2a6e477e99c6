"""Building a backend: selection, fallback when building fails, and ``auto``'s timing trial."""
import statistics
import time
from pathlib import Path

import torch

from .base import (
    AUTO,
    LOG,
    BackendUnavailable,
    Choice,
    auto_candidates,
    fallback_choice,
    get,
    select_backend,
)

TRIAL_ROUNDS = 3


def _time_once(backend, batch):
    start = time.perf_counter()
    with torch.no_grad():
        backend.forward(batch)
    if backend.device.type == "cuda":
        torch.cuda.synchronize(backend.device)
    return time.perf_counter() - start


def label(backend):
    """A backend's name in ``auto``'s report: its name, with the precision where not fp32."""
    return backend.name if backend.precision == "fp32" else \
        "%s %s" % (backend.name, backend.precision)


def trial(backends, input_shape, rounds=TRIAL_ROUNDS):
    """The fastest of ``backends`` on a random input, timed in interleaved rounds.

    Returns (best backend, {label: median ms}).
    """
    batch = torch.randn(input_shape)
    times = {label(b): [] for b in backends}
    for backend in backends:
        _time_once(backend, batch)  # warm-up, excluded
    for _ in range(rounds):
        for backend in backends:
            times[label(backend)].append(_time_once(backend, batch) * 1e3)
    medians = {name: statistics.median(values) for name, values in times.items()}
    best = min(backends, key=lambda b: medians[label(b)])
    return best, medians


def _build(choice, model, entry, input_shape, options):
    return get(choice.name)(model, entry, input_shape, choice.device, choice.precision, **options)


def _auto_cpu_candidates(precision, options):
    """(name, precision) pairs ``auto`` builds on CPU: each candidate backend at ``precision``
    and, given a calibration file, OpenVINO at that file's precision (refused, so skipped,
    where its model failed the accuracy gate). Returns (pairs, reasons already known)."""
    pairs = [(name, precision) for name in auto_candidates("cpu")]
    path = options.get("calibration_file")
    if not path:
        return pairs, []
    from ..calibration import load_spec
    try:
        calibrated = load_spec(Path(path)).precision
    except (ValueError, OSError) as exc:
        return pairs, ["openvino with %s: %s" % (path, exc)]
    if ("openvino", calibrated) not in pairs:
        pairs.append(("openvino", calibrated))
    return pairs, []


def _build_auto_cpu(model, entry, input_shape, precision, options):
    """Builds every runnable CPU candidate and keeps the fastest (speed differs per model and
    CPU); reduced precision competes only as a calibrated model that passed its gate."""
    built = []
    pairs, reasons = _auto_cpu_candidates(precision, options)
    for name, candidate_precision in pairs:
        reason = get(name).check("cpu", candidate_precision)
        if reason is None:
            try:
                built.append(get(name)(model, entry, input_shape, "cpu", candidate_precision,
                                       **options))
                continue
            except BackendUnavailable as exc:
                reason = str(exc)
        reasons.append("%s %s: %s" % (name, candidate_precision, reason))
    if not built:
        raise BackendUnavailable("no CPU backend can run: %s" % "; ".join(reasons))
    best, medians = trial(built, input_shape) if len(built) > 1 else (built[0], {})
    best.info["auto"] = ", ".join("%s %.1f ms" % kv for kv in sorted(medians.items())) or \
        "only %s can run" % label(best)
    if reasons:
        best.info["auto skipped"] = "; ".join(reasons)
    LOG.info("auto backend: %s (%s)", label(best), best.info["auto"])
    return best


def build_backend(choice, model, entry, input_shape, fallback=True, auto=False, **options):
    """Builds the backend ``choice`` (a ``select_backend`` result) for NCHW ``input_shape``.

    A build that fails (a conversion refused, validation failing) falls back as allowed;
    ``auto`` on CPU builds every runnable candidate and keeps the fastest. ``options`` go to
    every backend tried; each takes the ones it knows (see their classes).
    """
    notes = list(choice.notes)
    if auto and choice.device == "cpu":
        backend = _build_auto_cpu(model, entry, input_shape, choice.precision, options)
    else:
        while True:
            try:
                backend = _build(choice, model, entry, input_shape, options)
                break
            except BackendUnavailable as exc:
                if not fallback:
                    raise
                choice = fallback_choice(choice.name, choice.device, choice.precision, str(exc))
                notes.extend(choice.notes)
    backend.info["fallback"] = "; ".join(notes) or "none"
    return backend


def create_backend(model, entry, input_shape, name="torch", device="cpu", precision="fp32",
                   fallback=True, **options):
    """A ready backend for (model, entry, NCHW ``input_shape``): selected, then built."""
    choice = select_backend(name, fallback, device, precision)
    return build_backend(choice, model, entry, input_shape, fallback, name == AUTO, **options)


class ShapeDispatch:
    """Runs each batch on a backend built for its shape, so fixed-shape backends (engines,
    ONNX graphs) serve any batch size or image size; others are built once and reused.

    ``name``, ``precision``, ``device`` and ``info`` are those of the latest backend (before
    the first build: of the selection). Keeps at most ``limit`` backends.
    """

    def __init__(self, model, entry, name="torch", device="cpu", precision="fp32", fallback=True,
                 options=None, limit=4):
        self._model, self._entry = model, entry
        self._fallback = fallback
        self._options = dict(options or {})
        self._limit = limit
        self._choice = select_backend(name, fallback, device, precision)
        self._requested = name
        self._by_shape = {}
        self.current = None

    @property
    def name(self):
        return self.current.name if self.current else self._choice.name

    @property
    def precision(self):
        return self.current.precision if self.current else self._choice.precision

    @property
    def device(self):
        return self.current.device if self.current else torch.device(self._choice.device)

    @property
    def info(self):
        return self.current.info if self.current else {}

    def backend_for(self, shape):
        shape = tuple(int(v) for v in shape)
        backend = self._by_shape.get(shape)
        if backend is None and self.current is not None and not self.current.fixed_shape:
            backend = self.current
        if backend is None:
            # The backend is selected once (in __init__); later shapes rebuild what runs now.
            choice = self._choice if self.current is None else Choice(
                self.current.name, str(self.current.device), self.current.precision)
            backend = build_backend(choice, self._model, self._entry, shape, self._fallback,
                                    self.current is None and self._requested == AUTO,
                                    **self._options)
            if len(self._by_shape) >= self._limit:
                self._by_shape.clear()
            self._by_shape[shape] = backend
        self.current = backend
        return backend

    def __call__(self, batch):
        backend = self.backend_for(batch.shape)
        if batch.device != backend.device:
            batch = batch.to(backend.device)
        return backend.forward(batch)
