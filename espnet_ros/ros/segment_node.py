"""The ROS 2 segmentation node: camera image in; label, colour mask, overlay, info out.

A thin shell around the ROS-free ``inference.Pipeline``, for one camera or several
(``cameras``; topic layout in node_camera.py). The subscription callbacks only store each
camera's newest serialized frame. The frame path, top-down in the section of that name:
``_model_loop`` takes the newest frame of every camera that has one (``LatestFrames``, longest
unserved first, at most ``max_batch``), ``_decode`` (deserialize -> decode) each, ``_infer``
runs them as one batch (``Pipeline.infer_batch``: one forward call); then on the publish thread
``_render_and_publish`` (``Pipeline.render``, then one ``_publish_<output>`` per output) for
each camera's frame while the model runs the next batch. Outputs carry the input's header and
are painted straight into the outgoing messages' buffers. With ``lifecycle: true`` the node is
a managed node (see ``SegmentNode``).

Run with ``ros2 run espnet_ros segment_node`` or, without a ROS install, ``espnet-ros node`` /
``python -m espnet_ros.ros.node_main`` (entry point: node_main.main, which handles signals).
"""
import functools
import gc
import queue
import threading
import time
from typing import NamedTuple

import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterUninitializedException
from rclpy.lifecycle import LifecycleNodeMixin, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message

from ..inference import Buffers, Pipeline
from ..messages import camera_info, cdr, encode
from ..messages import params as P
from ..messages.decode import ImageDecodeError, check_pixels, decode, overlay_encoding_for
from ..messages.diagnostics import OK, TaskStatus, model_status, pipeline_status
from ..models.registry import register_user_models
from ..power import PowerMonitor, UnavailablePowerMeter, detect_power_source
from . import rosout
from .frame_slot import Frame, LatestFrames
from .interfaces import load_segmentation_info
from .node_camera import Camera
from .node_diagnostics import NodeDiagnostics


class _Job(NamedTuple):
    """A frame between the model thread and the publish thread."""
    frame: Frame
    camera: Camera
    msg: object           # the deserialized input message
    image: object         # messages.decode.Decoded
    wanted: dict          # output name -> has a subscriber and is enabled
    config: dict          # the parameters the frame was taken with
    overlay_encoding: str  # what the overlay is published in (follows the input's encoding)
    pipeline: object      # the pipeline that ran it (a reload may swap self.pipeline)
    inferred: object      # Pipeline.infer_batch's result for this frame
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


class SegmentNode(LifecycleNodeMixin, Node):
    """The node. Plain (``lifecycle: false``): configured and activated here, serving at once.
    Managed (``lifecycle: true``): the ROS lifecycle services drive ``on_configure`` (load the
    model, create the publishers), ``on_activate`` (subscribe), ``on_deactivate``
    (unsubscribe), ``on_cleanup`` (free the model) and ``on_shutdown`` (``finished`` is set and
    the process exits 0)."""

    def __init__(self, **kwargs):
        Node.__init__(self, "espnet_segmentation", **kwargs)
        self._rosout = rosout.forward_library_logs(self)  # fallbacks to /rosout
        self._declare_parameters()
        LifecycleNodeMixin.__init__(self, enable_communication_interface=self.managed)
        self._prepare_runtime()
        self._define_inputs()
        self._define_outputs()
        self._define_threads()
        self._start_diagnostics()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(5.0, self._check_unique_name)  # the graph is a local cache: cheap
        if self.managed:
            self.get_logger().info("lifecycle node: unconfigured (no model loaded); configure "
                                   "and activate to serve")
        else:
            self._configure()
            self._activate()

    def _declare_parameters(self):
        """Every parameter of the table (messages/params.py), read back and validated."""
        for spec in P.SPECS:
            if spec.name == "cameras":  # an empty default gives rclpy no type to infer
                self.declare_parameter(spec.name, Parameter.Type.STRING_ARRAY, _descriptor(spec))
            else:
                self.declare_parameter(spec.name, spec.default, _descriptor(spec))
        self.config = {spec.name: self._parameter_value(spec.name) for spec in P.SPECS}
        for name, value in self.config.items():
            reason = P.validate(name, value)
            if reason:
                raise ValueError(reason)
        self.managed = bool(self.config["lifecycle"])

    def _prepare_runtime(self):
        """User-trained models, before any model is built."""
        try:  # checkpoints trained with espnet-ros train, named in $ESPNET_ROS_MODELS
            register_user_models()
        except (OSError, ValueError) as exc:
            self.get_logger().warning("ESPNET_ROS_MODELS: %s" % exc)

    def _define_inputs(self):
        """The cameras (topic layout in node_camera.py) and the image message type they send;
        subscribed in ``_activate``."""
        self.cameras = [Camera(i, name, self.get_namespace(), self.get_name())
                        for i, name in enumerate(P.camera_names(self.config["cameras"]) or [""])]
        self.kit = encode.rclpy_kit()
        compressed = self.config["input_transport"] == "compressed"
        self.input_type = self.kit.CompressedImage if compressed else self.kit.Image

    def _define_outputs(self):
        """The optional output message classes; the publishers are created in ``_configure``."""
        self.info_cls, info_reason = load_segmentation_info()
        if self.info_cls is None:
            self.get_logger().warning("~/info is off: %s" % info_reason)
        self.label_info_cls = _label_info_class(self.get_logger())

    def _define_threads(self):
        """What exists between configure and cleanup: the model, the frame slot, the worker
        threads (started in ``_configure``)."""
        self.pipeline = None
        self.power = None
        self.slot = None
        self.handoff = None
        self._threads = []
        self._active = False
        self.forwards = 0  # forward calls, and the frames they carried (diagnostics)
        self.forward_frames = 0
        self.finished = threading.Event()

    def _start_diagnostics(self):
        """/diagnostics, once a second from now on (unconfigured included)."""
        self.diagnostics = NodeDiagnostics(
            self, [(c.name, functools.partial(self._pipeline_status, c)) for c in self.cameras],
            self._model_status, self._hardware_id, self.config["min_fps"],
            self.config["max_fps"], self.config["max_delay_s"])
        self.get_logger().info("diagnostics published with %s" % self.diagnostics.implementation)

    def _parameter_value(self, name):
        try:
            value = self.get_parameter(name).value
        except ParameterUninitializedException:  # cameras, when nobody set it
            return []
        return list(value) if name == "cameras" else value

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state):
        try:
            self._configure()
        except Exception as exc:  # a bad model or weights: say why, stay unconfigured
            self.get_logger().error("configure failed: %s" % (str(exc) or type(exc).__name__))
            self._cleanup()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state):
        result = super().on_activate(state)  # activates the lifecycle publishers
        self._activate()
        return result

    def on_deactivate(self, state):
        self._deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state):
        self._cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state):
        self._deactivate()
        self._cleanup()
        self.finished.set()
        return TransitionCallbackReturn.SUCCESS

    def _configure(self):
        """Loads the model and creates the outputs and the worker threads."""
        threads = P.torch_threads(self.config)
        if threads:  # again at each configure: a settled count is for the model it measured
            import torch
            torch.set_num_threads(threads)
        self.pipeline = self._build_pipeline(self.config)
        self._settle_threads(self.pipeline)
        meter = (UnavailablePowerMeter("disabled by the power_source parameter")
                 if self.config["power_source"] == "none" else detect_power_source())
        self.power = PowerMonitor(meter)
        self.power.start()
        for camera in self.cameras:
            self._create_outputs(camera)
        self._start_threads()

    def _start_threads(self):
        """The frame slot the subscriptions fill, and the model (and publish) thread."""
        self.slot = LatestFrames(len(self.cameras), on_drop=lambda i: self.cameras[
            i].stats.counters.frame_dropped())
        self.handoff = queue.Queue(maxsize=1) if self.config["pipelining"] else None
        self._threads = [threading.Thread(target=self._model_loop, name="espnet_model",
                                          daemon=True)]
        if self.handoff is not None:
            self._threads.append(threading.Thread(target=self._publish_loop,
                                                  name="espnet_publish", daemon=True))
        for thread in self._threads:
            thread.start()

    def _activate(self):
        """Subscribes every camera's inputs; from now frames are taken."""
        in_qos = _qos(self.config["input_reliability"], self.config["input_depth"])
        compressed = self.config["input_transport"] == "compressed"
        for camera in self.cameras:
            if self.config["use_camera_info"]:
                camera.subscriptions.append(self.create_subscription(
                    self.kit.CameraInfo, camera.camera_info_topic,
                    functools.partial(self._on_camera_info, camera), in_qos))
            # raw: the executor thread only copies bytes; the worker deserializes (and times it).
            camera.subscriptions.append(self.create_subscription(
                self.input_type, camera.image_topic + ("/compressed" if compressed else ""),
                functools.partial(self._on_image, camera), in_qos, raw=True,
                **self._lost_frame_events(camera)))
        self._active = True
        self._announce_pipeline()

    def _deactivate(self):
        """Stops taking frames (a frame already in the model still comes out)."""
        self._active = False
        for camera in self.cameras:
            for subscription in camera.subscriptions:
                self.destroy_subscription(subscription)
            camera.subscriptions = []

    def _cleanup(self):
        """Frees the model, its buffers and the outputs: back to what __init__ left."""
        self._stop_threads()
        destroy = self.destroy_lifecycle_publisher if self.managed else self.destroy_publisher
        for camera in self.cameras:
            for publisher in camera.publishers.values():
                destroy(publisher)
            camera.publishers, camera.writers = {}, {}
        if self.power is not None:
            self.power.meter.close()
        self.pipeline = self.power = self.slot = self.handoff = None
        gc.collect()
        from ..malloc import release_memory
        release_memory()  # glibc keeps freed blocks; give them back (RSS drops)

    def _stop_threads(self):
        if self.slot is not None:
            self.slot.close()
        threads, self._threads = self._threads, []
        if threads:
            threads[0].join(timeout=WORKER_STOP_TIMEOUT_S)
        if len(threads) > 1:
            try:
                self.handoff.put_nowait(None)
            except queue.Full:  # busy with a frame: it sees the closed slot afterwards
                pass
            threads[1].join(timeout=WORKER_STOP_TIMEOUT_S)

    def _publisher(self, msg_type, topic, qos):
        if self.managed:  # inactive, so silent, until activate
            return self.create_lifecycle_publisher(msg_type, topic, qos)
        return self.create_publisher(msg_type, topic, qos)

    def _create_outputs(self, camera):
        qos = _qos(self.config["output_reliability"], self.config["output_depth"])
        pubs = {name: self._publisher(self.kit.Image, camera.output(name), qos)
                for name in IMAGE_OUTPUTS}
        if self.info_cls is not None:
            pubs["info"] = self._publisher(self.info_cls, camera.output("info"), qos)
        if self.config["use_camera_info"]:
            pubs["camera_info"] = self._publisher(self.kit.CameraInfo,
                                                  camera.output("camera_info"), qos)
        if self.label_info_cls is not None:
            # Latched: nav2's semantic_segmentation_layer or rviz may subscribe at any time.
            latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                                 reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            pubs["label_info"] = self._publisher(self.label_info_cls, camera.output("label_info"),
                                                 latched)
        camera.publishers = pubs

    def _image_writer(self, encoding):
        return encode.ImageWriter(self.kit.Image, encoding)

    # ---------------------------------------------------------------- startup and parameters
    def _build_pipeline(self, config):
        pipeline = Pipeline.build(**P.pipeline_kwargs(config))
        pipeline.renderer.set_visible(P.parse_class_list(config["visible_classes"],
                                                         pipeline.entry.classes))
        return pipeline

    def _settle_threads(self, pipeline):
        """``threads: 0`` with torch on the CPU: every core only where it pays. The warm-up ran
        on every core; one core fewer is timed too, and the node keeps every core only when
        that saves more per frame than its other threads' work (``P.keep_every_core``).
        Other backends fixed their threads when built; a reload keeps the count chosen here."""
        cores = torch_num_threads()
        if self.config["threads"] or pipeline.backend != "torch" or cores < 2 \
                or pipeline.device.type != "cpu" or pipeline.warmup_ms is None:
            return
        import torch
        every_core_ms = pipeline.warmup_ms
        torch.set_num_threads(cores - 1)
        one_fewer_ms = pipeline.warm_up(self.config["warmup_frames"])
        keep = P.keep_every_core(every_core_ms, one_fewer_ms)
        if keep:
            torch.set_num_threads(cores)
            pipeline.warmup_ms = every_core_ms
        self.get_logger().info(
            "threads: %d of %d cores (forward %.1f ms on %d, %.1f ms on %d: %s)" % (
                torch_num_threads(), cores, every_core_ms, cores, one_fewer_ms, cores - 1,
                "every core pays" if keep else "the node's other threads keep a core"))

    def _publish_label_info(self):
        """Class id -> name of the model that serves now (void included), latched, on every
        camera's ``label_info`` (each camera's topics stand alone for its consumers)."""
        if self.label_info_cls is None:
            return
        from vision_msgs.msg import VisionClass
        msg = self.label_info_cls()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.class_map = [VisionClass(class_id=i, class_name=name)
                         for i, name in enumerate(self.pipeline.entry.classes)]
        msg.threshold = 0.0  # every pixel gets its most likely class; ~/confidence says how sure
        for camera in self.cameras:
            camera.publishers["label_info"].publish(msg)

    def _announce_pipeline(self):
        """Logs what serves now and republishes ~/label_info (at start and after a reload)."""
        self._publish_label_info()
        p = self.pipeline
        width, height = p.model_size
        cameras = ", ".join(c.output_base for c in self.cameras) if self.cameras[0].name else ""
        self.get_logger().info(
            "serving %s on %s %s (%s, %d torch threads), input %dx%d, expected %.1f FPS "
            "(inference only); power: %s%s" % (
                p.entry.name, p.backend, p.precision, p.device, torch_num_threads(), width,
                height, p.expected_fps or 0.0,
                self.power.meter.name if self.power.meter.available else "unavailable",
                "; %d cameras, batches of up to %d: %s" % (
                    len(self.cameras), self.config["max_batch"] or len(self.cameras), cameras)
                if cameras else ""))

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
        pipeline = self.pipeline
        try:
            if pipeline is None:  # unconfigured: configure builds with these values
                pass
            elif reload:
                self.get_logger().info("rebuilding the pipeline for %s" % ", ".join(sorted(changed)))
                pipeline = self._build_pipeline(new)
            else:
                if "palette" in changed:
                    pipeline.set_palette(new["palette"])
                if "visible_classes" in changed:
                    pipeline.renderer.set_visible(P.parse_class_list(new["visible_classes"],
                                                                     pipeline.entry.classes))
            if pipeline is not None:
                pipeline.renderer.alpha = float(new["overlay_alpha"])
        except Exception as exc:  # keep serving with the old pipeline
            return SetParametersResult(successful=False, reason="not applied: %s" % exc)
        self.config = new
        self.pipeline = pipeline
        self.diagnostics.set_limits(new["min_fps"], new["max_fps"], new["max_delay_s"])
        if reload and self._active:
            self._announce_pipeline()
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------- callbacks
    def _on_image(self, camera, raw):
        camera.stats.counters.frame_received()
        stamp_ns = cdr.cdr_stamp(raw) if len(raw) >= 12 else 0
        arrival_ms = (self.get_clock().now().nanoseconds - stamp_ns) * 1e-6 if stamp_ns else None
        self.slot.put(Frame(raw, time.monotonic(), arrival_ms, camera.index))

    def _lost_frame_events(self, camera):
        """Transport-level losses (e.g. frames larger than the shared-memory segment) counted
        and reported, where the RMW reports them."""
        try:
            from rclpy.event_handler import SubscriptionEventCallbacks
        except ImportError:  # Humble names the module qos_event
            from rclpy.qos_event import SubscriptionEventCallbacks
        return {"event_callbacks": SubscriptionEventCallbacks(
            message_lost=functools.partial(self._on_frames_lost, camera))}

    def _on_frames_lost(self, camera, info):
        total = camera.stats.frames_lost(int(info.total_count_change))
        if total == int(info.total_count_change):  # the first report: one warning with the fix
            self.get_logger().warning(
                "%d frame(s) of %s were lost before reaching the node: frames this large may "
                "not fit the transport. Use input_reliability:=reliable, and with Fast DDS a "
                "profile whose shared-memory segment holds several frames (docs/node.md: \"Large "
                "frames\")" % (total, camera.image_topic))

    def _check_unique_name(self):
        """Two nodes with one name both answer every frame: say so, once per occurrence."""
        me = (self.get_name(), self.get_namespace())
        count = sum(1 for n in self.get_node_names_and_namespaces() if n == me)
        if count > 1 and self.cameras[0].stats.same_name_nodes <= 1:
            self.get_logger().warning(
                "%d nodes are named %s: each answers every frame and their outputs and "
                "diagnostics mix; give each its own namespace (namespace:=...) or name"
                % (count, self.get_fully_qualified_name()))
        for camera in self.cameras:
            camera.stats.same_name_nodes = max(count, 1)

    def _on_camera_info(self, camera, msg):
        """Validated once here: a bad one is counted and dropped, the last good one stays."""
        reason = camera_info.problem(msg)
        if reason is None:
            camera.camera_info = msg
            return
        camera.stats.camera_info_rejected(reason)
        self.get_logger().warning(
            "rejected camera_info: %s; %s" % (reason, "keeping the last good one"
                                              if camera.camera_info is not None
                                              else "~/camera_info waits for a good one"),
            throttle_duration_sec=5.0)

    # ---------------------------------------------------------------- the frame path
    # Two threads: the model thread runs the newest frame of every camera that has one through
    # the model as one batch while the publish thread renders and publishes the previous batch
    # (``pipelining``; without it one thread does both).

    def _model_loop(self):
        slot, last_start = self.slot, 0.0
        while not slot.closed:
            rate = self.config["max_rate_hz"]
            if rate > 0:  # frames arriving meanwhile replace each other (counted as dropped)
                wait = last_start + 1.0 / rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            frames = slot.take_batch(self.config["max_batch"], timeout=0.5)
            if not frames:
                continue
            last_start = time.monotonic()
            jobs = [job for job in (self._guarded([self.cameras[f.camera]], self._decode, f,
                                                  last_start) for f in frames) if job]
            jobs = jobs and self._guarded([job.camera for job in jobs], self._infer, jobs)
            if not jobs:
                continue
            if self.handoff is None:
                self._publish_batch(jobs)
            else:
                waited = time.perf_counter()
                self.handoff.put(jobs)  # blocks while the publish thread is still busy
                for job in jobs:
                    job.stages["handoff"] = (time.perf_counter() - waited) * 1e3

    def _publish_loop(self):
        handoff, slot = self.handoff, self.slot
        while not slot.closed:
            try:
                jobs = handoff.get(timeout=0.5)
            except queue.Empty:
                continue
            if jobs is None:  # closed
                return
            self._publish_batch(jobs)

    def _guarded(self, cameras, step, *args):
        """Runs one step of a frame (or a batch of ``cameras``' frames); a bad or failing frame
        is counted and logged, never fatal."""
        try:
            return step(*args)
        except ImageDecodeError as exc:
            for camera in cameras:
                camera.stats.counters.frame_rejected(exc.reason)
            self.get_logger().error("rejected frame%s: %s" % (_of(cameras), exc))
        except Exception as exc:  # a failing frame must not stop the node
            if self.context.ok():  # else shutting down: publishers are gone
                for camera in cameras:
                    camera.stats.counters.frame_rejected("processing failed")
                self.get_logger().error("frame failed%s: %s: %s"
                                        % (_of(cameras), type(exc).__name__, exc))
        return None

    def _decode(self, frame, taken):
        """Model thread, per frame: deserialize -> decode, each stage timed."""
        config, camera = self.config, self.cameras[frame.camera]
        stages = {"arrival": frame.arrival_ms, "wait": (taken - frame.received) * 1e3}
        max_pixels = config["max_input_pixels"]
        t0 = time.perf_counter()
        if max_pixels and self.input_type is self.kit.Image:  # refused before it is copied
            size = cdr.cdr_image_size(frame.msg)
            if size is not None:
                check_pixels(size[0], size[1], max_pixels, "image")
        msg = deserialize_message(frame.msg, self.input_type)
        t1 = time.perf_counter()
        image = decode(msg, max_pixels)
        t2 = time.perf_counter()
        stages.update(deserialize=(t1 - t0) * 1e3, decode=(t2 - t1) * 1e3)
        wanted = {name: config["publish_" + name]
                  and camera.publishers[name].get_subscription_count() > 0
                  for name in IMAGE_OUTPUTS}
        return _Job(frame, camera, msg, image, wanted, config,
                    overlay_encoding_for(image.encoding), None, None, stages)

    def _infer(self, jobs):
        """Model thread: the batch's frames through ``Pipeline.infer_batch``, one forward call
        (each frame resized to the model input)."""
        pipeline = self.pipeline
        confidence = any(job.wanted["confidence"] for job in jobs)
        inferred = pipeline.infer_batch([job.image.pixels for job in jobs],
                                        [job.image.order for job in jobs], confidence)
        self.forwards += 1
        self.forward_frames += len(jobs)
        return [job._replace(pipeline=pipeline, inferred=result if job.wanted["confidence"]
                             else result._replace(probability=None))
                for job, result in zip(jobs, inferred)]

    def _publish_batch(self, jobs):
        """Publish thread: each camera's frame of the batch rendered and published."""
        for job in jobs:
            self._guarded([job.camera], self._render_and_publish, job)
        largest = max(jobs, key=lambda job: job.image.pixels.size)
        largest.pipeline.frame_done(largest.image.pixels)

    def _render_and_publish(self, job):
        """Publish thread: Pipeline.render into the outgoing messages, then one publish per
        output."""
        out = job.pipeline.render(
            job.image.pixels, job.inferred, job.image.order, job.config["output_resolution"],
            color=job.wanted["color_mask"], overlay=job.wanted["overlay"], out=self._buffers(job))
        job.stages.update(zip(("preprocess", "inference", "postprocess", "color", "overlay",
                               "confidence"), out.timing))
        t0 = time.perf_counter()
        self._publish_label(job)
        self._publish_color_mask(job)
        self._publish_overlay(job, out)
        self._publish_confidence(job)
        self._publish_camera_info(job, out)
        latency_ms = self._latency_ms(job.msg.header, job.frame.received)
        self._publish_info(job, out, latency_ms)
        job.stages["publish"] = (time.perf_counter() - t0) * 1e3
        job.camera.stats.frame_served(job.stages, latency_ms)
        self.diagnostics.output_published(_stamp_ns(job.msg.header) * 1e-9, job.camera.index)
        self.power.frame_done()

    def _writer(self, job, output, encoding):
        """The outgoing message of ``job``'s camera for ``output`` (see ImageWriter)."""
        return job.camera.writer(output, encoding, make=self._image_writer)

    def _buffers(self, job):
        """The outgoing messages' pixel buffers for what will be published."""
        wanted, encoding = job.wanted, job.config["confidence_encoding"]
        width, height = job.pipeline.output_size(job.image.pixels, job.config["output_resolution"])
        overlay = None
        if wanted["overlay"] and job.overlay_encoding in ("bgr8", "rgb8") \
                and job.overlay_encoding[:3] == job.image.order:
            overlay = self._writer(job, "overlay", job.overlay_encoding).pixels(height, width)
        return Buffers(
            labels=self._writer(job, "label", "mono8").pixels(height, width),
            color=self._writer(job, "color_mask", "rgb8").pixels(height, width)
            if wanted["color_mask"] else None,
            overlay=overlay,
            confidence=(self._writer(job, "confidence", encoding).pixels(height, width)
                        if wanted["confidence"] else None))

    def _publish_label(self, job):
        if job.wanted["label"]:
            job.camera.publishers["label"].publish(
                self._writer(job, "label", "mono8").message(job.msg.header))

    def _publish_color_mask(self, job):
        if job.wanted["color_mask"]:
            job.camera.publishers["color_mask"].publish(
                self._writer(job, "color_mask", "rgb8").message(job.msg.header))

    def _publish_overlay(self, job, out):
        if not job.wanted["overlay"]:
            return
        overlay = self._writer(job, "overlay", job.overlay_encoding)
        pixels = overlay.pixels(*out.overlay.shape[:2])
        if pixels is not out.overlay:  # e.g. rgba8 input: convert into the message
            encode.write_pixels(pixels, out.overlay, job.overlay_encoding, job.image.order)
        job.camera.publishers["overlay"].publish(overlay.message(job.msg.header))

    def _publish_confidence(self, job):
        if job.wanted["confidence"]:
            encoding = job.config["confidence_encoding"]
            job.camera.publishers["confidence"].publish(
                self._writer(job, "confidence", encoding).message(job.msg.header))

    def _publish_camera_info(self, job, out):
        """The camera's last valid camera_info, scaled to the outputs' size."""
        camera, info = job.camera, job.camera.camera_info
        if "camera_info" not in camera.publishers or info is None:
            return
        height, width = out.labels.shape
        cached = camera.camera_info_out
        if cached is None or cached[:3] != (info, width, height):
            cached = camera.camera_info_out = (info, width, height,
                                               camera_info.for_output(info, width, height))
        cached[3].header = job.msg.header
        camera.publishers["camera_info"].publish(cached[3])

    def _publish_info(self, job, out, latency_ms):
        pubs = job.camera.publishers
        if "info" in pubs and job.config["publish_info"] \
                and pubs["info"].get_subscription_count():
            pubs["info"].publish(self._info(job.msg.header, out, latency_ms, job.pipeline))

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
    def _pipeline_status(self, camera):
        stats = camera.stats
        return pipeline_status(stats.counters, stats.stages["inference"], stats.latency_ms,
                               self.config["max_latency_ms"] or None, stats.stage_p50(),
                               stats.input_values())

    def _model_status(self):
        p = self.pipeline
        if p is None:
            return TaskStatus(OK, "unconfigured: no model loaded",
                              [("Model", self.config["model"]), ("State", "unconfigured")])
        status = model_status(p.backend, p.precision, p.entry.name, p.model_size,
                              self.power.summary())
        # Forward calls against frames: with several cameras, how many frames one call carried.
        batching = [("Cameras", "%d" % len(self.cameras)),
                    ("Forward calls", "%d" % self.forwards),
                    ("Frames per forward call", "%.2f" % (self.forward_frames / self.forwards)
                     if self.forwards else "no samples")]
        return status._replace(values=list(status.values) + batching)

    def _hardware_id(self):
        return "espnet_ros/%s" % (self.pipeline.device if self.pipeline is not None
                                  else self.config["device"])

    def destroy_node(self):
        # Parts may be missing when __init__ failed (rclpy may still destroy the node).
        if hasattr(self, "_rosout"):
            rosout.stop_forwarding(self._rosout)
        if hasattr(self, "cameras"):
            self._stop_threads()
            if self.power is not None:
                self.power.meter.close()
        return super().destroy_node()


def _of(cameras):
    """' of front' for a named camera in logs, '' for the single camera."""
    names = [c.name for c in cameras if c.name]
    return " of %s" % ", ".join(names) if names else ""


def _label_info_class(logger):
    try:  # vision_msgs: a ROS install, or the shared wheels
        from vision_msgs.msg import LabelInfo
    except ImportError as exc:
        logger.warning("~/label_info is off: vision_msgs is not importable (%s)" % exc)
        return None
    return LabelInfo
