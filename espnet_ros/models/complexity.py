"""Parameter count, multiply-accumulates and serialized size of a model."""
import io

import torch
from torch import nn


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, width: int, height: int) -> int:
    """Multiply-accumulates of convolutions and transposed convolutions for one frame."""
    total = [0]

    def conv_hook(module, inputs, output):
        kernel = module.kernel_size[0] * module.kernel_size[1]
        per_out = module.in_channels // module.groups * kernel
        total[0] += output.numel() * per_out

    def deconv_hook(module, inputs, output):
        kernel = module.kernel_size[0] * module.kernel_size[1]
        total[0] += inputs[0].numel() * module.out_channels // module.groups * kernel

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.ConvTranspose2d):
            handles.append(m.register_forward_hook(deconv_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, height, width))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total[0]


def serialized_megabytes(model: nn.Module, dtype=None) -> float:
    """Size of the state dict as torch.save writes it, in MB (10^6 bytes).

    ``dtype`` (e.g. torch.float16) casts its floating tensors first: the half-precision file.
    """
    state = model.state_dict()
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.tell() / 1e6


def parameter_megabytes(model: nn.Module, bytes_per_value: int = 4) -> float:
    """The parameters alone at ``bytes_per_value`` (4: fp32, 2: fp16), in MB (10^6 bytes)."""
    return count_parameters(model) * bytes_per_value / 1e6
