"""Labels -> colour mask and overlay, vectorized, writing into buffers the caller may own."""
import cv2
import numpy as np

from .resize import NEAREST


def palette_lut(palette, order="rgb"):
    """A 256-entry colour table; ids without a colour (e.g. an ignore label 255) map to black."""
    lut = np.zeros((256, 3), np.uint8)
    colors = np.asarray(palette, np.uint8).reshape(-1, 3)
    lut[:len(colors)] = colors if order == "rgb" else colors[:, ::-1]
    return lut


def map_ids(labels, table, fill=0):
    """Maps label ids through ``table`` (e.g. Cityscapes train id -> label id)."""
    lut = np.full(256, fill, np.uint8)
    lut[:len(table)] = table
    return lut[labels]


class Renderer:
    """Colour masks and alpha overlays for one palette.

    ``visible``: class ids to draw; others stay black in the mask and untouched in the overlay.
    Every method takes an optional ``out`` array to write into (e.g. an outgoing message's
    pixel buffer); without one, a buffer kept by the renderer is reused between calls.
    """

    def __init__(self, palette, alpha=0.5, visible=None):
        self.palette = tuple(tuple(int(v) for v in c) for c in palette)
        self.alpha = float(alpha)
        self.set_visible(visible)
        self._buffers = {}

    def set_visible(self, visible):
        self.visible = None if visible is None else sorted(set(int(v) for v in visible))
        hidden = np.ones(256, bool)
        if self.visible is None:
            hidden[:] = False
        else:
            hidden[[v for v in self.visible if 0 <= v < 256]] = False
        self._hidden = hidden
        self._luts = {}

    def _lut(self, order):
        if order not in self._luts:
            lut = palette_lut(self.palette, order)
            lut[self._hidden] = 0
            self._luts[order] = lut
        return self._luts[order]

    def _buffer(self, key, shape):
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape:
            buf = self._buffers[key] = np.empty(shape, np.uint8)
        return buf

    def release(self):
        """Drops the reusable buffers (they are sized to the last frame)."""
        self._buffers.clear()

    def color_mask(self, labels, order="rgb", out=None, size=None):
        """HxW ids -> colours in ``order``, at ``size`` (width, height; default: the labels').

        Painting at the labels' resolution and enlarging with nearest neighbour gives exactly
        the mask of the enlarged labels, for a fraction of the work.
        """
        size = tuple(size) if size else (labels.shape[1], labels.shape[0])
        shape = (size[1], size[0], 3)
        if out is None:
            out = self._buffer(("mask", order), shape)
        if labels.shape == shape[:2]:
            np.take(self._lut(order), labels, axis=0, out=out)
        else:
            small = self._buffer(("small", order), labels.shape + (3,))
            np.take(self._lut(order), labels, axis=0, out=small)
            cv2.resize(small, size, dst=out, interpolation=NEAREST)
        return out

    def overlay(self, image, labels, order="bgr", alpha=None, out=None, mask=None):
        """Blends the colour mask into ``image`` (HxWx3 uint8, channels in ``order``).

        ``labels`` are at the image's size; ``mask``, when given, is their colour mask in
        ``order`` (saves painting it twice).
        """
        if image.shape[:2] != labels.shape:
            raise ValueError("image %s and labels %s differ in size"
                             % (image.shape[:2], labels.shape))
        alpha = self.alpha if alpha is None else float(alpha)
        if mask is None:
            mask = self.color_mask(labels, order, out=self._buffer(("ovmask", order), image.shape))
        if out is None:
            out = self._buffer(("overlay", order), image.shape)
        cv2.addWeighted(image, 1.0 - alpha, mask, alpha, 0.0, dst=out)
        if self.visible is not None:
            np.copyto(out, image, where=self._hidden[labels][:, :, None])
        return out
