"""Newest-frame mailboxes: the subscription callbacks never wait, the model thread takes the
newest frame of every camera that has one.

One slot per camera, one lock and one condition for all of them, so the model thread sleeps
until any camera has a frame. ``take_batch`` serves the cameras that waited longest since they
were last served first (round robin when every camera has frames), so with ``limit`` below the
number of cameras a fast camera cannot starve a slow one.
"""
import threading
from typing import Any, NamedTuple, Optional, Sequence


class Frame(NamedTuple):
    msg: Any
    received: float  # monotonic seconds when the callback saw it
    arrival_ms: Optional[float] = None  # input stamp to the callback, when stamped
    camera: int = 0  # index of the camera it came from


class LatestFrames:
    """Holds at most one frame per camera; a new frame replaces (and counts) an unprocessed one.

    ``on_drop(camera)`` is called for each replaced frame.
    """

    def __init__(self, cameras=1, on_drop=None):
        self._cond = threading.Condition()
        self._frames = [None] * int(cameras)  # type: List[Optional[Frame]]
        self._served = list(range(-int(cameras), 0))  # serve order: the lowest first
        self._turn = 0
        self._closed = False
        self._on_drop = on_drop

    def put(self, frame: Frame) -> bool:
        """Stores ``frame`` in its camera's slot; True when it replaced a never-processed frame."""
        with self._cond:
            replaced = self._frames[frame.camera] is not None
            self._frames[frame.camera] = frame
            self._cond.notify()
        if replaced and self._on_drop is not None:
            self._on_drop(frame.camera)
        return replaced

    def take_batch(self, limit=0, timeout: Optional[float] = None) -> Sequence[Frame]:
        """Waits for any frame, then removes and returns up to ``limit`` (0: all) of them, the
        cameras served longest ago first; empty on timeout or after close()."""
        with self._cond:
            if not any(self._frames) and not self._closed:
                self._cond.wait(timeout)
            ready = sorted((i for i, f in enumerate(self._frames) if f is not None),
                           key=self._served.__getitem__)
            if limit:
                ready = ready[:limit]
            batch = []
            for i in ready:
                batch.append(self._frames[i])
                self._frames[i] = None
                self._served[i] = self._turn
                self._turn += 1
            return batch

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self):
        return self._closed


class LatestFrameSlot(LatestFrames):
    """One camera's mailbox: ``take`` returns its newest frame (or None)."""

    def __init__(self, on_drop=None):
        super().__init__(1, None if on_drop is None else (lambda camera: on_drop()))

    def take(self, timeout: Optional[float] = None) -> Optional[Frame]:
        batch = self.take_batch(1, timeout)
        return batch[0] if batch else None
