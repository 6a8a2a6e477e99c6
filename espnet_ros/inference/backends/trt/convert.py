"""One torch2trt conversion: fixed shape, precision flags, and refusal on unsupported methods.

torch2trt does not fail on a PyTorch call it has no converter for: it prints "Warning:
Encountered known unsupported method ..." and builds an engine in which that call's result is
a constant of the conversion sample. Such an engine is refused here, whatever channel the
message came through (stdout in 0.x releases, warnings or logging in later ones).
"""
import contextlib
import io
import logging
import re
import warnings

LOG = logging.getLogger("espnet_ros")
UNSUPPORTED = re.compile(r"unsupported method\s+([\w.]+)", re.IGNORECASE)
DEFAULT_WORKSPACE = 1 << 28  # 256 MiB: enough for these models, small enough for a TX2


class ConversionRefused(RuntimeError):
    """torch2trt reported methods it cannot convert; the engine would be wrong."""


class _ListHandler(logging.Handler):
    def __init__(self, lines):
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record):
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def captured_messages(logger_names=("torch2trt",)):
    """Collects lines printed, warned or logged inside the block into the yielded list."""
    lines, caught = [], []
    stdout = io.StringIO()
    handler = _ListHandler(lines)
    loggers = [logging.getLogger(name) for name in logger_names]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with contextlib.redirect_stdout(stdout), warnings.catch_warnings(record=True) as records:
            warnings.simplefilter("always")
            try:
                yield lines
            finally:
                caught.extend(records)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        lines.extend(stdout.getvalue().splitlines())
        lines.extend(str(w.message) for w in caught)


def unsupported_methods(lines):
    return sorted({m.group(1) for line in lines for m in UNSUPPORTED.finditer(line)})


class CalibrationSet:
    """torch2trt's int8 calibration dataset: item i is the list of inputs without batch axis."""

    def __init__(self, batches):
        self.items = [[t[i] for t in inputs] for inputs in batches for i in range(inputs[0].shape[0])]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def torch2trt_kwargs(precision, calibration=None, workspace=DEFAULT_WORKSPACE):
    """Keyword arguments of torch2trt.torch2trt for a precision (int8 keeps fp16 fallback)."""
    kwargs = {"fp16_mode": precision in ("fp16", "int8"), "max_workspace_size": int(workspace),
              "max_batch_size": 1}
    if precision == "int8":
        if not calibration:
            raise ValueError("int8 needs calibration inputs")
        kwargs["int8_mode"] = True
        kwargs["int8_calib_dataset"] = CalibrationSet(calibration)
    return kwargs


def convert(torch2trt_fn, module, inputs, precision, calibration=None,
            workspace=DEFAULT_WORKSPACE, name="model"):
    """Converts ``module`` for exactly the shapes of ``inputs``; raises ConversionRefused."""
    kwargs = torch2trt_kwargs(precision, calibration, workspace)
    kwargs["max_batch_size"] = int(inputs[0].shape[0])
    with captured_messages() as lines:
        engine = torch2trt_fn(module, list(inputs), **kwargs)
    bad = unsupported_methods(lines)
    if bad:
        raise ConversionRefused("torch2trt cannot convert %s in %s; refusing an engine that "
                                "would hold those results as constants" % (", ".join(bad), name))
    for line in lines:
        LOG.debug("torch2trt (%s): %s", name, line)
    return engine
