"""Image -> network input, following each checkpoint's normalization convention.

The original ESPNet code reads BGR, computes (x - mean) / std in float, resizes bilinearly and
divides by 255 once more. Bilinear weights sum to one, so resizing first and normalizing after
gives the same tensor while touching fewer pixels; the resize stays in float as the original's.
"""
import cv2
import numpy as np
import torch


class Preprocessor:
    """Turns uint8 HxWx3 images into a normalized NCHW float tensor of the model's input size.

    ``size`` is (width, height); None keeps each image's own size (all must then match).
    The output tensor is reused between calls of the same batch shape: copy it if you keep it.
    """

    def __init__(self, normalization, size=None, device="cpu", dtype=torch.float32):
        self.normalization = normalization
        self.size = tuple(size) if size else None
        self.device = torch.device(device)
        self.dtype = dtype
        scale = np.asarray(normalization.std, np.float64) / normalization.scale
        self._mul = torch.tensor(1.0 / scale, dtype=torch.float32).view(1, 3, 1, 1)
        self._add = torch.tensor(-np.asarray(normalization.mean) / scale,
                                 dtype=torch.float32).view(1, 3, 1, 1)
        self._host = None
        self._out = None
        self._scratch = {}  # reusable float buffers, keyed by shape

    def output_size(self, image):
        return self.size or (image.shape[1], image.shape[0])

    def __call__(self, images, order="bgr"):
        """``images``: a list of HxWx3 uint8 arrays in ``order`` ("bgr" or "rgb"), or a list
        of orders, one per image (a batch of several cameras)."""
        orders = [order] * len(images) if isinstance(order, str) else list(order)
        for each in orders:
            if each not in ("bgr", "rgb"):
                raise ValueError("order must be 'bgr' or 'rgb', got %r" % each)
        width, height = self.output_size(images[0])
        host = self._buffer(len(images), height, width)
        for i, (image, each) in enumerate(zip(images, orders)):
            _check_image(image)
            resized = self._resize_float(image, width, height)
            channels = (2, 1, 0) if each != self.normalization.order else (0, 1, 2)
            for c, src in enumerate(channels):
                host[i, c].copy_(torch.from_numpy(resized[:, :, src]))
        host.mul_(self._mul).add_(self._add)
        if self.device.type == "cpu" and self.dtype == torch.float32:
            return host
        if self._out is None or self._out.shape != host.shape:
            self._out = torch.empty(host.shape, dtype=self.dtype, device=self.device)
        self._out.copy_(host, non_blocking=True)
        return self._out

    def _scratch_buffer(self, shape):
        if shape not in self._scratch:
            if len(self._scratch) >= 2:  # one frame's input and output: a large frame's go
                self._scratch.clear()
            self._scratch[shape] = np.empty(shape, np.float32)
        return self._scratch[shape]

    def _resize_float(self, image, width, height):
        data = self._scratch_buffer(image.shape)
        np.copyto(data, image, casting="unsafe")
        if image.shape[1] == width and image.shape[0] == height:
            return data
        out = self._scratch_buffer((height, width, 3))
        cv2.resize(data, (width, height), dst=out, interpolation=cv2.INTER_LINEAR)
        return out

    def _buffer(self, n, height, width):
        shape = (n, 3, height, width)
        if self._host is None or tuple(self._host.shape) != shape:
            pin = self.device.type == "cuda"
            self._host = torch.empty(shape, dtype=torch.float32, pin_memory=pin)
        return self._host


def _check_image(image):
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError("expected a non-empty HxWx3 uint8 image, got %s"
                         % (getattr(image, "shape", type(image)),))


