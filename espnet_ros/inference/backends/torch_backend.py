"""PyTorch backend: CPU (fp32, with the measured CPU steps) or CUDA (fp32/fp16, CUDA graphs)."""
import copy

import torch

from . import cpu_optim
from .base import Backend, BackendUnavailable, cuda_available, register
from .validate import ValidationError, validate


def _cuda_graph_api():
    """(CUDAGraph, graph context) where this torch has them (1.10+), else None."""
    graph_cls = getattr(torch.cuda, "CUDAGraph", None)
    graph_ctx = getattr(torch.cuda, "graph", None)
    return (graph_cls, graph_ctx) if graph_cls is not None and graph_ctx is not None else None


def validation_shape(shape, divisor=4, multiple=16, minimum=32):
    """A smaller input for checking shape-agnostic CPU rewrites (keeps model building fast)."""
    n, c, h, w = shape
    small = [max(minimum, (v // divisor) // multiple * multiple) for v in (h, w)]
    return (n, c, min(h, small[0]), min(w, small[1]))


@register
class TorchBackend(Backend):
    """Options: ``optimize`` (CPU: True = cpu_optim.DEFAULT_CPU_STEPS, "max" = MAX_CPU_STEPS
    with torch.compile, False = plain eager, or a tuple of step names; CUDA: False skips
    fold_bn/channels_last), ``threads`` (for the "threads" step), ``cuda_graphs`` (CUDA,
    default True)."""

    name = "torch"

    @classmethod
    def check(cls, device, precision):
        device = torch.device(device)
        if device.type == "cuda":
            if not cuda_available():
                return "no CUDA device (torch %s, cuda %s)" % (torch.__version__, torch.version.cuda)
            if precision == "int8":
                return "int8 needs a calibrated engine (backend torch2trt)"
            if precision == "bf16":
                return "bf16 is not implemented for CUDA here (CPU: backend openvino)"
            return None
        if device.type != "cpu":
            return "device %s is not supported" % device
        if precision != "fp32":
            return "%s on CPU has no fast convolution kernels in PyTorch (backend openvino " \
                   "has bf16/int8)" % precision
        return None

    def _build(self, model):
        optimize = self.options.get("optimize", True)
        if self.device.type == "cpu":
            self._build_cpu(model, optimize)
        else:
            self._build_cuda(model, optimize)

    def _build_cpu(self, model, optimize):
        model = model.eval()
        steps = cpu_optim.steps_for(optimize)
        if not steps:
            self._forward = model
            self.info["steps"] = "eager"
            return
        forward, notes = cpu_optim.optimize_cpu(model, steps, self.options.get("threads"))
        # Compiled code is specialised per shape: validate (and so compile) at the real one.
        shape = self.input_shape if "compile" in steps else validation_shape(self.input_shape)
        try:
            result = validate(model, forward, torch.randn(shape), "fp32")
        except ValidationError as exc:
            # An optimization that changes the labels is a bug; eager is always correct.
            self._forward = model
            self.info["steps"] = "eager (optimized model rejected: %s)" % exc
            return
        self._forward = forward
        self.info["steps"] = ", ".join(notes) or "eager"
        self.info["validation"] = "agreement %.5f, relative error %.2g" % (
            result.agreement, result.relative_error)

    def _build_cuda(self, model, optimize):
        reference = copy.deepcopy(model).eval().to(self.device)
        module = reference
        if optimize is not False:
            module, count = cpu_optim.fold_batchnorm(reference)
            module = module.to(memory_format=torch.channels_last)
            self.info["steps"] = "fold_bn (%d), channels_last" % count
        self._dtype = torch.float16 if self.precision == "fp16" else torch.float32
        self._module = module.to(self._dtype)
        self._graph = None
        sample = torch.randn(self.input_shape, device=self.device)
        try:
            validate(reference, self._eager, sample, self.precision)
        except ValidationError as exc:
            raise BackendUnavailable("torch %s on %s does not reproduce fp32: %s"
                                     % (self.precision, self.device, exc)) from exc
        if self.options.get("cuda_graphs", True):
            self._capture_graph()

    def _eager(self, batch):
        batch = batch.to(self.device, self._dtype, non_blocking=True)
        return self._module(batch.contiguous(memory_format=torch.channels_last))

    def _capture_graph(self):
        """Records one forward of the fixed input shape; replays skip the per-kernel launches."""
        api = _cuda_graph_api()
        if api is None:
            self.info["cuda_graphs"] = "unavailable in torch %s" % torch.__version__
            return
        graph_cls, graph_ctx = api
        static_in = torch.zeros(self.input_shape, device=self.device)
        try:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side), torch.no_grad():
                for _ in range(3):  # warm-up on a side stream, as graph capture requires
                    self._eager(static_in)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = graph_cls()
            with torch.no_grad(), graph_ctx(graph):
                static_out = self._eager(static_in)
        except RuntimeError as exc:  # capture fails for ops that sync or allocate on the host
            self.info["cuda_graphs"] = "capture failed: %s" % str(exc).splitlines()[0]
            return
        self._graph, self._static_in, self._static_out = graph, static_in, static_out
        self.info["cuda_graphs"] = "on"

    def forward(self, batch):
        if self.device.type == "cpu":
            return self._forward(batch)
        if self._graph is not None and tuple(batch.shape) == self.input_shape:
            self._static_in.copy_(batch, non_blocking=True)
            self._graph.replay()
            return self._static_out
        return self._eager(batch)
