"""The segment_node a replay drives: started in its own process, or a running one to attach to."""
from pathlib import Path

from .io import COMPRESSED_TYPE, BagError, typestore


class NodeUnderTest:
    """segment_node in a subprocess (or a running node, when attaching)."""

    def __init__(self, options, image_type, image_topic, info_topic, log_path):
        self.fqn = options.attach.rstrip("/") if options.attach else \
            options.namespace.rstrip("/") + "/espnet_segmentation"
        if not self.fqn.startswith("/"):
            self.fqn = "/" + self.fqn
        self.process = None
        self.options, self.image_type, self.image_topic, self.info_topic = \
            options, image_type, image_topic, info_topic
        self.log_path = Path(log_path)

    def start(self):
        options, image_type = self.options, self.image_type
        if options.attach:
            return
        from ..ros.node_process import NodeProcess

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
        # own session: a Ctrl-C in the terminal stops the replay, which then stops the node itself
        self.process = NodeProcess(options.namespace, params, self.log_path, remaps=remaps,
                                   new_session=True)

    @property
    def proc(self):
        return self.process.proc if self.process is not None else None

    def check_alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise BagError("segment_node exited with code %d: %s (log: %s)"
                           % (self.proc.returncode, self.process.last_error(), self.log_path))

    def stop(self):
        return self.process.stop() if self.process is not None else None


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
