"""Project-local torch2trt converters, for layers torch2trt converts wrongly or not at all.

- ``torch.nn.ConvTranspose2d.forward``: torch2trt 0.5 ignores ``output_padding`` (ENet's
  3x3/stride-2 up-sampling comes out one pixel short) and its later rewrite takes the output
  channel count from the wrong weight axis when in != out channels (ENet's final 16 -> C).
  Here the output size is set by explicit pre/post padding: PyTorch's
  (in-1)*s - 2p + k + output_padding equals TensorRT's (in-1)*s + k - pre - post with
  pre = p and post = p - output_padding.
- ``torch.nn.functional.prelu``: torch2trt shapes the slopes for implicit-batch networks
  only (C,1,1); here the shape follows the rank of the network's tensor, so the same
  converter serves implicit-batch (torch2trt 0.x on TensorRT 7/8) and explicit-batch networks.

The pure parts (parameter derivation, selection) are unit-tested without TensorRT.
"""
import importlib
from typing import NamedTuple, Tuple

from torch import nn

from .support import parse_version

CONV_TRANSPOSE = "torch.nn.ConvTranspose2d.forward"
PRELU = "torch.nn.functional.prelu"


class DeconvParams(NamedTuple):
    out_channels: int
    kernel: Tuple[int, int]
    stride: Tuple[int, int]
    pre_padding: Tuple[int, int]
    post_padding: Tuple[int, int]
    groups: int


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def deconv_params(module):
    """TensorRT deconvolution parameters reproducing ``module`` (an nn.ConvTranspose2d)."""
    if any(d != 1 for d in _pair(module.dilation)):
        raise NotImplementedError("TensorRT deconvolution has no dilation (%s)" % (module,))
    padding, extra = _pair(module.padding), _pair(module.output_padding)
    post = tuple(p - e for p, e in zip(padding, extra))
    if min(post) < 0:
        raise NotImplementedError("output_padding larger than padding is not supported (%s)"
                                  % (module,))
    # The weight is (in, out/groups, kh, kw): the output count is out_channels, never the
    # first weight axis.
    return DeconvParams(int(module.out_channels), _pair(module.kernel_size), _pair(module.stride),
                        padding, post, int(module.groups))


def deconv_output_size(size, params):
    """Spatial output size TensorRT computes for input ``size`` (h, w)."""
    return tuple((n - 1) * s + k - a - b for n, s, k, a, b in zip(
        size, params.stride, params.kernel, params.pre_padding, params.post_padding))


def prelu_slope_shape(channels, rank):
    """Shape of the slope constant for a network tensor of ``rank`` dims (channels at rank-3)."""
    if rank < 3:
        raise NotImplementedError("PReLU on %d-D network tensors (only images)" % rank)
    shape = [1] * rank
    shape[rank - 3] = channels
    return tuple(shape)


def _tensorrt():
    return importlib.import_module("tensorrt")


def _trt_tensor(ctx, tensor):
    """The TensorRT tensor of a torch tensor during conversion (inputs carry ``_trt``)."""
    trt_value = getattr(tensor, "_trt", None)
    if trt_value is not None:
        return trt_value
    torch2trt = importlib.import_module("torch2trt")
    add_missing = getattr(torch2trt, "add_missing_trt_tensors", None)
    if add_missing is not None:
        return add_missing(ctx.network, [tensor])[0]
    return torch2trt.trt_(ctx.network, tensor)


def convert_conv_transpose2d(ctx, trt=None):
    trt = trt or _tensorrt()
    module, tensor = ctx.method_args[0], ctx.method_args[1]
    params = deconv_params(module)
    weight = module.weight.detach().float().cpu().numpy()
    if module.bias is not None:
        bias = module.bias.detach().float().cpu().numpy()
    else:
        bias = trt.Weights(trt.float32)
    layer = ctx.network.add_deconvolution_nd(_trt_tensor(ctx, tensor), params.out_channels,
                                             params.kernel, weight, bias)
    layer.stride_nd = params.stride
    layer.pre_padding = params.pre_padding
    layer.post_padding = params.post_padding
    layer.num_groups = params.groups
    ctx.method_return._trt = layer.get_output(0)


def convert_prelu(ctx, trt=None):
    trt = trt or _tensorrt()
    args = ctx.method_args
    tensor = args[0]
    weight = args[1] if len(args) > 1 else ctx.method_kwargs["weight"]
    tensor_trt = _trt_tensor(ctx, tensor)
    shape = prelu_slope_shape(int(weight.numel()), len(tensor_trt.shape))
    slopes = weight.detach().float().cpu().reshape(shape).numpy()
    slope_trt = ctx.network.add_constant(shape, trt.Weights(slopes)).get_output(0)
    layer = ctx.network.add_parametric_relu(tensor_trt, slope_trt)
    ctx.method_return._trt = layer.get_output(0)


class LocalConverter(NamedTuple):
    method: str
    function: object
    reason: str


def select_converters(torch2trt_version, model=None):
    """The local converters to register for this torch2trt and model, with the reason each.

    ``model``: only converters for layer types it contains (None: all). Every released
    torch2trt so far needs both; the version is parsed so that a fixed release can be exempted
    here in one place.
    """
    version = parse_version(torch2trt_version)
    has = (lambda cls: True) if model is None else (
        lambda cls: any(isinstance(m, cls) for m in model.modules()))
    selected = []
    if has(nn.ConvTranspose2d):
        why = ("ignores output_padding" if version and version < (0, 6) else
               "takes out_channels from the wrong weight axis when in != out")
        selected.append(LocalConverter(CONV_TRANSPOSE, convert_conv_transpose2d,
                                       "torch2trt %s %s" % (torch2trt_version, why)))
    if has(nn.PReLU):
        selected.append(LocalConverter(PRELU, convert_prelu,
                                       "slope shape must follow the network's batch mode"))
    return selected


def register_converters(torch2trt_module, converters):
    """Registers ``converters`` with torch2trt (later registrations replace built-in ones)."""
    for converter in converters:
        torch2trt_module.tensorrt_converter(converter.method)(
            lambda ctx, _fn=converter.function: _fn(ctx))
    return [c.method for c in converters]
