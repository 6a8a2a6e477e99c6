"""The segment_node a replay drives: started in its own process, or a running one to attach to."""
import signal
import subprocess
from pathlib import Path

from .io import COMPRESSED_TYPE, BagError, typestore


def diagnostic_counters(status):
    values = {kv.key: kv.value for kv in status.values}
    try:
        return {key: int(values["Frames " + key]) for key in ("received", "processed", "dropped", "rejected")}
    except (KeyError, ValueError):
        return None


class NodeUnderTest:
    """segment_node in a subprocess (or a running node, when attaching)."""

    def __init__(self, options, image_type, image_topic, info_topic, log_path):
        self.fqn = options.attach.rstrip("/") if options.attach else \
            options.namespace.rstrip("/") + "/espnet_segmentation"
        if not self.fqn.startswith("/"):
            self.fqn = "/" + self.fqn
        self.proc = None
        self.options, self.image_type, self.image_topic, self.info_topic = \
            options, image_type, image_topic, info_topic
        self.log_path = Path(log_path)

    def start(self):
        options, image_type = self.options, self.image_type
        if options.attach:
            return
        from ..ros.demo import node_command
        from ..ros.env import localhost_env

        params = {"model": options.model, "device": options.device, "warmup_frames": 2,
                  "min_fps": 0.0, "output_depth": 10, "use_sim_time": str(options.use_sim_time).lower(),
                  "input_transport": "compressed" if image_type == COMPRESSED_TYPE else "raw"}
        if options.weights:
            params["weights"] = options.weights
        if options.size:
            params["input_width"], params["input_height"] = options.size
        params.update(options.node_params)
        remaps = [("image/compressed" if image_type == COMPRESSED_TYPE else "image", self.image_topic)]
        if self.info_topic:
            remaps.append(("camera_info", self.info_topic))
        env = localhost_env()
        env["PYTHONUNBUFFERED"] = "1"
        self._log = open(str(self.log_path), "w")
        # own session: a Ctrl-C in the terminal stops the replay, which then stops the node itself
        self.proc = subprocess.Popen(node_command(options.namespace, params, remaps), env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def check_alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise BagError("segment_node exited with code %d: %s (log: %s)"
                           % (self.proc.returncode, self.last_error(), self.log_path))

    def last_error(self):
        try:
            lines = [line for line in self.log_path.read_text().splitlines() if line.strip()]
        except OSError:
            return "no log"
        errors = [line for line in lines if "error" in line.lower()]
        return (errors or lines or ["no output"])[-1].strip()[:300]

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def segmentation_info_msgdef():
    """(msgdef, rihs01) of espnet_ros/msg/SegmentationInfo for the output bag's schema."""
    from rosbags.typesys import get_types_from_msg

    name = "espnet_ros/msg/SegmentationInfo"
    store = typestore()
    if name not in store.types:
        store.register(get_types_from_msg(_segmentation_info_text(), name))
    return store.generate_msgdef(name, ros_version=2)[0], store.hash_rihs01(name)


def _segmentation_info_text():
    candidates = [Path(__file__).resolve().parents[2] / "msg" / "SegmentationInfo.msg"]
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory("espnet_ros")) / "msg" / "SegmentationInfo.msg")
    except Exception:  # no ament index (pip install): the source tree's copy or nothing
        pass
    for path in candidates:
        if path.is_file():
            return path.read_text()
    raise BagError("msg/SegmentationInfo.msg not found (looked in %s)" % ", ".join(map(str, candidates)))
