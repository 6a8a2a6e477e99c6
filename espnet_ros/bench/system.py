"""System-level metrics per model and backend: size, GMACs, FPS, latency, memory, power,
utilization, and GPU-frequency sensitivity.

For each (model, backend, resolution): a segmenter is built on that backend with no fallback
(a row names the backend that really ran, or why it could not), warmed up (engine builds and
first-call costs stay outside every window), then timed end to end for ``iterations`` frames:
``Segmenter.segment(frame)``, uint8 frame in, labels at the frame's size out (preprocessing,
forward, argmax, resize; no colour mask or overlay, which ``Pipeline.run`` would add), while
peak memory, CPU/GPU/memory utilization and, where a power source exists, energy are measured
over the same window. With ``gpu_sweep`` each model is timed again at several pinned GPU
clocks (``bench.frequency``), power included.
"""
import contextlib
import importlib
import os
import platform
import threading
import time
from collections import OrderedDict
from typing import NamedTuple, Optional, Tuple

import torch

from ..inference import Segmenter
from ..inference.backends import BackendUnavailable, ShapeDispatch, availability
from ..models import WeightsError, create_model, zoo
from ..models.complexity import count_macs, count_parameters, serialized_megabytes
from . import clocks as gpu_clocks
from . import frequency, profile, sizes, stats, utilization
from .frames import frame_at, synthetic_frame
from .memory import PeakMemory, release_free_memory, rss_mb

SCHEMA = "espnet_ros.bench.system/2"
DEFAULT_MODELS = ("espnet-p2q3-cityscapes", "espnet-p2q5-cityscapes", "espnet-p2q8-cityscapes",
                  "espnet-c-p2q8-cityscapes", "enet", "erfnet")
DEFAULT_SIZES = ((224, 224), (640, 360), (1024, 512), (2048, 1024))
SWEEP_SIZE = (1024, 512)


class SystemConfig(NamedTuple):
    models: Tuple[str, ...] = DEFAULT_MODELS
    backends: Tuple[str, ...] = ("available",)
    sizes: Tuple[Tuple[int, int], ...] = DEFAULT_SIZES
    iterations: int = 30
    warmup: int = 5
    device: str = "cpu"
    precision: str = "fp32"
    power: bool = True
    gpu_sweep: bool = False
    image: Optional[object] = None     # BGR frame to resize to each resolution; None: synthetic
    image_name: str = "synthetic"
    torch_optimize: str = "default"    # torch backend's optimize option: default, max, eager
    utilization: bool = True           # sample CPU/GPU/memory utilization during the run
    utilization_interval_s: float = 0.2
    op_profile: bool = False           # torch-profiler op split per model (bench.profile)


def machine_info(device="cpu"):
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    info = OrderedDict([("cpu", cpu), ("cpu_count", os.cpu_count()),
                        ("torch_threads", torch.get_num_threads()),
                        ("platform", platform.platform()), ("python", platform.python_version()),
                        ("torch", torch.__version__)])
    try:
        info["onnxruntime"] = importlib.import_module("onnxruntime").__version__
    except Exception:  # not installed or broken: the bench still runs
        info["onnxruntime"] = None
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def resolve_backends(requested, device, precision):
    """Names to measure: "available" expands to every backend that can run here."""
    names = []
    for name in requested:
        if name == "available":
            names.extend(n for n, reason in availability(device, precision).items()
                         if reason is None)
        else:
            names.append(name)
    return list(OrderedDict.fromkeys(names))


def load_model(name):
    """(model, entry, weights note): published weights when the entry has some, else random."""
    entry = zoo.get(name)
    if not entry.weights_file:
        model, entry = create_model(name, pretrained=False)
        return model, entry, "random (no published weights)"
    try:
        model, entry = create_model(name)
        return model, entry, "published"
    except WeightsError as exc:  # offline without a mirror: timing does not need real weights
        model, entry = create_model(name, pretrained=False)
        return model, entry, "random (%s)" % str(exc).splitlines()[0][:80]


def detect_power(enabled=True):
    """A power meter from espnet_ros.power (ROS-free), or an object saying why none."""
    class _Unavailable:
        available = False
        name = "unavailable"

        def __init__(self, reason):
            self.reason = reason

        def close(self):
            pass

    if not enabled:
        return _Unavailable("disabled (--no-power)")
    try:
        power = importlib.import_module("espnet_ros.power")
    except ImportError as exc:
        return _Unavailable("power module not importable: %s" % exc)
    try:
        return power.detect_power_source(root="/")
    except Exception as exc:  # a broken source must not stop the benchmark
        return _Unavailable("power detection failed: %s" % exc)


class EnergyWindow:
    """Joules over a ``with`` block; a thread samples the meter so sampled sources integrate."""

    def __init__(self, meter, interval_s=0.1):
        self.meter = meter
        self.interval_s = interval_s
        self.joules = None
        self.reason = "" if getattr(meter, "available", False) else getattr(meter, "reason", "")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = None

    def _sample(self):
        while not self._stop.wait(self.interval_s):
            with self._lock:
                self.meter.read()

    def __enter__(self):
        if self.reason:
            return self
        try:
            self.meter.start()
        except Exception as exc:  # hardware errors become a reason in the report
            self.reason = "start failed: %s" % exc
            return self
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        if self._thread is None:
            return False
        self._stop.set()
        self._thread.join()
        try:
            with self._lock:
                self.joules = self.meter.read()
        except Exception as exc:  # hardware errors become a reason in the report
            self.reason = "read failed: %s" % exc
        return False


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(segmenter, frame, iterations, warmup, meter, idle_rss_mb=None, window=None):
    """Times ``segmenter.segment(frame)``; warm-up frames are outside every window.

    ``idle_rss_mb``: RSS before the segmenter was built, for the memory this row added.
    ``window``: a context manager around the timed frames (a utilization phase).
    """
    start = time.perf_counter()
    segmenter.segment(frame)  # builds fixed-shape backends for this size
    build_s = time.perf_counter() - start
    for _ in range(max(0, warmup - 1)):
        segmenter.segment(frame)
    # Peak over one frame plus the timed ones, starting from memory actually in use.
    release_free_memory()
    peak = PeakMemory(segmenter.device)
    peak.start()
    segmenter.segment(frame)
    latencies, inference = [], []
    with EnergyWindow(meter) as energy, (window or contextlib.nullcontext()):
        window_start = time.perf_counter()
        for _ in range(iterations):
            t0 = time.perf_counter()
            segmenter.segment(frame)
            _sync(segmenter.device)
            latencies.append((time.perf_counter() - t0) * 1e3)
            inference.append(segmenter.last_timing.inference_ms)
        elapsed = time.perf_counter() - window_start
    result = OrderedDict([
        ("fps", iterations / elapsed if elapsed > 0 else None),
        ("latency_ms_p50", stats.percentile(latencies, 50)),
        ("latency_ms_p95", stats.percentile(latencies, 95)),
        ("inference_ms_p50", stats.percentile(inference, 50)),
        ("first_frame_s", build_s),
        ("peak_rss_mb", peak.rss_mb()), ("peak_rss_reset", peak.reset),
        ("added_rss_mb", peak.rss_mb() - idle_rss_mb
         if idle_rss_mb is not None and peak.rss_mb() is not None else None),
        ("peak_cuda_mb", peak.cuda_mb()),
    ])
    if energy.joules is not None and elapsed > 0:
        result["power_w"] = energy.joules / elapsed
        result["energy_j_per_frame"] = energy.joules / iterations
        result["power_source"] = getattr(meter, "name", "")
    else:
        result["power_w"] = result["energy_j_per_frame"] = None
        result["power_source"] = "unavailable: %s" % energy.reason
    return result


def _segmenter(model, entry, backend, size, device, precision, options=None):
    dispatch = ShapeDispatch(model, entry, backend, device, precision, fallback=False,
                             options=options)
    return Segmenter(model, entry, dispatch.device, tuple(size), forward=dispatch,
                     backend=dispatch)


def _options(config, backend):
    if backend != "torch":
        return None
    return {"optimize": {"default": True, "max": "max", "eager": False}[config.torch_optimize]}


def engine_megabytes(segmenter):
    """Serialized TensorRT engine size of the backend that ran, when it built engines."""
    count = getattr(getattr(segmenter.backend, "current", None), "engine_bytes", None)
    return count / 1e6 if count else None


def _label(model_name, backend, size, mhz=None):
    return "%s/%s/%dx%d%s" % (model_name, backend, size[0], size[1],
                              "@%.0fMHz" % mhz if mhz is not None else "")


def _detail_size(config):
    """The one resolution of the sweep and the op profile: 1024x512 unless not measured."""
    return SWEEP_SIZE if SWEEP_SIZE in config.sizes or not config.sizes else config.sizes[-1]


def op_profiles(config, log):
    """{model: op split} of the torch backend's CPU forward (``bench.profile``)."""
    size = _detail_size(config)
    result = OrderedDict()
    for model_name in config.models:
        model, entry, _ = load_model(model_name)
        result[model_name] = profile.profile_model(model, entry, size, min(config.iterations, 5),
                                                   _options(config, "torch"))
        log("op profile %s at %dx%d: %.1f ms, conv %.0f %%" % (
            model_name, size[0], size[1], result[model_name]["total_ms"],
            100 * result[model_name]["conv_ms"] / max(result[model_name]["total_ms"], 1e-9)))
    return result


def frequency_sweeps(config, clocks, backend, meter, sampler, log):
    """{model: sweep} at each pinned GPU clock (``bench.frequency``), power and energy
    measured at every clock; clocks are restored after each model."""
    size = _detail_size(config)
    frame = frame_at(config.image if config.image is not None else synthetic_frame(*size), size)
    sweeps = OrderedDict()
    for model_name in config.models:
        model, entry, _ = load_model(model_name)
        try:
            segmenter = _segmenter(model, entry, backend, size, config.device, config.precision,
                                   _options(config, backend))

            def measure_at(mhz, segmenter=segmenter, model_name=model_name):
                label = _label(model_name, backend, size, mhz)
                result = measure(segmenter, frame, config.iterations, config.warmup, meter,
                                 window=sampler.phase(label))
                keep = ("fps", "latency_ms_p50", "inference_ms_p50", "power_w",
                        "energy_j_per_frame", "power_source")
                point = OrderedDict((k, result[k]) for k in keep)
                point["utilization"] = sampler.summary(label)
                return point

            log("sweep %s (%s, %dx%d):" % (model_name, backend, size[0], size[1]))
            result = frequency.sweep(clocks, measure_at, log)
        except BackendUnavailable as exc:
            result = OrderedDict([("status", "unavailable: %s" % exc), ("points", []),
                                  ("pairs", []), ("overall", None)])
        result["backend"], result["size"] = backend, "%dx%d" % size
        sweeps[model_name] = result
    return sweeps


def _sampler(config, device):
    if not config.utilization:
        return utilization.UtilizationSampler([], missing={"all": "disabled (--no-utilization)"})
    index = torch.device(device).index or 0
    sources, missing = utilization.detect_sources(gpu_index=index,
                                                  interval_s=config.utilization_interval_s)
    return utilization.UtilizationSampler(sources, config.utilization_interval_s,
                                          missing=missing)


def run_system(config, log=print, clocks=None, meter=None, sampler=None):
    """Runs the benchmark described by ``config``; returns the JSON-ready result.

    ``clocks``, ``meter`` and ``sampler`` replace the detected GPU clocks, power meter and
    utilization sampler (tests pass fakes)."""
    device = torch.device(config.device)
    backends = resolve_backends(config.backends, config.device, config.precision)
    meter = meter if meter is not None else detect_power(config.power)
    if clocks is None:
        clocks = gpu_clocks.detect_gpu_clocks() if device.type == "cuda" else \
            gpu_clocks.UnavailableClocks("CPU run")
    sampler = sampler if sampler is not None else _sampler(config, config.device)
    sampler.start()
    rows = []
    try:
        for model_name in config.models:
            model, entry, weights = load_model(model_name)
            params = count_parameters(model)
            size_mb = serialized_megabytes(model)
            size_fp16_mb = serialized_megabytes(model, torch.float16)
            for size in config.sizes:
                gmacs = count_macs(model, size[0], size[1]) / 1e9
                image = config.image if config.image is not None else synthetic_frame(*size)
                frame = frame_at(image, size)
                for backend in backends:
                    row = OrderedDict([
                        ("model", model_name), ("backend", backend), ("device", config.device),
                        ("precision", config.precision), ("size", "%dx%d" % tuple(size)),
                        ("parameters", params), ("size_mb", size_mb),
                        ("size_fp16_mb", size_fp16_mb), ("gmacs", gmacs), ("weights", weights)])
                    label = _label(model_name, backend, size)
                    try:
                        release_free_memory()
                        idle = rss_mb()
                        segmenter = _segmenter(model, entry, backend, size, config.device,
                                               config.precision, _options(config, backend))
                        row.update(measure(segmenter, frame, config.iterations, config.warmup,
                                           meter, idle, window=sampler.phase(label)))
                        row["status"] = "ok"
                        row["engine_mb"] = engine_megabytes(segmenter)
                        row["utilization"] = sampler.summary(label)
                        row["backend_info"] = {k: str(v) for k, v in
                                               segmenter.backend.info.items()}
                        del segmenter
                    except BackendUnavailable as exc:
                        row["status"] = "unavailable: %s" % exc
                    log("%-26s %-12s %-9s %s" % (model_name, backend, row["size"],
                                                  "%.1f FPS, p50 %.1f ms" % (
                                                      row["fps"], row["latency_ms_p50"])
                                                  if row["status"] == "ok" else row["status"]))
                    rows.append(row)
        sweeps, sweep_reason = OrderedDict(), ""
        if not config.gpu_sweep:
            sweep_reason = "not requested (--gpu-freq-sweep)"
        elif not clocks.available:
            sweep_reason = "no GPU clocks: %s" % clocks.reason
        elif not clocks.can_set:
            sweep_reason = "GPU clocks cannot be pinned here (needs root)"
        elif not backends:
            sweep_reason = "no backend can run"
        else:
            sweeps = frequency_sweeps(config, clocks, backends[0], meter, sampler, log)
        ops = op_profiles(config, log) if config.op_profile and device.type == "cpu" else None
    finally:
        sampler.stop()
        close = getattr(meter, "close", None)
        if close is not None:
            close()
    return OrderedDict([
        ("schema", SCHEMA),
        ("machine", machine_info(config.device)),
        ("config", OrderedDict([
            ("models", list(config.models)), ("backends", backends),
            ("sizes", ["%dx%d" % tuple(s) for s in config.sizes]),
            ("iterations", config.iterations), ("warmup", config.warmup),
            ("device", config.device), ("precision", config.precision),
            ("torch_optimize", config.torch_optimize), ("frame", config.image_name)])),
        ("power", OrderedDict([("available", bool(getattr(meter, "available", False))),
                               ("source", getattr(meter, "name", "unavailable")),
                               ("reason", getattr(meter, "reason", ""))])),
        ("gpu_clocks", OrderedDict([
            ("source", clocks.source), ("reason", clocks.reason),
            ("current_mhz", clocks.current_mhz() if clocks.available else None),
            ("available_mhz", clocks.available_mhz() if clocks.available else []),
            ("can_set", bool(clocks.available and clocks.can_set)),
            ("sweep", sweeps), ("sweep_reason", sweep_reason)])),
        ("model_sizes", sizes.size_section(config.models, rows)),
        ("op_profile", ops),
        ("utilization", sampler.to_json()),
        ("rows", rows),
    ])
