"""Everything the node counts and times, in one object its diagnostics read. ROS-free.

Stages of a frame, in order (milliseconds, rolling percentiles):

- ``arrival``: from the input's header stamp to the subscription callback (transport and
  executor; includes the camera's own delay when it stamps at exposure);
- ``wait``: from the subscription callback storing the frame to the worker taking it;
- ``deserialize``: the serialized message to a message object (done by the worker);
- ``decode``: the message to pixels (``codec.decode``);
- ``preprocess``, ``inference``: ``Pipeline.infer`` on the model thread;
- ``handoff``: the model thread waiting for the publish thread to take the frame;
- ``postprocess``, ``color``, ``overlay``, ``confidence``: ``Pipeline.render`` on the publish
  thread (see ``inference.pipeline.FrameTiming``);
- ``publish``: building and publishing every output message.
"""
from .diagnostics import FrameCounters, FrequencyStatus, RollingPercentiles, TimestampStatus

STAGES = ("arrival", "wait", "deserialize", "decode", "preprocess", "inference", "handoff",
          "postprocess", "color", "overlay", "confidence", "publish")


class NodeStats:
    """Frame counters, per-stage times, latency, output rate and timestamp delay."""

    def __init__(self, min_fps=0.0, max_fps=None, max_delay_s=1.0, window=300):
        self.counters = FrameCounters()
        self.stages = {name: RollingPercentiles(window) for name in STAGES}
        self.latency_ms = RollingPercentiles(window)
        self.frequency = FrequencyStatus(min_fps, max_fps)
        self.timestamps = TimestampStatus(-1.0, max_delay_s)

    def set_limits(self, min_fps, max_fps, max_delay_s):
        self.frequency.min_freq = float(min_fps)
        self.frequency.max_freq = float(max_fps) if max_fps else None
        self.timestamps.max_acceptable = float(max_delay_s)

    def frame_served(self, stage_ms, latency_ms, stamp_s, now_s):
        """One frame published: ``stage_ms`` maps stage names to milliseconds."""
        self.counters.frame_processed()
        for name, value in stage_ms.items():
            if value is not None:
                self.stages[name].add(value)
        self.latency_ms.add(latency_ms)
        self.frequency.tick()
        if stamp_s > 0:
            self.timestamps.tick(stamp_s, now_s)

    def stage_p50(self):
        """{stage: p50 ms or None}, in stage order."""
        return {name: self.stages[name].percentile(50) for name in STAGES}
