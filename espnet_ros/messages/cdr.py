"""Peeks into serialized (CDR) messages: the header stamp and an Image's size, read and
rewritten without deserializing megabytes of pixels."""
import struct

__all__ = ["cdr_stamp", "cdr_image_size", "cdr_restamp"]


def cdr_stamp(raw):
    """Header stamp (ns) of a CDR message whose first field is std_msgs/Header (Image, CameraInfo...).

    The 4-byte encapsulation header gives the byte order; stamp.sec (int32) and stamp.nanosec
    (uint32) follow it. Reading them here avoids deserializing megabytes of pixels.
    """
    order = "<" if raw[1] & 1 else ">"
    sec, nanosec = struct.unpack_from(order + "iI", raw, 4)
    return sec * 10 ** 9 + nanosec


def cdr_image_size(raw):
    """(width, height) of a serialized sensor_msgs/Image, read from its fixed fields, or None.

    Lets the node refuse a huge frame before deserializing (copying) it.
    """
    try:
        order = "<" if raw[1] & 1 else ">"
        (length,) = struct.unpack_from(order + "I", raw, 12)  # header.frame_id, NUL included
        offset = 16 + length
        offset += -(offset - 4) % 4  # CDR aligns from the end of the encapsulation header
        height, width = struct.unpack_from(order + "II", raw, offset)
    except (struct.error, IndexError):
        return None
    return width, height


def cdr_restamp(raw, stamp):
    """A copy of the serialized message ``raw`` with its header stamp set to ``stamp`` ns."""
    order = "<" if raw[1] & 1 else ">"
    out = bytearray(raw)
    struct.pack_into(order + "iI", out, 4, stamp // 10 ** 9, stamp % 10 ** 9)
    return bytes(out)
