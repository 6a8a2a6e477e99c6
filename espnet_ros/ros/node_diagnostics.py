"""The node's /diagnostics, through ROS's diagnostic_updater (or, where it is not installed,
the same API from diagnostics_fallback.py).

Three tasks, named ``"<node's full name>: <task>"`` (with several cameras, the first two once
per camera, ``"<node's full name>: <camera>: <task>"``):

- ``segmentation output``: output rate (FrequencyStatus) and input stamp delay at publishing
  (TimeStampStatus), merged as a CompositeDiagnosticTask;
- ``frame pipeline``: counters, percentiles and per-stage times (``diagnostics.pipeline_status``);
- ``model and power``: what runs and what it draws (``diagnostics.model_status``).

Two deliberate adjustments to the library: status names carry the full node name (the
Updater's ``use_fqn`` would print ``//name`` in the root namespace), and stamps are handed to its
TimeStampStatus in its own clock (it reads a fresh system clock, so under ``use_sim_time`` every
delay would be bag time against wall time).
"""
import time

from ..messages import diagnostics as D
from . import diagnostics_fallback

PERIOD_S = 1.0


def _diagnostic_updater(use_library):
    if use_library:
        try:
            import diagnostic_updater
            return diagnostic_updater
        except ImportError:
            pass
    return diagnostics_fallback


class NodeDiagnostics:
    """Publishes the tasks once a second for ``node``.

    ``pipeline()`` and ``model()`` return the ``TaskStatus`` of those tasks; ``hardware_id()``
    the device that runs. ``pipeline`` may also be a list of ``(camera name, pipeline())``
    pairs: the output and pipeline tasks are then kept per camera (name "": unprefixed).
    ``output_published(stamp_s, camera)`` is called once per published frame.
    ``use_library=False`` takes the fallback even where diagnostic_updater is installed.
    """

    def __init__(self, node, pipeline, model, hardware_id, min_fps, max_fps, max_delay_s,
                 use_library=True):
        self.node = node
        self._cameras = [("", pipeline)] if callable(pipeline) else list(pipeline)
        self._model, self._hardware_id = model, hardware_id
        du = self.library = _diagnostic_updater(use_library)
        self.updater = du.Updater(self.node, period=PERIOD_S)
        self.updater.node_name = self.node.get_fully_qualified_name()
        self.updater.setHardwareID(self._hardware_id())
        self._freq_param = du.FrequencyStatusParam({"min": float(min_fps)}, 0.1, 5)
        self._stamp_param = du.TimeStampStatusParam(-1.0, float(max_delay_s))
        self.set_limits(min_fps, max_fps, max_delay_s)
        self.frequency, self.timestamps = [], []
        for camera, make_pipeline in self._cameras:
            self.frequency.append(du.FrequencyStatus(self._freq_param))
            self.timestamps.append(du.TimeStampStatus(self._stamp_param))
            output = du.CompositeDiagnosticTask(_task(camera, D.TASK_OUTPUT))
            output.addTask(self.frequency[-1])
            output.addTask(self.timestamps[-1])
            self.updater.add(output)
            self.updater.add(_task(camera, D.TASK_PIPELINE),
                             lambda stat, make=make_pipeline: self._run_task(stat, make))
        self.updater.add(D.TASK_MODEL, lambda stat: self._run_task(stat, self._model))

    @property
    def implementation(self):
        return self.library.__name__

    def _run_task(self, stat, make):
        self.updater.setHardwareID(self._hardware_id())  # a reload may change the device
        stat.hardware_id = self._hardware_id()
        return D.fill_status(stat, make())

    def set_limits(self, min_fps, max_fps, max_delay_s):
        bound = self._freq_param.freq_bound
        bound["min"] = float(min_fps)
        if max_fps:
            bound["max"] = float(max_fps)
        else:
            bound.pop("max", None)
        self._stamp_param.max_acceptable = float(max_delay_s)

    def output_published(self, stamp_s, camera=0):
        """One frame's outputs went out; ``stamp_s``: its input stamp (0: unstamped);
        ``camera``: the index of its camera."""
        self.frequency[camera].tick()
        if stamp_s <= 0:
            return
        # TimeStampStatus compares with a fresh system clock: hand it the stamp shifted so
        # that its delay is the node clock's (sim time included).
        now_s = self.node.get_clock().now().nanoseconds * 1e-9
        self.timestamps[camera].tick(float(stamp_s + (time.time() - now_s)))


def _task(camera, task):
    """A task's name for one camera of several ("front: frame pipeline"), or the node's."""
    return "%s: %s" % (camera, task) if camera else task
