"""Camera intrinsics for resized outputs, as image_proc's resize node scales them."""
import copy


def scale_camera_info(info, width, height):
    """A copy of ``info`` (sensor_msgs/CameraInfo-like) for an image resized to width x height.

    fx, cx (K[0], K[2]) and P[0], P[2], P[3] scale with the width ratio; fy, cy (K[4], K[5])
    and P[5], P[6] with the height ratio; D and R are unchanged; the ROI scales too.
    """
    if not info.width or not info.height:
        raise ValueError("camera_info has no image size (width=%s height=%s)"
                         % (info.width, info.height))
    sx = float(width) / info.width
    sy = float(height) / info.height
    out = copy.deepcopy(info)
    out.width, out.height = int(width), int(height)
    k = [float(v) for v in info.k]
    k[0] *= sx
    k[2] *= sx
    k[4] *= sy
    k[5] *= sy
    out.k = k
    p = [float(v) for v in info.p]
    p[0] *= sx
    p[2] *= sx
    p[3] *= sx
    p[5] *= sy
    p[6] *= sy
    out.p = p
    roi = out.roi
    roi.x_offset = int(roi.x_offset * sx)
    roi.y_offset = int(roi.y_offset * sy)
    roi.width = int(roi.width * sx)
    roi.height = int(roi.height * sy)
    return out
