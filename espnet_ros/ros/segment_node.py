"""The ROS 2 segmentation node: camera image in; label, colour mask, overlay, info out.

A thin shell around the ROS-free ``inference.Pipeline``. The subscription callback only stores
the newest serialized frame. The frame path, top-down in the section of that name:
``_infer`` (deserialize -> decode -> ``Pipeline.infer``) on the model thread, then
``_render_and_publish`` (``Pipeline.render`` -> publish) on the publish thread, which works on
frame N while the model runs frame N+1. Outputs carry the input's header and are painted
straight into the outgoing messages' buffers.

Run with ``ros2 run espnet_ros segment_node`` or, without a ROS install, ``espnet-ros node`` /
``python -m espnet_ros.ros.node_main`` (entry point: node_main.main, which handles signals).
"""
import queue
import sys
import threading
import time
from typing import NamedTuple

import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message

from ..inference import Buffers, Pipeline
from ..models.registry import register_user_models
from ..power import PowerMonitor, UnavailablePowerMeter, detect_power_source
from . import camera_info, codec
from . import params as P
from .diagnostics import model_status, pipeline_status
from .frame_slot import Frame, LatestFrameSlot
from .interfaces import load_segmentation_info
from .node_diagnostics import NodeDiagnostics
from .node_stats import NodeStats


class _Job(NamedTuple):
    """A frame between the model thread and the publish thread."""
    frame: Frame
    msg: object           # the deserialized input message
    image: object         # codec.Decoded
    wanted: dict          # output name -> has a subscriber and is enabled
    config: dict          # the parameters the frame was taken with
    pipeline: object      # the pipeline that ran it (a reload may swap self.pipeline)
    inferred: object      # Pipeline.infer's result
    stages: dict          # stage name -> ms, filled along the way


RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
IMAGE_OUTPUTS = ("label", "color_mask", "overlay", "confidence")
# A frame in flight may take seconds on a loaded CPU; shutdown must not wait for it.
WORKER_STOP_TIMEOUT_S = 1.0


def _qos(reliability, depth):
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                      reliability=RELIABILITY[reliability])


def _descriptor(spec):
    desc = ParameterDescriptor(description=spec.description, read_only=spec.change == P.STARTUP)
    if spec.choices:
        desc.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.range is not None:
        if isinstance(spec.default, float):
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(spec.range[0]), to_value=float(spec.range[1]), step=0.0)]
        else:
            desc.integer_range = [IntegerRange(
                from_value=int(spec.range[0]), to_value=int(spec.range[1]), step=1)]
    return desc


def torch_num_threads():
    import torch
    return torch.get_num_threads()


def _stamp_ns(header):
    return header.stamp.sec * 10 ** 9 + header.stamp.nanosec


class SegmentNode(Node):
    def __init__(self, **kwargs):
        super().__init__("espnet_segmentation", **kwargs)
        for spec in P.SPECS:
            self.declare_parameter(spec.name, spec.default, _descriptor(spec))
        self.config = {spec.name: self.get_parameter(spec.name).value for spec in P.SPECS}
        for name, value in self.config.items():
            reason = P.validate(name, value)
            if reason:
                raise ValueError(reason)
        try:  # checkpoints trained with espnet-ros train, named in $ESPNET_ROS_MODELS
            register_user_models()
        except (OSError, ValueError) as exc:
            self.get_logger().warning("ESPNET_ROS_MODELS: %s" % exc)
        threads = P.torch_threads(self.config)
        if threads:
            import torch
            torch.set_num_threads(threads)
        self.pipeline = self._build_pipeline(self.config)

        self.stats = NodeStats()
        meter = (UnavailablePowerMeter("disabled by the power_source parameter")
                 if self.config["power_source"] == "none" else detect_power_source())
        self.power = PowerMonitor(meter)
        self.power.start()

        self.info_cls, info_reason = load_segmentation_info()
        if self.info_cls is None:
            self.get_logger().warning("~/info is off: %s" % info_reason)
        self._create_outputs()
        in_qos = _qos(self.config["input_reliability"], self.config["input_depth"])
        self.camera_info = None  # the last valid one
        self._camera_info_out = None  # (info, width, height, message for the outputs)
        if self.config["use_camera_info"]:
            self.create_subscription(self.kit.CameraInfo, "camera_info", self._on_camera_info,
                                     in_qos)
        self.slot = LatestFrameSlot(on_drop=self.stats.counters.frame_dropped)
        compressed = self.config["input_transport"] == "compressed"
        self.input_type = self.kit.CompressedImage if compressed else self.kit.Image
        # raw: the executor thread only copies bytes; the worker deserializes (and times it).
        self.create_subscription(self.input_type, "image/compressed" if compressed else "image",
                                 self._on_image, in_qos, raw=True,
                                 **self._lost_frame_events())
        self.diagnostics = NodeDiagnostics(
            self, self._pipeline_status, self._model_status,
            lambda: "espnet_ros/%s" % self.pipeline.device, self.config["min_fps"],
            self.config["max_fps"], self.config["max_delay_s"])
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(5.0, self._check_unique_name)  # the graph is a local cache: cheap
        self.get_logger().info("diagnostics published with %s" % self.diagnostics.implementation)
        self.handoff = queue.Queue(maxsize=1) if self.config["pipelining"] else None
        self._threads = [threading.Thread(target=self._model_loop, name="espnet_model",
                                          daemon=True)]
        if self.handoff is not None:
            self._threads.append(threading.Thread(target=self._publish_loop,
                                                  name="espnet_publish", daemon=True))
        for thread in self._threads:
            thread.start()
        self._announce_pipeline()

    def _create_outputs(self):
        self.kit = codec.rclpy_kit()
        qos = _qos(self.config["output_reliability"], self.config["output_depth"])
        self.publishers_by_name = {
            name: self.create_publisher(self.kit.Image, "~/" + name, qos) for name in IMAGE_OUTPUTS}
        self.writers = {"label": codec.ImageWriter(self.kit.Image, "mono8"),
                        "color_mask": codec.ImageWriter(self.kit.Image, "rgb8"),
                        "confidence": codec.ImageWriter(self.kit.Image, "32FC1")}
        self.overlay_writers = {}  # one per overlay encoding seen
        self.pub_info = (self.create_publisher(self.info_cls, "~/info", qos)
                         if self.info_cls is not None else None)
        self.pub_camera_info = (self.create_publisher(self.kit.CameraInfo, "~/camera_info", qos)
                                if self.config["use_camera_info"] else None)
        self.pub_label_info = None
        try:  # vision_msgs: a ROS install, or the shared wheels
            from vision_msgs.msg import LabelInfo
        except ImportError as exc:
            self.get_logger().warning("~/label_info is off: vision_msgs is not importable (%s)"
                                      % exc)
        else:
            # Latched: nav2's semantic_segmentation_layer or rviz may subscribe at any time.
            latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                                 reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.pub_label_info = self.create_publisher(LabelInfo, "~/label_info", latched)

    # ---------------------------------------------------------------- startup and parameters
    def _build_pipeline(self, config):
        pipeline = Pipeline.build(**P.pipeline_kwargs(config))
        pipeline.renderer.set_visible(P.parse_class_list(config["visible_classes"],
                                                         pipeline.entry.classes))
        return pipeline

    def _publish_label_info(self):
        """Class id -> name of the model that serves now (void included), latched."""
        if self.pub_label_info is None:
            return
        from vision_msgs.msg import LabelInfo, VisionClass
        msg = LabelInfo()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.class_map = [VisionClass(class_id=i, class_name=name)
                         for i, name in enumerate(self.pipeline.entry.classes)]
        msg.threshold = 0.0  # every pixel gets its most likely class; ~/confidence says how sure
        self.pub_label_info.publish(msg)

    def _announce_pipeline(self):
        """Logs what serves now and republishes ~/label_info (at start and after a reload)."""
        self._publish_label_info()
        p = self.pipeline
        width, height = p.model_size
        self.get_logger().info(
            "serving %s on %s %s (%s, %d torch threads), input %dx%d, expected %.1f FPS "
            "(inference only); power: %s" % (p.entry.name, p.backend, p.precision, p.device,
                                             torch_num_threads(), width, height,
                                             p.expected_fps or 0.0,
                           self.power.meter.name if self.power.meter.available
                           else "unavailable"))

    def _on_set_parameters(self, parameters):
        new = dict(self.config)
        for param in parameters:
            if param.name not in P.BY_NAME:
                continue
            reason = P.validate(param.name, param.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            new[param.name] = param.value
        changed = {n for n in new if new[n] != self.config[n]}
        if not changed:  # e.g. diagnostic_updater's own parameters
            return SetParametersResult(successful=True)
        reload = any(P.BY_NAME[n].change == P.RELOAD for n in changed)
        try:
            if reload:
                self.get_logger().info("rebuilding the pipeline for %s" % ", ".join(sorted(changed)))
                pipeline = self._build_pipeline(new)
            else:
                pipeline = self.pipeline
                if "palette" in changed:
                    pipeline.set_palette(new["palette"])
                if "visible_classes" in changed:
                    pipeline.renderer.set_visible(P.parse_class_list(new["visible_classes"],
                                                                     pipeline.entry.classes))
            pipeline.renderer.alpha = float(new["overlay_alpha"])
        except Exception as exc:  # keep serving with the old pipeline
            return SetParametersResult(successful=False, reason="not applied: %s" % exc)
        self.config = new
        self.pipeline = pipeline
        self.diagnostics.set_limits(new["min_fps"], new["max_fps"], new["max_delay_s"])
        if reload:
            self._announce_pipeline()
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------- callbacks
    def _on_image(self, raw):
        self.stats.counters.frame_received()
        stamp_ns = codec.cdr_stamp(raw) if len(raw) >= 12 else 0
        arrival_ms = (self.get_clock().now().nanoseconds - stamp_ns) * 1e-6 if stamp_ns else None
        self.slot.put(Frame(raw, time.monotonic(), arrival_ms))

    def _lost_frame_events(self):
        """Transport-level losses (e.g. frames larger than the shared-memory segment) counted
        and reported, where the RMW reports them."""
        try:
            from rclpy.event_handler import SubscriptionEventCallbacks
        except ImportError:  # Humble names the module qos_event
            from rclpy.qos_event import SubscriptionEventCallbacks
        return {"event_callbacks": SubscriptionEventCallbacks(message_lost=self._on_frames_lost)}

    def _on_frames_lost(self, info):
        total = self.stats.frames_lost(int(info.total_count_change))
        if total == int(info.total_count_change):  # the first report: one warning with the fix
            self.get_logger().warning(
                "%d frame(s) were lost before reaching the node: frames this large may not fit "
                "the transport. Use input_reliability:=reliable, and with Fast DDS a profile "
                "whose shared-memory segment holds several frames (README: \"Large frames\")"
                % total)

    def _check_unique_name(self):
        """Two nodes with one name both answer every frame: say so, once per occurrence."""
        me = (self.get_name(), self.get_namespace())
        count = sum(1 for n in self.get_node_names_and_namespaces() if n == me)
        if count > 1 and self.stats.same_name_nodes <= 1:
            self.get_logger().warning(
                "%d nodes are named %s: each answers every frame and their outputs and "
                "diagnostics mix; give each its own namespace (namespace:=...) or name"
                % (count, self.get_fully_qualified_name()))
        self.stats.same_name_nodes = max(count, 1)

    def _on_camera_info(self, msg):
        """Validated once here: a bad one is counted and dropped, the last good one stays."""
        reason = camera_info.problem(msg)
        if reason is None:
            self.camera_info = msg
            return
        self.stats.camera_info_rejected(reason)
        self.get_logger().warning(
            "rejected camera_info: %s; %s" % (reason, "keeping the last good one"
                                              if self.camera_info is not None
                                              else "~/camera_info waits for a good one"),
            throttle_duration_sec=5.0)

    # ---------------------------------------------------------------- the frame path
    # Two threads: the model thread runs frame N+1 through the model while the publish thread
    # renders and publishes frame N (``pipelining``; without it one thread does both).

    def _model_loop(self):
        last_start = 0.0
        while not self.slot.closed:
            frame = self.slot.take(timeout=0.5)
            if frame is None:
                continue
            rate = self.config["max_rate_hz"]
            if rate > 0:
                wait = last_start + 1.0 / rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                    newer = self.slot.take(timeout=0)
                    if newer is not None:
                        self.stats.counters.frame_dropped()
                        frame = newer
            last_start = time.monotonic()
            job = self._guarded(self._infer, frame, last_start)
            if job is None:
                continue
            if self.handoff is None:
                self._guarded(self._render_and_publish, job)
            else:
                waited = time.perf_counter()
                self.handoff.put(job)  # blocks while the publish thread is still busy
                job.stages["handoff"] = (time.perf_counter() - waited) * 1e3

    def _publish_loop(self):
        while not self.slot.closed:
            try:
                job = self.handoff.get(timeout=0.5)
            except queue.Empty:
                continue
            if job is None:  # closed
                return
            self._guarded(self._render_and_publish, job)

    def _guarded(self, step, *args):
        """Runs one step of a frame; a bad or failing frame is counted and logged, never fatal."""
        try:
            return step(*args)
        except codec.ImageDecodeError as exc:
            self.stats.counters.frame_rejected(exc.reason)
            self.get_logger().error("rejected frame: %s" % exc)
        except Exception as exc:  # a failing frame must not stop the node
            if self.context.ok():  # else shutting down: publishers are gone
                self.stats.counters.frame_rejected("processing failed")
                self.get_logger().error("frame failed: %s: %s" % (type(exc).__name__, exc))
        return None

    def _infer(self, frame, taken):
        """Model thread: deserialize -> decode -> Pipeline.infer, each stage timed."""
        config, pipeline = self.config, self.pipeline
        stages = {"arrival": frame.arrival_ms, "wait": (taken - frame.received) * 1e3}
        max_pixels = config["max_input_pixels"]
        t0 = time.perf_counter()
        if max_pixels and self.input_type is self.kit.Image:  # refused before it is copied
            size = codec.cdr_image_size(frame.msg)
            if size is not None:
                codec.check_pixels(size[0], size[1], max_pixels, "image")
        msg = deserialize_message(frame.msg, self.input_type)
        t1 = time.perf_counter()
        image = codec.decode(msg, max_pixels)
        t2 = time.perf_counter()
        stages.update(deserialize=(t1 - t0) * 1e3, decode=(t2 - t1) * 1e3)
        wanted = {name: config["publish_" + name]
                  and self.publishers_by_name[name].get_subscription_count() > 0
                  for name in IMAGE_OUTPUTS}
        inferred = pipeline.infer(image.pixels, image.order, wanted["confidence"])
        return _Job(frame, msg, image, wanted, config, pipeline, inferred, stages)

    def _render_and_publish(self, job):
        """Publish thread: Pipeline.render into the outgoing messages, then publish them."""
        config, pipeline, image = job.config, job.pipeline, job.image
        resolution = config["output_resolution"]
        overlay_encoding = codec.overlay_encoding_for(image.encoding)
        out = pipeline.render(image.pixels, job.inferred, image.order, resolution,
                              color=job.wanted["color_mask"], overlay=job.wanted["overlay"],
                              out=self._buffers(pipeline.output_size(image.pixels, resolution),
                                                job.wanted, image.order, overlay_encoding))
        stages = job.stages
        stages.update(zip(("preprocess", "inference", "postprocess", "color", "overlay",
                           "confidence"), out.timing))
        t0 = time.perf_counter()
        latency_ms = self._publish(job.msg.header, out, job.wanted, image.order,
                                   overlay_encoding, job.frame.received, pipeline)
        stages["publish"] = (time.perf_counter() - t0) * 1e3
        self.stats.frame_served(stages, latency_ms)
        pipeline.frame_done(image.pixels)
        self.diagnostics.output_published(_stamp_ns(job.msg.header) * 1e-9)
        self.power.frame_done()

    def _buffers(self, size, wanted, order, overlay_encoding):
        """The outgoing messages' pixel buffers for what will be published (see ImageWriter)."""
        width, height = size
        overlay = None
        if wanted["overlay"] and overlay_encoding in ("bgr8", "rgb8") \
                and overlay_encoding[:3] == order:
            overlay = self._overlay_writer(overlay_encoding).pixels(height, width)
        return Buffers(
            labels=self.writers["label"].pixels(height, width),
            color=self.writers["color_mask"].pixels(height, width) if wanted["color_mask"] else None,
            overlay=overlay,
            confidence=(self.writers["confidence"].pixels(height, width)
                        if wanted["confidence"] else None))

    def _overlay_writer(self, encoding):
        if encoding not in self.overlay_writers:
            self.overlay_writers[encoding] = codec.ImageWriter(self.kit.Image, encoding)
        return self.overlay_writers[encoding]

    def _publish(self, header, out, wanted, order, overlay_encoding, received, pipeline):
        """Publishes every wanted output with the input's header; returns the latency in ms."""
        pubs = self.publishers_by_name
        if wanted["label"]:
            pubs["label"].publish(self.writers["label"].message(header))
        if wanted["color_mask"]:
            pubs["color_mask"].publish(self.writers["color_mask"].message(header))
        if wanted["overlay"]:
            writer = self._overlay_writer(overlay_encoding)
            pixels = writer.pixels(*out.overlay.shape[:2])
            if pixels is not out.overlay:  # e.g. rgba8 input: convert into the message
                codec.write_pixels(pixels, out.overlay, overlay_encoding, order)
            pubs["overlay"].publish(writer.message(header))
        if wanted["confidence"]:
            pubs["confidence"].publish(self.writers["confidence"].message(header))
        info = self.camera_info
        if self.pub_camera_info is not None and info is not None:
            height, width = out.labels.shape
            cached = self._camera_info_out
            if cached is None or cached[:3] != (info, width, height):
                cached = self._camera_info_out = (info, width, height,
                                                  camera_info.for_output(info, width, height))
            cached[3].header = header
            self.pub_camera_info.publish(cached[3])
        latency_ms = self._latency_ms(header, received)
        if self.pub_info is not None and self.config["publish_info"] \
                and self.pub_info.get_subscription_count():
            self.pub_info.publish(self._info(header, out, latency_ms, pipeline))
        return latency_ms

    def _latency_ms(self, header, received):
        """From the input stamp (or, for unstamped input, the receive time) to now."""
        stamp_ns = _stamp_ns(header)
        if stamp_ns > 0:
            return (self.get_clock().now().nanoseconds - stamp_ns) * 1e-6
        return (time.monotonic() - received) * 1e3

    def _info(self, header, out, latency_ms, pipeline):
        labels = out.labels
        counts = np.bincount(labels.ravel(), minlength=pipeline.entry.num_classes)
        present = np.flatnonzero(counts)
        msg = self.info_cls()
        msg.header = header
        msg.model = pipeline.entry.name
        msg.backend = pipeline.backend
        msg.precision = pipeline.precision
        msg.inference_ms = float(out.timing.inference_ms)
        msg.latency_ms = float(latency_ms)
        msg.height, msg.width = int(labels.shape[0]), int(labels.shape[1])
        msg.class_ids = [int(i) for i in present]
        msg.pixel_counts = [int(counts[i]) for i in present]
        void = pipeline.entry.void_id
        msg.void_id = 255 if void is None else int(void)
        return msg

    # ---------------------------------------------------------------- diagnostics
    def _pipeline_status(self):
        stats = self.stats
        return pipeline_status(stats.counters, stats.stages["inference"], stats.latency_ms,
                               self.config["max_latency_ms"] or None, stats.stage_p50(),
                               stats.input_values())

    def _model_status(self):
        p = self.pipeline
        return model_status(p.backend, p.precision, p.entry.name, p.model_size,
                            self.power.summary())

    def destroy_node(self):
        # Parts may be missing when __init__ failed (rclpy may still destroy the node).
        if hasattr(self, "slot"):
            self.slot.close()
        threads = getattr(self, "_threads", [])
        if threads:
            threads[0].join(timeout=WORKER_STOP_TIMEOUT_S)
        if len(threads) > 1:
            try:
                self.handoff.put_nowait(None)
            except queue.Full:  # busy with a frame: it sees the closed slot afterwards
                pass
            threads[1].join(timeout=WORKER_STOP_TIMEOUT_S)
        if hasattr(self, "power"):
            self.power.meter.close()
        return super().destroy_node()


if __name__ == "__main__":
    from .node_main import main
    main(sys.argv)
