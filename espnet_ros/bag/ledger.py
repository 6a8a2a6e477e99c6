"""Replay bookkeeping: header stamps read from CDR, the ground truth, frames sent and answered."""
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from ..messages.cdr import cdr_stamp
from .io import label_array

PRIMING_STAMP = 0  # the node treats a zero stamp as unstamped; bag frames never use it


class GroundTruth:
    """The bag's label images by header stamp, kept PNG-compressed (a long drive fits in memory)."""

    def __init__(self):
        self._png = {}

    @classmethod
    def load(cls, bag, topic):
        truth = cls()
        for _, msgtype, _, raw in bag.messages([topic]):
            msg = bag.deserialize(raw, msgtype, topic)
            ok, png = cv2.imencode(".png", np.ascontiguousarray(label_array(msg, topic)))
            truth._png[cdr_stamp(raw)] = png.tobytes()
        return truth

    def __len__(self):
        return len(self._png)

    def get(self, stamp):
        png = self._png.get(stamp)
        return None if png is None else cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)


@dataclass
class Sent:
    stamp: int           # header stamp as published (the output's stamp)
    index: int           # order of publishing
    bag_stamp: int       # header stamp in the bag (ground-truth key)
    sent_ns: int         # monotonic ns at publish
    latency_ms: Optional[float] = None


class Ledger:
    """Frames sent, by published stamp, and which of them came back."""

    def __init__(self):
        self.sent = {}  # published stamp -> Sent
        self.first_sent_ns = None
        self.last_sent_ns = None
        self.last_output_ns = None
        self.unexpected = 0

    def add(self, stamp, bag_stamp, now_ns):
        self.sent[stamp] = Sent(stamp, len(self.sent), bag_stamp, now_ns)
        self.first_sent_ns = self.first_sent_ns or now_ns
        self.last_sent_ns = now_ns

    def resolve(self, stamp, now_ns):
        """The Sent entry for an arriving output, once; None for unknown or repeated stamps."""
        entry = self.sent.get(stamp)
        if entry is None or entry.latency_ms is not None:
            self.unexpected += entry is None and stamp != PRIMING_STAMP
            return None
        entry.latency_ms = (now_ns - entry.sent_ns) * 1e-6
        self.last_output_ns = now_ns
        return entry

    def done(self, stamp):
        entry = self.sent.get(stamp)
        return entry is not None and entry.latency_ms is not None

    def last(self):
        return max(self.sent.values(), key=lambda s: s.index, default=None)

    @property
    def outputs(self):
        return sum(1 for s in self.sent.values() if s.latency_ms is not None)

    def timeline(self):
        start = self.first_sent_ns or 0
        return [((s.sent_ns - start) * 1e-9, s.latency_ms)
                for s in sorted(self.sent.values(), key=lambda s: s.index)]
