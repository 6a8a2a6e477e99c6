"""camera_info for the node's outputs: validated on arrival, binning and ROI as REP 104 says.

A sensor_msgs/CameraInfo describes the full-resolution sensor the camera was calibrated at;
the image it goes with is the ROI (in full-resolution pixels) divided by the binning. The
outputs are that image resized to the output size, so their camera_info is "flattened": K and
P of the image actually received (ROI offset removed, divided by the binning), scaled by
output size / image size as image_proc's resize scales them, with binning 0 and an empty ROI,
so that no consumer applies the binning or the offset a second time. D, R and the distortion
model describe normalized coordinates and stay. test_node_parts.py checks the result against
image_geometry.PinholeCameraModel: a 3D point projects to the corresponding output pixel.

An uncalibrated camera (sensor_msgs/CameraInfo: K, R, P and D left zero, as usb_cam or
v4l2_camera publish without a calibration file) still gets its camera_info republished for the
output size: consumers take the size and frame from it. A zero matrix stays zero; only an info
that contradicts itself is rejected.
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


def _zero(values):
    return not any(float(v) for v in values)


def _has_roi(info):
    roi = info.roi
    return bool(roi.x_offset or roi.y_offset or roi.width or roi.height)


def problem(info):
    """Why ``info`` contradicts itself (one line), or None when it can describe an image."""
    k, p = [float(v) for v in info.k], [float(v) for v in info.p]
    if len(k) != 9 or not all(math.isfinite(v) for v in k):
        return "K is not 9 finite numbers"
    if len(p) != 12 or not all(math.isfinite(v) for v in p):
        return "P is not 12 finite numbers"
    if not all(math.isfinite(float(v)) for v in info.d):
        return "D holds a non-finite coefficient"
    if not all(math.isfinite(float(v)) for v in info.r):
        return "R holds a non-finite coefficient"
    if not _zero(k) and (k[0] <= 0 or k[4] <= 0):
        return "K has focal lengths fx=%g fy=%g (must be positive when K is set)" % (k[0], k[4])
    if not info.width or not info.height:
        # Uncalibrated and sizeless says nothing wrong: the image gives the size. A size of
        # 0 with the other one set, or with K, P or a ROI that need one, contradicts itself.
        if info.width or info.height or not _zero(k) or not _zero(p) or _has_roi(info):
            return "no image size (width=%s height=%s) for the K, P or ROI it carries" % (
                info.width, info.height)
        return None
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
    """A copy of ``info`` (a valid one) for its image resized to ``width`` x ``height``.

    A K or P that is all zero (uncalibrated) stays all zero."""
    out = copy.deepcopy(info)
    out.width, out.height = int(width), int(height)
    if not _zero(info.k) or not _zero(info.p):
        x, y, _, _ = _roi(info)
        bx, by = _binning(info)
        image_w, image_h = image_size(info)
        sx, sy = float(width) / image_w, float(height) / image_h
        if not _zero(info.k):
            k = [float(v) for v in info.k]
            k[0], k[2] = k[0] / bx * sx, (k[2] - x) / bx * sx
            k[4], k[5] = k[4] / by * sy, (k[5] - y) / by * sy
            out.k = k
        if not _zero(info.p):
            p = [float(v) for v in info.p]
            p[0], p[2], p[3] = p[0] / bx * sx, (p[2] - x) / bx * sx, p[3] / bx * sx
            p[5], p[6], p[7] = p[5] / by * sy, (p[6] - y) / by * sy, p[7] / by * sy
            out.p = p
    out.binning_x = out.binning_y = 0
    roi = out.roi
    roi.x_offset = roi.y_offset = roi.width = roi.height = 0
    roi.do_rectify = info.roi.do_rectify
    return out
