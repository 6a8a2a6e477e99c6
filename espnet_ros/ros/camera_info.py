"""camera_info for the node's outputs: validated on arrival, binning and ROI as REP 104 says.

A sensor_msgs/CameraInfo describes the full-resolution sensor the camera was calibrated at;
the image it goes with is the ROI (in full-resolution pixels) divided by the binning. The
outputs are that image resized to the output size, so their camera_info is "flattened": K and
P of the image actually received (ROI offset removed, divided by the binning), scaled by
output size / image size as image_proc's resize scales them, with binning 0 and an empty ROI,
so that no consumer applies the binning or the offset a second time. D, R and the distortion
model describe normalized coordinates and stay. test_node_parts.py checks the result against
image_geometry.PinholeCameraModel: a 3D point projects to the corresponding output pixel.
"""
import copy
import math


def _roi(info):
    """(x, y, width, height) of the ROI in full-resolution pixels; all zeros = everything."""
    roi = info.roi
    if not (roi.x_offset or roi.y_offset or roi.width or roi.height):
        return 0, 0, int(info.width), int(info.height)
    return int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)


def _binning(info):
    return max(1, int(info.binning_x)), max(1, int(info.binning_y))


def problem(info):
    """Why ``info`` cannot describe an image (one line), or None when it can."""
    if not info.width or not info.height:
        return "no image size (width=%s height=%s)" % (info.width, info.height)
    k = [float(v) for v in info.k]
    if len(k) != 9 or not all(math.isfinite(v) for v in k):
        return "K is not 9 finite numbers"
    if k[0] <= 0 or k[4] <= 0:
        return "K has focal lengths fx=%g fy=%g (must be positive)" % (k[0], k[4])
    p = [float(v) for v in info.p]
    if len(p) != 12 or not all(math.isfinite(v) for v in p):
        return "P is not 12 finite numbers"
    if not all(math.isfinite(float(v)) for v in info.d):
        return "D holds a non-finite coefficient"
    x, y, width, height = _roi(info)
    if width <= 0 or height <= 0 or x + width > info.width or y + height > info.height:
        return ("ROI %dx%d at (%d, %d) is not inside the %dx%d image"
                % (width, height, x, y, info.width, info.height))
    bx, by = _binning(info)
    if width < bx or height < by:
        return "binning %dx%d leaves no pixel of the %dx%d ROI" % (bx, by, width, height)
    return None


def image_size(info):
    """(width, height) of the image that goes with ``info``: its ROI divided by its binning."""
    _, _, width, height = _roi(info)
    bx, by = _binning(info)
    return width // bx, height // by


def for_output(info, width, height):
    """A copy of ``info`` (a valid one) for its image resized to ``width`` x ``height``."""
    x, y, roi_w, roi_h = _roi(info)
    bx, by = _binning(info)
    image_w, image_h = image_size(info)
    sx, sy = float(width) / image_w, float(height) / image_h
    out = copy.deepcopy(info)
    out.width, out.height = int(width), int(height)
    k = [float(v) for v in info.k]
    k[0], k[2] = k[0] / bx * sx, (k[2] - x) / bx * sx
    k[4], k[5] = k[4] / by * sy, (k[5] - y) / by * sy
    out.k = k
    p = [float(v) for v in info.p]
    p[0], p[2], p[3] = p[0] / bx * sx, (p[2] - x) / bx * sx, p[3] / bx * sx
    p[5], p[6], p[7] = p[5] / by * sy, (p[6] - y) / by * sy, p[7] / by * sy
    out.p = p
    out.binning_x = out.binning_y = 0
    roi = out.roi
    roi.x_offset = roi.y_offset = roi.width = roi.height = 0
    roi.do_rectify = info.roi.do_rectify
    return out
