"""One camera of the segmentation node: its topic names, counters and outgoing messages.

Topic layout. The single camera (``cameras`` empty) keeps the node's historic names: it reads
``image`` (or ``image/compressed``) and ``camera_info`` and publishes ``~/label`` ... With
``cameras: [front, rear]`` camera ``front`` reads ``front/image`` and ``front/camera_info`` and
publishes ``front/<node name>/label`` ... (``/front/espnet_segmentation/label`` for the node
in the root namespace): exactly the topics a single-camera node launched with
``namespace:=front`` has, so one node replaces N launches without renaming any consumer.
"""
from .node_stats import NodeStats


def _join(*parts):
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


class Camera:
    """One camera's names, counters and per-frame state (index ``index`` in the node)."""

    def __init__(self, index, name, node_namespace, node_name):
        self.index, self.name = index, name
        self.image_topic = _join(name, "image")
        self.camera_info_topic = _join(name, "camera_info")
        # ROS resolves "~/x" and "front/espnet_segmentation/x" against the node namespace.
        self.output_prefix = "~/" if not name else _join(name, node_name) + "/"
        self.output_base = "/" + _join(node_namespace, name, node_name)  # for logs, tests
        self.stats = NodeStats()
        self.camera_info = None  # the last valid one
        self.camera_info_out = None  # (info, width, height, message for the outputs)
        self.publishers = {}  # output name -> publisher (created on configure)
        self.writers = {}  # (output name, encoding) -> messages.encode.ImageWriter
        self.subscriptions = []

    def output(self, name):
        return self.output_prefix + name

    def writer(self, output, encoding, make):
        """The outgoing message of ``output`` in ``encoding`` (made by ``make(encoding)``)."""
        key = (output, encoding)
        if key not in self.writers:
            self.writers[key] = make(encoding)
        return self.writers[key]

    def __repr__(self):
        return "Camera(%r)" % (self.name or "image")
