"""``espnet-ros bag replay``: play a bag into a live segment_node and report speed and accuracy.

The node runs in its own process, as in a robot. This process publishes the bag's image and
camera_info topics (the bag's CDR bytes, header stamps kept), records the node's outputs into a
new bag, matches each label output to the frame it came from by header stamp, and scores it
against the bag's ground truth.

Pacing: *open loop* publishes at the bag's log times scaled by ``rate`` (1 = real time), like
``ros2 bag play``; *closed loop* publishes the next frame once the previous frame's label
arrived, the fastest rate the node keeps up with and the mode where nothing should drop.

Latency is measured on this process's monotonic clock, from publishing a frame to receiving
its label (bag stamps are old, so stamp-based latency would be meaningless). A frame sent
without a label output is dropped; the node's own /diagnostics counters are read before and
after the run as a cross-check.
"""
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

from ..bag.io import (
    COMPRESSED_TYPE,
    IMAGE_TYPE,
    BagError,
    BagReader,
    BagWriter,
    decode_image,
    iter_frames,
    label_array,
    segmentation_info_msgdef,
    typestore,
)
from ..bag.ledger import PRIMING_STAMP, GroundTruth, Ledger
from ..bag.report import latency_summary, replay_markdown, write_report
from ..bag.scoring import Scorer
from ..messages.cdr import cdr_restamp, cdr_stamp
from ..messages.diagnostics import TASK_PIPELINE
from .diagnostics_reader import DiagnosticsReader
from .node_process import NodeProcess

CLOSED_LOOP, OPEN_LOOP = "closed-loop", "open-loop"
OUTPUTS = ("label", "color_mask", "info")
SIM_LEAD_S = 60  # sim time: the clock starts this long before the bag while the node starts


@dataclass
class ReplayOptions:
    model: str = "espnet-p2q8-cityscapes"
    weights: str = ""
    size: Optional[Tuple[int, int]] = None      # model input (width, height); None: native
    device: str = "cpu"
    rate: float = 1.0                           # open loop: factor on the bag's timing
    closed_loop: bool = False
    loops: int = 1                              # passes over the bag; 0: until Ctrl-C
    limit: Optional[int] = None                 # images per pass
    remaps: Sequence[Tuple[str, str]] = ()      # bag topic -> published topic
    use_sim_time: bool = False
    image_topic: Optional[str] = None
    label_topic: Optional[str] = None
    evaluate: bool = True
    namespace: str = "/espnet_replay"
    attach: Optional[str] = None                # FQN of a running node; None: start one
    outputs: Sequence[str] = OUTPUTS
    record_inputs: bool = False
    out_dir: Path = Path("out/replay")
    out_storage: str = "mcap"
    out_version: int = 8
    frame_timeout: float = 10.0
    startup_timeout: float = 300.0
    node_params: Dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------- the replay
class Replay:
    """One replay: ROS entities of this process, the node, the ledger, the output bag."""

    def __init__(self, bag, topics, options, truth, entry, out_bag):
        import rclpy

        self.bag, self.topics, self.options, self.truth = bag, topics, options, truth
        self.out_bag = out_bag
        self.scorer = Scorer(entry) if truth is not None else None
        self.unlabelled = 0
        self.ledger = Ledger()
        self.notes = []
        remap = dict(options.remaps)
        self.image_out = remap.get(topics.image, topics.image)
        self.info_out = remap.get(topics.camera_info, topics.camera_info) if topics.camera_info else None

        self.context = rclpy.Context()
        rclpy.init(args=[], context=self.context)  # not sys.argv: our --remap FROM:=TO is no ROS arg
        try:
            self._create_entities(options, topics)
        except BaseException:
            rclpy.shutdown(context=self.context)
            raise

    def _create_entities(self, options, topics):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        self.ros = rclpy.create_node("espnet_bag_replay", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.ros)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
        image_cls = CompressedImage if topics.image_type == COMPRESSED_TYPE else Image
        self.pub_image = self.ros.create_publisher(image_cls, self.image_out, qos)
        self.pub_info = self.ros.create_publisher(CameraInfo, self.info_out, qos) if self.info_out else None
        self.pub_clock = None
        if options.use_sim_time:
            from rosgraph_msgs.msg import Clock
            self.clock_cls = Clock
            self.pub_clock = self.ros.create_publisher(Clock, "/clock", qos)

        self.node = NodeUnderTest(options, topics.image_type, self.image_out, self.info_out,
                                  Path(options.out_dir) / "node.log")
        record_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                                reliability=ReliabilityPolicy.RELIABLE)
        self.output_types = {"label": Image, "color_mask": Image}
        if "info" in options.outputs:
            from ..ros.interfaces import load_segmentation_info
            info_cls, reason = load_segmentation_info()
            if info_cls is None:
                self.notes.append("~/info not recorded: %s" % reason)
            else:
                self.output_types["info"] = info_cls
                msgdef, rihs01 = segmentation_info_msgdef()
                self.out_bag.add_topic(self.node.fqn + "/info", "espnet_ros/msg/SegmentationInfo",
                                       msgdef=msgdef, rihs01=rihs01)
        self.primed = set()
        for name in options.outputs:
            if name in self.output_types:
                topic = self.node.fqn + "/" + name
                if name != "info":
                    self.out_bag.add_topic(topic, IMAGE_TYPE)
                self.ros.create_subscription(self.output_types[name], topic,
                                             lambda raw, n=name, t=topic: self._on_output(n, t, raw),
                                             record_qos, raw=True)
        self.diagnostics = []  # (monotonic ns, counters)
        self.reader = DiagnosticsReader(self.node.fqn, keep=2)
        self.ros.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.bag_time = None  # the bag time last published on /clock
        self.clock_cap = None
        self.restamped = 0
        self.passes = 0
        self.node.start()  # last: nothing after it can fail and leave the process behind

    # -------------------------------------------------------------- callbacks
    def _on_output(self, name, topic, raw):
        now = time.monotonic_ns()
        stamp = cdr_stamp(raw)
        if stamp == PRIMING_STAMP:
            self.primed.add(name)
            return
        self.out_bag.write(topic, stamp, raw)
        if name != "label":
            return
        entry = self.ledger.resolve(stamp, now)
        if entry is None or self.scorer is None:
            return
        gt = self.truth.get(entry.bag_stamp)
        if gt is None:
            self.unlabelled += 1
            return
        msg = typestore().deserialize_cdr(raw, IMAGE_TYPE)
        self.scorer.add(label_array(msg, topic), gt, "stamp %d.%09d" % divmod(entry.bag_stamp, 10 ** 9))

    def _on_diagnostics(self, msg):
        if self.reader.feed(msg):
            counters = self.reader.counters(self.reader.reports[-1].statuses.get(TASK_PIPELINE))
            if counters is not None:
                self.diagnostics.append((time.monotonic_ns(), counters))

    # -------------------------------------------------------------- helpers
    def spin(self, seconds):
        self.executor.spin_once(timeout_sec=max(0.0, seconds))

    def spin_until(self, condition, timeout, clock_from=None, clock_cap=None):
        """Spins until ``condition()`` or ``timeout`` s; with sim time, /clock runs from ``clock_from``."""
        start = time.monotonic()
        while not condition():
            if time.monotonic() - start > timeout:
                return False
            self.node.check_alive()
            self.spin(min(0.02, start + timeout - time.monotonic()))
            if clock_from is not None:
                bag_ns = clock_from + int((time.monotonic() - start) * 1e9)
                self.publish_clock(bag_ns if clock_cap is None else min(bag_ns, clock_cap))
        return True

    def publish_clock(self, bag_ns):
        """/clock (sim time) never goes backwards."""
        if self.pub_clock is None or bag_ns is None:
            return
        if self.bag_time is not None and bag_ns <= self.bag_time:
            return
        self.bag_time = bag_ns
        msg = self.clock_cls()
        msg.clock.sec, msg.clock.nanosec = bag_ns // 10 ** 9, bag_ns % 10 ** 9
        self.pub_clock.publish(msg)

    def counters_after(self, since_ns, timeout=6.0, clock_cap=None):
        """The node's counters from the second diagnostics message after ``since_ns``.

        The second, because the first may have been assembled before the last frame finished.
        With sim time the node's 1 Hz diagnostics timer runs on /clock, so the clock runs here.
        """
        def fresh():
            return [c for t, c in self.diagnostics if t > since_ns]
        self.spin_until(lambda: len(fresh()) >= 2, timeout, clock_from=self.bag_time, clock_cap=clock_cap)
        found = fresh()
        return found[1] if len(found) >= 2 else (found[-1] if found else None)

    # -------------------------------------------------------------- phases
    def prime(self, first_raw):
        """Waits for the node, then sends one unstamped frame until every output answers.

        With sim time, /clock meanwhile runs from SIM_LEAD_S before the bag's start, so it
        never has to go back when the bag starts.
        """
        deadline = time.monotonic() + self.options.startup_timeout
        self.clock_cap = self.bag.reader.start_time - 1
        self.publish_clock(self.bag.reader.start_time - SIM_LEAD_S * 10 ** 9)
        ready = self.spin_until(lambda: self.pub_image.get_subscription_count() > 0,
                                self.options.startup_timeout, self.bag_time, self.clock_cap)
        if not ready:
            raise BagError("no subscriber on %s within %.0f s (is the node running and remapped?)"
                           % (self.image_out, self.options.startup_timeout))
        wanted = {n for n in self.options.outputs if n in self.output_types}
        priming = cdr_restamp(first_raw, PRIMING_STAMP)
        while not wanted <= self.primed:
            if time.monotonic() > deadline:
                raise BagError("the node did not answer on %s within %.0f s (log: %s)"
                               % (", ".join(sorted(wanted - self.primed)), self.options.startup_timeout,
                                  self.node.log_path))
            self.pub_image.publish(priming)
            self.spin_until(lambda: wanted <= self.primed, 1.0, self.bag_time, self.clock_cap)

    def play(self):
        """Publishes every pass of the bag; returns True when interrupted."""
        opts = self.options
        wanted = [self.topics.image] + ([self.topics.camera_info] if self.pub_info else [])
        images = min(self.bag.message_count(self.topics.image), opts.limit or 1 << 62)
        duration = max(0, self.bag.reader.end_time - self.bag.reader.start_time)
        shift = duration + max(1, duration // max(1, images - 1))  # next pass starts one period later
        start_wall = None
        first_bag = None
        passes = 0
        try:
            while opts.loops == 0 or passes < opts.loops:
                sent_this_pass = 0
                for topic, _, log_ns, raw in self.bag.messages(wanted):
                    if topic == self.topics.image and sent_this_pass >= images:
                        break
                    bag_ns = log_ns + passes * shift
                    if first_bag is None:
                        first_bag, start_wall = bag_ns, time.monotonic()
                    if not opts.closed_loop:
                        due = start_wall + (bag_ns - first_bag) * 1e-9 / opts.rate
                        self._wait_until(due, first_bag, start_wall)
                    self.publish_clock(bag_ns)
                    raw = bytes(raw)  # rclpy publishes serialized data given as bytes only
                    stamp = cdr_stamp(raw)
                    if passes:
                        raw = cdr_restamp(raw, stamp + passes * shift)
                    if topic != self.topics.image:
                        self.pub_info.publish(raw)
                        continue
                    self._send_image(raw, stamp, bag_ns)
                    sent_this_pass += 1
                if sent_this_pass == 0:
                    break
                passes += 1
        except KeyboardInterrupt:
            return True
        finally:
            self.passes = passes
        return False

    def _wait_until(self, due, first_bag, start_wall):
        while True:
            self.node.check_alive()
            left = due - time.monotonic()
            if left <= 0:
                return
            self.spin(min(left, 0.01))
            if self.pub_clock is not None:
                elapsed = time.monotonic() - start_wall
                self.publish_clock(first_bag + int(elapsed * self.options.rate * 1e9))

    def _send_image(self, raw, bag_stamp, bag_ns):
        sent_stamp = cdr_stamp(raw)
        if sent_stamp == PRIMING_STAMP or sent_stamp in self.ledger.sent:
            # unstamped or repeated stamps cannot be matched: use the (unique) bag time instead
            sent_stamp = bag_ns
            while sent_stamp in self.ledger.sent:
                sent_stamp += 1
            raw = cdr_restamp(raw, sent_stamp)
            self.restamped += 1
        now = time.monotonic_ns()
        self.pub_image.publish(raw)
        self.ledger.add(sent_stamp, bag_stamp, now)
        if self.options.record_inputs:
            self.out_bag.write(self.image_out, sent_stamp, raw, self.topics.image_type)
        if self.options.closed_loop:
            # the clock stays at this frame's time: the next frame may be close
            if not self.spin_until(lambda: self.ledger.done(sent_stamp), self.options.frame_timeout):
                self.notes.append("no output within %.1f s for the frame stamped %d.%09d; went on"
                                  % ((self.options.frame_timeout,) + divmod(sent_stamp, 10 ** 9)))
        else:
            self.spin(0)

    def drain(self):
        """Waits for outputs still in flight: the node holds at most two frames (one running)."""
        last = self.ledger.last()
        if last is None:
            return
        seen = [s.latency_ms for s in self.ledger.sent.values() if s.latency_ms is not None]
        idle = min(self.options.frame_timeout, max(2.0, 4e-3 * max(seen, default=0.0)))
        while True:  # until the last frame answered, or nothing came for ``idle`` seconds
            before = self.ledger.outputs
            if self.spin_until(lambda: last.latency_ms is not None, idle, clock_from=self.bag_time):
                return
            if self.ledger.outputs == before:
                return

    def close(self):
        import rclpy
        code = self.node.stop()
        self.executor.shutdown()
        self.ros.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)
        return code


# ------------------------------------------------------------------------------- entry point
def check_sizes(bag, topics):
    """Fails early when the first labelled frame's label and image sizes differ."""
    for _, msg, gt in iter_frames(bag, topics):
        if gt is None:
            continue
        if topics.image_type == COMPRESSED_TYPE:
            height, width = decode_image(msg, topics.image_type).shape[:2]
        else:
            width, height = int(msg.width), int(msg.height)
        if (height, width) != gt.shape:
            raise BagError("label/image size mismatch in %s: %s is %dx%d, %s is %dx%d"
                           % (bag.path, topics.label, gt.shape[1], gt.shape[0], topics.image, width, height))
        return


def run_replay(bag_path, options, log=print):
    """Runs the replay; writes the report and output bag under ``options.out_dir``; returns the report."""
    from ..models.registry import lookup
    from ..ros.env import apply_localhost_env

    if options.rate <= 0 and not options.closed_loop:
        raise BagError("rate must be positive (or use closed loop), got %s" % options.rate)
    if "label" not in options.outputs:
        raise BagError("the label output is needed to match frames; outputs: %s" % ", ".join(options.outputs))
    out_dir = Path(options.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        entry, _ = lookup(options.model)
    except (KeyError, ValueError) as exc:
        raise BagError(str(exc).strip("'\"")) from exc
    apply_localhost_env()
    with BagReader(bag_path) as bag:
        topics = bag.choose_topics(options.image_topic, options.label_topic)
        if not options.evaluate:
            topics = topics._replace(label=None)
        truth = None
        if topics.label:
            check_sizes(bag, topics)
            truth = GroundTruth.load(bag, topics.label)
        first_raw = bytes(next(raw for _, _, _, raw in bag.messages([topics.image])))
        out_path = out_dir / "outputs"
        with BagWriter(out_path, options.out_storage, options.out_version, overwrite=True) as out_bag:
            out_bag.set_custom_data("espnet_ros.replay_of", str(bag_path))
            replay = Replay(bag, topics, options, truth, entry, out_bag)
            interrupted = False
            try:
                log("replay: waiting for %s (model %s) ..." % (replay.node.fqn, options.model))
                replay.prime(first_raw)
                before = replay.counters_after(time.monotonic_ns(), clock_cap=replay.clock_cap)
                log("replay: node ready; playing %s %s" % (
                    bag_path, "closed loop" if options.closed_loop else "at %gx" % options.rate))
                interrupted = replay.play()
                replay.drain()
                after = replay.counters_after(time.monotonic_ns())
            finally:
                code = replay.close()
            output_topics = dict(out_bag.counts)
    report = _report(bag_path, options, topics, replay, before, after, interrupted, code, output_topics,
                     entry, out_path)
    title = "%s, %s, %s" % (Path(bag_path).name, options.model, report["mode"]
                            if options.closed_loop else "%gx" % options.rate)
    report["files"] = {k: str(v) for k, v in write_report(report, out_dir, "replay", replay_markdown,
                                                          replay.ledger.timeline(), title).items()}
    return report


def _report(bag_path, options, topics, replay, before, after, interrupted, exit_code, output_topics,
            entry, out_bag_path):
    ledger = replay.ledger
    latencies = [s.latency_ms for s in ledger.sent.values() if s.latency_ms is not None]
    sent, outputs = len(ledger.sent), len(latencies)
    elapsed = ((ledger.last_output_ns or ledger.last_sent_ns or 0) - (ledger.first_sent_ns or 0)) * 1e-9
    send_span = ((ledger.last_sent_ns or 0) - (ledger.first_sent_ns or 0)) * 1e-9
    counters = None
    consistent = None
    if before and after:
        counters = {k: after[k] - before[k] for k in after}
        # every frame sent is lost in transport, dropped or rejected by the node, or answered
        lost = sent - counters["received"]
        consistent = sent - outputs == lost + counters["dropped"] + counters["rejected"]
    dropped_stamps = [stamp for stamp, s in ledger.sent.items() if s.latency_ms is None]
    size = list(options.size) if options.size else list(entry.input_size)
    notes = list(replay.notes)
    if getattr(replay, "restamped", 0):
        notes.append("%d frame(s) had a zero or repeated header stamp and were sent stamped with their "
                     "bag time" % replay.restamped)
    if replay.unlabelled:
        notes.append("%d output(s) had no ground truth in the bag" % replay.unlabelled)
    if ledger.unexpected:
        notes.append("%d label output(s) matched no frame sent by this replay" % ledger.unexpected)
    if options.attach:
        notes.append("attached to a running node: --model must name the model it serves")
    return {
        "bag": str(bag_path), "mode": CLOSED_LOOP if options.closed_loop else OPEN_LOOP,
        "rate": None if options.closed_loop else options.rate, "loops": getattr(replay, "passes", 0),
        "use_sim_time": options.use_sim_time, "model": options.model, "input_size": size,
        "image_topic": topics.image, "published_image_topic": replay.image_out,
        "label_topic": topics.label, "node": replay.node.fqn, "attached": bool(options.attach),
        "node_exit_code": exit_code, "interrupted": interrupted,
        "frames": {"sent": sent, "outputs": outputs, "dropped": sent - outputs,
                   "dropped_stamps_ns": dropped_stamps[:100]},
        "throughput_fps": outputs / elapsed if elapsed > 0 else None,
        "input_rate_hz": (sent - 1) / send_span if send_span > 0 else None,
        "duration_s": elapsed,
        "latency_ms": latency_summary(latencies),
        "node_counters": counters, "counters_consistent": consistent,
        "accuracy": replay.scorer.summary() if replay.scorer is not None else None,
        "output_bag": str(out_bag_path), "output_topics": output_topics,
        "notes": notes,
        "timeline": [{"sent_s": t, "latency_ms": lat} for t, lat in ledger.timeline()],
    }


class NodeUnderTest:
    """The segment_node a bag replay drives: started in its own process (``NodeProcess``), or
    a running one to attach to (``options.attach``)."""

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
