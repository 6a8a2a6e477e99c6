"""Everything the node counts and times, in one object its diagnostics read. ROS-free.

Stages of a frame, in order (milliseconds, rolling percentiles):

- ``arrival``: from the input's header stamp to the subscription callback (transport and
  executor; includes the camera's own delay when it stamps at exposure);
- ``wait``: from the subscription callback storing the frame to the worker taking it;
- ``deserialize``: the serialized message to a message object (done by the worker);
- ``decode``: the message to pixels (``messages.decode.decode``);
- ``preprocess``, ``inference``: ``Pipeline.infer`` on the model thread;
- ``handoff``: the model thread waiting for the publish thread to take the frame;
- ``postprocess``, ``color``, ``overlay``, ``confidence``: ``Pipeline.render`` on the publish
  thread (see ``inference.pipeline.FrameTiming``);
- ``publish``: building and publishing every output message.
"""
import threading

from ..messages.diagnostics import FrameCounters, RollingPercentiles

STAGES = ("arrival", "wait", "deserialize", "decode", "preprocess", "inference", "handoff",
          "postprocess", "color", "overlay", "confidence", "publish")


class NodeStats:
    """Frame counters, per-stage times and latency (output rate and stamp delay: the
    diagnostics' own tasks, see node_diagnostics)."""

    def __init__(self, window=300):
        self.counters = FrameCounters()
        self.stages = {name: RollingPercentiles(window) for name in STAGES}
        self.latency_ms = RollingPercentiles(window)
        self._lock = threading.Lock()
        self._camera_info_rejected = 0
        self._camera_info_problem = ""
        self._lost = 0
        self.same_name_nodes = 1

    def frames_lost(self, count):
        """Frames the transport reported lost before they reached the node."""
        with self._lock:
            self._lost += count
            return self._lost

    def camera_info_rejected(self, reason):
        with self._lock:
            self._camera_info_rejected += 1
            self._camera_info_problem = reason

    def input_values(self):
        """Diagnostics values about the other inputs (camera_info)."""
        with self._lock:
            values = [("Frames lost before the node", "%d" % self._lost),
                      ("Camera infos rejected", "%d" % self._camera_info_rejected),
                      ("Nodes with this name", "%d" % self.same_name_nodes)]
            if self._camera_info_problem:
                values.append(("Last camera_info problem", self._camera_info_problem))
        return values

    def frame_served(self, stage_ms, latency_ms):
        """One frame published: ``stage_ms`` maps stage names to milliseconds (None: none)."""
        self.counters.frame_processed()
        for name, value in stage_ms.items():
            if value is not None:
                self.stages[name].add(value)
        self.latency_ms.add(latency_ms)

    def stage_p50(self):
        """{stage: p50 ms or None}, in stage order."""
        return {name: self.stages[name].percentile(50) for name in STAGES}
