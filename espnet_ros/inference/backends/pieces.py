"""Running a model as separately converted pieces, for what converters cannot take whole.

ENet's max-pooling indices and max-unpooling exist neither in TensorRT nor in the ONNX exporter,
so ``PiecewiseENet`` keeps them (and the small glue around them) in PyTorch and hands every
other stage to ``convert(name, module, inputs)``, which returns a callable used from then on.
Pieces are converted lazily on the first call, so each sees its real input shape.
"""
from collections import defaultdict
from typing import Callable, Optional

import torch
from torch import nn
from torch.nn import functional as F


class Piecewise(nn.Module):
    """Base: ``run(name, inputs, make_module)`` converts a piece once, then calls it."""

    def __init__(self, model, convert):
        super().__init__()
        self.model = model
        self._convert = convert
        self.pieces = {}
        self.train(model.training)

    def run(self, name, inputs, make_module):
        piece = self.pieces.get(name)
        if piece is None:
            piece = self.pieces[name] = self._convert(name, make_module(), tuple(inputs))
        return piece(*inputs)


class _UpPieces(nn.Module):
    """The convertible parts of an ENet up-sampling bottleneck: both branches before unpooling
    (holding only those layers, so the piece has no unpooling module at all)."""

    def __init__(self, block, size):
        super().__init__()
        self.main, self.reduce, self.up, self.expand = block.main, block.reduce, block.up, \
            block.expand
        self.size = (int(size[0]), int(size[1]))

    def forward(self, x):
        ext = self.up(self.reduce(x))[:, :, :self.size[0], :self.size[1]]
        return self.main(x), self.expand(ext)


class _Crop(nn.Module):
    def __init__(self, module, size):
        super().__init__()
        self.module = module
        self.size = (int(size[0]), int(size[1]))

    def forward(self, x):
        return self.module(x)[:, :, :self.size[0], :self.size[1]]


class PiecewiseENet(Piecewise):
    """ENet.forward with pooling indices and unpooling in PyTorch, the rest in pieces."""

    def __init__(self, enet, convert):
        super().__init__(enet, convert)
        # Wrappers take the model's mode: a converter that restores a wrapper's mode after
        # tracing (the ONNX exporter does) would otherwise switch the wrapped stages to train.
        self._stage23 = nn.Sequential(enet.stage2, enet.stage3).train(enet.training)

    def _down(self, name, block, x):
        main, indices = block.pool(x)
        padded = F.pad(x, (0, x.shape[3] % 2, 0, x.shape[2] % 2))
        ext = self.run(name, [padded], lambda: block.branch)
        main = F.pad(main, (0, 0, 0, 0, 0, block.extra))
        return block.act(main + ext), indices, (int(x.shape[2]), int(x.shape[3]))

    def _up(self, name, block, x, indices, size):
        main, ext = self.run(name, [x], lambda: _UpPieces(block, size).train(block.training))
        main = block.unpool(main, indices, output_size=size)
        return block.act(main + ext)

    def forward(self, x):
        enet = self.model
        size = (int(x.shape[2]), int(x.shape[3]))
        y = self.run("initial", [x], lambda: enet.initial)
        y, indices1, size1 = self._down("down1", enet.down1, y)
        y = self.run("stage1", [y], lambda: enet.stage1)
        y, indices2, size2 = self._down("down2", enet.down2, y)
        y = self.run("stage2_3", [y], lambda: self._stage23)
        y = self._up("up4", enet.up4, y, indices2, size2)
        y = self.run("stage4", [y], lambda: enet.stage4)
        y = self._up("up5", enet.up5, y, indices1, size1)
        y = self.run("stage5", [y], lambda: enet.stage5)
        return self.run("fullconv", [y],
                        lambda: _Crop(enet.fullconv, size).train(enet.training))


# Modules no converter here can take: max-unpooling and max-pooling that returns indices.
def unconvertible(module):
    if isinstance(module, nn.MaxUnpool2d):
        return True
    return isinstance(module, nn.MaxPool2d) and bool(module.return_indices)


def needs_pieces(model):
    return any(unconvertible(m) for m in model.modules())


def piecewise(model, convert) -> Optional[Piecewise]:
    """The piecewise form of ``model``, or None when it converts whole."""
    if not needs_pieces(model):
        return None
    if type(model).__name__ == "ENet":
        return PiecewiseENet(model, convert)
    raise ValueError("%s contains max-unpooling or pooling indices and has no piecewise form"
                     % type(model).__name__)


def identity_convert(name, module, inputs):
    """A ``convert`` that keeps every piece in PyTorch (tests, ONNX export of the pieces)."""
    return module


def convert_model(model, sample, convert: Callable, check=None):
    """Converts ``model`` whole or piecewise for one input shape; returns the forward callable.

    ``check(name, module, piece, inputs)`` runs after each conversion (e.g. validation).
    """
    def convert_checked(name, module, inputs):
        piece = convert(name, module, inputs)
        if check is not None:
            check(name, module, piece, inputs)
        return piece

    wrapper = piecewise(model, convert_checked)
    if wrapper is None:
        return convert_checked("model", model, (sample,))
    with torch.no_grad():
        wrapper(sample)   # converts every piece now, with the real shapes
    return wrapper


def record_piece_inputs(model, batches):
    """{piece name: [input tuples]} seen when running ``batches`` through the eager pieces."""
    recorded = defaultdict(list)

    def recording(name, module, inputs):
        def run(*args):
            recorded[name].append(tuple(a.detach() for a in args))
            return module(*args)
        return run

    wrapper = piecewise(model, recording)
    with torch.no_grad():
        for batch in batches:
            if wrapper is None:
                recorded["model"].append((batch,))
            else:
                wrapper(batch)
    return dict(recorded)
