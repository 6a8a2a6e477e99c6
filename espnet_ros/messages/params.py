"""The node's parameters in one table: default, description, range, and when a change applies.

ROS-free so config/segment.yaml, the parameter table in docs/node.md and the tests can be checked against it.
"""
from typing import NamedTuple, Optional, Tuple

# How a runtime change is handled.
LIVE = "live"          # applied to the next frame
RELOAD = "reload"      # rebuilds the inference pipeline; refused (old one kept) if that fails
STARTUP = "startup"    # read-only after start: topics, transports, QoS


class ParamSpec(NamedTuple):
    name: str
    default: object
    description: str
    change: str = LIVE
    range: Optional[Tuple[float, float]] = None  # inclusive (min, max) for numbers
    choices: Tuple[str, ...] = ()


SPECS = (
    ParamSpec("cameras", [], "camera names served by one model; empty: one camera on 'image' "
              "(see docs/node.md \"Several cameras\")", STARTUP),
    ParamSpec("max_batch", 0, "most frames in one forward call (one per camera with a fresh "
              "frame); 0: every camera", STARTUP, range=(0, 64)),
    ParamSpec("lifecycle", False, "a managed (lifecycle) node: configure loads the model, "
              "activate subscribes; false: it serves at start", STARTUP),
    ParamSpec("model", "espnet-p2q8-cityscapes",
              "zoo name (espnet-ros models) or checkpoint file of espnet-ros train", RELOAD),
    ParamSpec("weights", "", "checkpoint file; empty: the model's published weights", RELOAD),
    ParamSpec("backend", "torch", "inference backend", RELOAD,
              choices=("auto", "torch", "onnxruntime", "openvino", "torch2trt")),
    ParamSpec("device", "cpu", "torch device: cpu, cuda, cuda:N", RELOAD),
    ParamSpec("precision", "fp32", "fp32, fp16, bf16 or int8 (backend permitting)", RELOAD,
              choices=("fp32", "fp16", "bf16", "int8")),
    ParamSpec("calibration_file", "", "bf16/int8 on CPU (backend openvino): calibration file or "
              "folder of espnet-ros calibrate; a model that failed its accuracy gate is refused",
              RELOAD),
    ParamSpec("allow_fallback", True,
              "use another backend when the requested one is unavailable (else exit)", RELOAD),
    ParamSpec("input_width", 0, "model input width; 0: the model's native size", RELOAD,
              range=(0, 8192)),
    ParamSpec("input_height", 0, "model input height; 0: the model's native size", RELOAD,
              range=(0, 8192)),
    ParamSpec("threads", 0, "torch intra-op threads; 0: on CPU every core this process may use, "
              "except that with the torch backend the node times the warm-up forward on every "
              "core and on one fewer and gives a core back to its other threads when every core "
              "saves less than their per-frame work (about 9 ms; docs/benchmarks.md); set fewer "
              "where other busy processes share the cores; torch's default on CUDA",
              STARTUP, range=(0, 256)),
    ParamSpec("pipelining", True,
              "render and publish frame N on a second thread while frame N+1 runs through "
              "the model", STARTUP),
    ParamSpec("warmup_frames", 2, "forward passes before serving (excluded from statistics)",
              STARTUP, range=(0, 100)),
    ParamSpec("max_input_pixels", 50_000_000,
              "frames with more pixels are refused before decoding (raw: from the message, "
              "compressed: from the PNG/JPEG header); 0: no limit. Admits 8K (33 MP)", LIVE,
              range=(0, 2_000_000_000)),
    ParamSpec("input_transport", "raw", "raw: sensor_msgs/Image on 'image'; compressed: "
              "sensor_msgs/CompressedImage on 'image/compressed'", STARTUP,
              choices=("raw", "compressed")),
    ParamSpec("use_camera_info", False,
              "subscribe to 'camera_info' and republish it scaled as ~/camera_info", STARTUP),
    ParamSpec("input_reliability", "best_effort", "input QoS reliability", STARTUP,
              choices=("best_effort", "reliable")),
    ParamSpec("input_depth", 1, "input QoS history depth", STARTUP, range=(1, 100)),
    ParamSpec("output_reliability", "reliable", "output QoS reliability", STARTUP,
              choices=("best_effort", "reliable")),
    ParamSpec("output_depth", 2, "output QoS history depth", STARTUP, range=(1, 100)),
    ParamSpec("output_resolution", "input",
              "input: outputs at the camera's resolution; model: at the model's", LIVE,
              choices=("input", "model")),
    ParamSpec("overlay_alpha", 0.5, "opacity of the class colours in ~/overlay", LIVE,
              range=(0.0, 1.0)),
    ParamSpec("palette", "dataset", "dataset: the checkpoint's colours; generic: spread colours",
              LIVE, choices=("dataset", "generic")),
    ParamSpec("visible_classes", "", "comma-separated class ids or names to draw; empty: all",
              LIVE),
    ParamSpec("publish_label", True, "publish ~/label", LIVE),
    ParamSpec("publish_color_mask", True, "publish ~/color_mask", LIVE),
    ParamSpec("publish_overlay", True, "publish ~/overlay", LIVE),
    ParamSpec("publish_info", True, "publish ~/info (needs the generated messages)", LIVE),
    ParamSpec("publish_confidence", False,
              "publish ~/confidence (maximum class probability; costs a softmax)", LIVE),
    ParamSpec("confidence_encoding", "mono8", "mono8: round(255 p), what nav2's semantic "
              "segmentation layer reads; 32FC1: p as float", LIVE, choices=("mono8", "32FC1")),
    ParamSpec("max_rate_hz", 0.0, "process at most this many frames per second; 0: no limit",
              LIVE, range=(0.0, 1000.0)),
    ParamSpec("min_fps", 1.0, "diagnostics: WARN below this output rate (-10 % tolerance)", LIVE,
              range=(0.0, 1000.0)),
    ParamSpec("max_fps", 0.0, "diagnostics: WARN above this output rate; 0: no upper bound",
              LIVE, range=(0.0, 1000.0)),
    ParamSpec("max_delay_s", 1.0,
              "diagnostics: WARN when input stamps are older than this at publish time", LIVE,
              range=(0.0, 3600.0)),
    ParamSpec("max_latency_ms", 0.0, "diagnostics: WARN when latency p95 exceeds it; 0: off",
              LIVE, range=(0.0, 60000.0)),
    ParamSpec("power_source", "auto", "auto: best power meter present; none: do not measure",
              STARTUP, choices=("auto", "none")),
)

BY_NAME = {spec.name: spec for spec in SPECS}


def camera_names(value):
    """The ``cameras`` parameter as a list; a reason (ValueError) for unusable names."""
    names = [str(n).strip("/") for n in (value or [])]
    for name in names:
        if not name or not all(c.isalnum() or c in "_/" for c in name) or name[0].isdigit() \
                or "//" in name:
            raise ValueError("cameras: %r is not a valid topic name part (letters, digits, _ "
                             "and /, not starting with a digit)" % name)
    if len(set(names)) != len(names):
        raise ValueError("cameras: names repeat in %s" % names)
    return names


def defaults():
    return {spec.name: spec.default for spec in SPECS}


def validate(name, value):
    """A reason string when ``value`` is not acceptable for ``name``, else None."""
    spec = BY_NAME.get(name)
    if spec is None:
        return None
    if name == "cameras":
        try:
            camera_names(value)
        except ValueError as exc:
            return str(exc)
        return None
    if spec.choices and value not in spec.choices:
        return "%s must be one of %s, got %r" % (name, ", ".join(spec.choices), value)
    if spec.range is not None and not spec.range[0] <= value <= spec.range[1]:
        return "%s must be within %s..%s, got %r" % (name, spec.range[0], spec.range[1], value)
    return None


def parse_class_list(text, class_names):
    """'car, person, 0' -> sorted ids; None for an empty text (all classes)."""
    text = (text or "").strip()
    if not text:
        return None
    lookup = {name.lower(): i for i, name in enumerate(class_names)}
    ids = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item.isdigit() and int(item) < len(class_names):
            ids.add(int(item))
        elif item.lower() in lookup:
            ids.add(lookup[item.lower()])
        else:
            raise ValueError("unknown class %r; classes: %s" % (item, ", ".join(class_names)))
    return sorted(ids)


def pipeline_kwargs(config):
    """``Pipeline.build`` arguments from parameter values (the node's, or bag eval's)."""
    size = "native"
    if config["input_width"] and config["input_height"]:
        size = (int(config["input_width"]), int(config["input_height"]))
    return dict(model=config["model"], weights=config["weights"] or None,
                device=config["device"], input_size=size, backend=config["backend"],
                precision=config["precision"], fallback=config["allow_fallback"],
                backend_options=backend_options(config),
                palette=config["palette"], alpha=float(config["overlay_alpha"]),
                warmup_frames=config["warmup_frames"])


def backend_options(config):
    """Backend options from the parameters (only those set)."""
    options = {}
    if config.get("calibration_file"):
        options["calibration_file"] = config["calibration_file"]
    return options


def torch_threads(config, cores=None):
    """The intra-op thread count for ``threads`` (None: leave torch's default).

    The default is every core: on 2 cores, with the camera driver in another process, the node
    gave 1.4x the FPS of one thread with the default model (docs/benchmarks.md, "threads");
    where the forward is short the node then gives a core back (``keep_every_core``).
    """
    if config["threads"]:
        return int(config["threads"])
    if not str(config["device"]).startswith("cpu"):
        return None
    return max(1, usable_cores() if cores is None else cores)


def usable_cores():
    """The cores this process may run on (its affinity where the OS has one)."""
    import os
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# The node's per-frame work outside the model (arrival, deserialize, colour, overlay, publish):
# about 9 ms at 1024x512 camera frames with every output subscribed (docs/benchmarks.md,
# "bench node"); its threads need a core of their own for that.
NODE_FRAME_WORK_MS = 9.0


def keep_every_core(every_core_ms, one_fewer_ms, other_work_ms=NODE_FRAME_WORK_MS):
    """Whether a forward on every core (``every_core_ms``) rather than one core fewer
    (``one_fewer_ms``) is worth the core the node's other threads would use: only when it saves
    more per frame than their work. Measured on 2 cores: the default model at 1024x512 saved
    about 85 ms and ran at 1.4x the node FPS on both cores; a 128x64 model saved about 1 ms and
    ran at 0.7x."""
    return one_fewer_ms - every_core_ms > other_work_ms
