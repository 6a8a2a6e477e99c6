"""The resize conventions shared by labels, masks and confidences."""
import cv2

# Centre-aligned nearest neighbour where OpenCV has it (4.5+); Jetson images may carry older.
NEAREST = getattr(cv2, "INTER_NEAREST_EXACT", cv2.INTER_NEAREST)


def resize_to(array, size, interpolation=NEAREST, out=None):
    """``array`` at ``size`` (width, height), into ``out`` when given; as is when it fits."""
    if (array.shape[1], array.shape[0]) == tuple(size):
        if out is None:
            return array
        out[...] = array
        return out
    if out is None:
        return cv2.resize(array, tuple(size), interpolation=interpolation)
    cv2.resize(array, tuple(size), dst=out, interpolation=interpolation)
    return out
