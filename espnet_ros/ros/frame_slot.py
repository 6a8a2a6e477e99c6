"""A one-frame mailbox: the subscription callback never waits, the worker takes the newest."""
import threading
from typing import Any, NamedTuple, Optional


class Frame(NamedTuple):
    msg: Any
    received: float  # monotonic seconds when the callback saw it
    arrival_ms: Optional[float] = None  # input stamp to the callback, when stamped


class LatestFrameSlot:
    """Holds at most one frame; putting a new one replaces (and counts) the unprocessed one."""

    def __init__(self, on_drop=None):
        self._cond = threading.Condition()
        self._frame = None  # type: Optional[Frame]
        self._closed = False
        self._on_drop = on_drop

    def put(self, frame: Frame) -> bool:
        """Stores ``frame``; returns True when it replaced an older, never-processed frame."""
        with self._cond:
            replaced = self._frame is not None
            self._frame = frame
            self._cond.notify()
        if replaced and self._on_drop is not None:
            self._on_drop()
        return replaced

    def take(self, timeout: Optional[float] = None) -> Optional[Frame]:
        """Waits for a frame and removes it; None on timeout or after close()."""
        with self._cond:
            if self._frame is None and not self._closed:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            return frame

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self):
        return self._closed
