"""The ROS 2 segmentation node: camera image in; label, colour mask, overlay, info out.

A thin shell around the ROS-free ``inference.Pipeline``. The subscription callback only stores
the newest serialized frame; one worker thread serves it, and ``SegmentNode._serve`` is the
whole frame path, top-down: deserialize -> decode -> ``Pipeline.run`` -> publish. Outputs
carry the input's header and are painted straight into the outgoing messages' buffers.

Run with ``ros2 run espnet_ros segment_node`` or, without a ROS install, ``espnet-ros node`` /
``python -m espnet_ros.ros.segment_node``.
"""
import logging
import sys
import threading
import time

import numpy as np
import rclpy
import rclpy.executors
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message

from ..inference import Buffers, Pipeline
from ..models.registry import register_user_models
from ..power import PowerMonitor, UnavailablePowerMeter, detect_power_source
from . import codec
from . import params as P
from .camera_info import scale_camera_info
from .diagnostics import build_status_records, to_diagnostic_array
from .frame_slot import Frame, LatestFrameSlot
from .interfaces import load_segmentation_info
from .node_stats import NodeStats

RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
IMAGE_OUTPUTS = ("label", "color_mask", "overlay", "confidence")


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
        if self.config["threads"]:
            import torch
            torch.set_num_threads(self.config["threads"])
        self.pipeline = self._build_pipeline(self.config)

        self.stats = NodeStats(self.config["min_fps"], self.config["max_fps"],
                               self.config["max_delay_s"])
        meter = (UnavailablePowerMeter("disabled by the power_source parameter")
                 if self.config["power_source"] == "none" else detect_power_source())
        self.power = PowerMonitor(meter)
        self.power.start()

        self.info_cls, info_reason = load_segmentation_info()
        if self.info_cls is None:
            self.get_logger().warning("~/info is off: %s" % info_reason)
        self._create_outputs()
        in_qos = _qos(self.config["input_reliability"], self.config["input_depth"])
        self.camera_info = None
        if self.config["use_camera_info"]:
            self.create_subscription(self.kit.CameraInfo, "camera_info", self._on_camera_info,
                                     in_qos)
        self.slot = LatestFrameSlot(on_drop=self.stats.counters.frame_dropped)
        compressed = self.config["input_transport"] == "compressed"
        self.input_type = self.kit.CompressedImage if compressed else self.kit.Image
        # raw: the executor thread only copies bytes; the worker deserializes (and times it).
        self.create_subscription(self.input_type, "image/compressed" if compressed else "image",
                                 self._on_image, in_qos, raw=True)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(1.0, self._publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name="espnet_worker", daemon=True)
        self._worker.start()
        self._log_startup()

    def _create_outputs(self):
        from diagnostic_msgs.msg import DiagnosticArray

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
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

    # ---------------------------------------------------------------- startup and parameters
    def _build_pipeline(self, config):
        pipeline = Pipeline.build(**P.pipeline_kwargs(config))
        pipeline.renderer.set_visible(P.parse_class_list(config["visible_classes"],
                                                         pipeline.entry.classes))
        return pipeline

    def _log_startup(self):
        p = self.pipeline
        width, height = p.model_size
        self.get_logger().info(
            "serving %s on %s %s (%s), input %dx%d, expected %.1f FPS (inference only); "
            "power: %s" % (p.entry.name, p.backend, p.precision, p.device, width, height,
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
        self.stats.set_limits(new["min_fps"], new["max_fps"], new["max_delay_s"])
        if reload:
            self._log_startup()
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------- callbacks
    def _on_image(self, raw):
        self.stats.counters.frame_received()
        stamp_ns = codec.cdr_stamp(raw) if len(raw) >= 12 else 0
        arrival_ms = (self.get_clock().now().nanoseconds - stamp_ns) * 1e-6 if stamp_ns else None
        self.slot.put(Frame(raw, time.monotonic(), arrival_ms))

    def _on_camera_info(self, msg):
        self.camera_info = msg

    # ---------------------------------------------------------------- worker
    def _work(self):
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
            try:
                self._serve(frame, last_start)
            except codec.ImageDecodeError as exc:
                self.stats.counters.frame_rejected(exc.reason)
                self.get_logger().error("rejected frame: %s" % exc)
            except Exception as exc:  # a failing frame must not stop the node
                if not self.context.ok():
                    return  # shutting down: publishers are gone
                self.stats.counters.frame_rejected("processing failed")
                self.get_logger().error("frame failed: %s: %s" % (type(exc).__name__, exc))

    def _serve(self, frame, taken):
        """The frame path: deserialize -> decode -> Pipeline.run -> publish, each stage timed."""
        config, pipeline = self.config, self.pipeline
        stages = {"arrival": frame.arrival_ms, "wait": (taken - frame.received) * 1e3}
        t0 = time.perf_counter()
        msg = deserialize_message(frame.msg, self.input_type)
        t1 = time.perf_counter()
        image = codec.decode(msg)
        t2 = time.perf_counter()
        stages.update(deserialize=(t1 - t0) * 1e3, decode=(t2 - t1) * 1e3)

        wanted = {name: config["publish_" + name]
                  and self.publishers_by_name[name].get_subscription_count() > 0
                  for name in IMAGE_OUTPUTS}
        overlay_encoding = codec.overlay_encoding_for(image.encoding)
        out = pipeline.run(image.pixels, image.order, config["output_resolution"],
                           color=wanted["color_mask"], overlay=wanted["overlay"],
                           confidence=wanted["confidence"],
                           out=self._buffers(pipeline.output_size(image.pixels,
                                                                  config["output_resolution"]),
                                             wanted, image.order, overlay_encoding))
        stages.update(zip(("preprocess", "inference", "postprocess", "color", "overlay",
                           "confidence"), out.timing))

        t3 = time.perf_counter()
        latency_ms = self._publish(msg.header, out, wanted, image.order, overlay_encoding,
                                   frame.received)
        stages["publish"] = (time.perf_counter() - t3) * 1e3
        self.stats.frame_served(stages, latency_ms, _stamp_ns(msg.header) * 1e-9,
                                self.get_clock().now().nanoseconds * 1e-9)
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

    def _publish(self, header, out, wanted, order, overlay_encoding, received):
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
        if self.pub_camera_info is not None and self.camera_info is not None:
            info = self.camera_info
            height, width = out.labels.shape
            if (info.width, info.height) != (width, height):
                info = scale_camera_info(info, width, height)
            info.header = header
            self.pub_camera_info.publish(info)
        latency_ms = self._latency_ms(header, received)
        if self.pub_info is not None and self.config["publish_info"] \
                and self.pub_info.get_subscription_count():
            self.pub_info.publish(self._info(header, out, latency_ms))
        return latency_ms

    def _latency_ms(self, header, received):
        """From the input stamp (or, for unstamped input, the receive time) to now."""
        stamp_ns = _stamp_ns(header)
        if stamp_ns > 0:
            return (self.get_clock().now().nanoseconds - stamp_ns) * 1e-6
        return (time.monotonic() - received) * 1e3

    def _info(self, header, out, latency_ms):
        pipeline = self.pipeline
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
    def _publish_diagnostics(self):
        pipeline, stats = self.pipeline, self.stats
        records = build_status_records(
            self.get_fully_qualified_name().lstrip("/"), "espnet_ros/%s" % pipeline.device,
            stats.counters, stats.frequency, stats.timestamps, stats.stages["inference"],
            stats.latency_ms, backend=pipeline.backend, precision=pipeline.precision,
            model=pipeline.entry.name, input_size=pipeline.model_size,
            power=self.power.summary(), max_latency_ms=self.config["max_latency_ms"] or None,
            stage_p50=stats.stage_p50())
        self.pub_diagnostics.publish(to_diagnostic_array(records, self.get_clock().now()))

    def destroy_node(self):
        self.slot.close()
        self._worker.join(timeout=5.0)
        self.power.meter.close()
        return super().destroy_node()


def make_executor(kind, logger):
    """The executor the ``executor`` parameter names; SingleThreadedExecutor where the
    EventsExecutor does not exist (rclpy before Kilted)."""
    if kind == "events":
        try:
            from rclpy.experimental import EventsExecutor
            return EventsExecutor()
        except ImportError as exc:
            logger.warning("executor:=events is not available in this rclpy (%s); using the "
                           "SingleThreadedExecutor" % exc)
    return rclpy.executors.SingleThreadedExecutor()


def main(args=None):
    """Entry point of ``ros2 run espnet_ros segment_node``; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    rclpy.init(args=args)
    node = None
    try:
        node = SegmentNode()
        executor = make_executor(node.config["executor"], node.get_logger())
        executor.add_node(node)
        executor.spin()
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # startup failures: one clear line and a non-zero exit
        logging.getLogger("espnet_ros").error("segment_node failed to start: %s", exc)
        return 1
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
