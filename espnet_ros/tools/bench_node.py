"""``espnet-ros bench node``: the same work in one process against the node across processes.

In interleaved rounds, on one camera frame size and one model input size:

1. **in process**: what the node does to a frame, without ROS: ``messages.decode.decode`` of the camera
   message, ``Pipeline.run`` with the requested renderings (and the ``~/info`` class counts),
   frame after frame;
2. **node, paced**: the node in its own process, fed over DDS at half the in-process rate
   (latency: input stamp to output received here);
3. **node, saturated**: fed with two frames always ahead of its outputs (throughput); its
   per-stage times are read from its /diagnostics right after.

This process drives the node as cheaply as it can (pre-serialized frames, restamped in place;
outputs taken as raw bytes, only their stamps read), so the node's share of the two cores is
what it would have next to a camera driver. The ratio of (2) to (1), the latency that (3) adds
to (1), and the node's own per-stage times (its /diagnostics) are the figures of merit.
"""
import json
import os
import re
import statistics
import time
from pathlib import Path

import numpy as np

from ..ros.env import apply_localhost_env

IMAGE_OUTPUTS = ("label", "color_mask", "overlay", "confidence")
OUTPUTS = IMAGE_OUTPUTS + ("info",)


def _percentiles(values):
    if not values:
        return None
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


def _cpu_seconds(pid=None):
    """User + system CPU seconds of a process (this one by default)."""
    path = "/proc/%s/stat" % (pid or "self")
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class InProcess:
    """The node's per-frame work on the same pipeline settings, in this process."""

    def __init__(self, model, model_size, outputs, warmup=3, threads=0):
        import torch

        from ..inference import Pipeline
        from ..messages.params import torch_threads

        # The node's setting: the same work on the same number of threads.
        torch.set_num_threads(torch_threads({"threads": threads, "device": "cpu"}))
        self.threads = torch.get_num_threads()
        self.outputs = outputs
        self.pipeline = Pipeline.build(model, input_size=model_size, warmup_frames=warmup)

    def frame(self, msg):
        from ..messages.decode import decode

        image = decode(msg)
        out = self.pipeline.run(image.pixels, image.order, "input",
                                color="color_mask" in self.outputs,
                                overlay="overlay" in self.outputs,
                                confidence="confidence" in self.outputs)
        if "info" in self.outputs:
            np.bincount(out.labels.ravel(), minlength=self.pipeline.entry.num_classes)
        return out

    def run(self, msg, seconds):
        times = []
        start = time.perf_counter()
        while time.perf_counter() - start < seconds or len(times) < 5:
            t0 = time.perf_counter()
            self.frame(msg)
            times.append((time.perf_counter() - t0) * 1e3)
        return {"fps": len(times) / (sum(times) / 1e3), "latency_ms": _percentiles(times),
                "frames": len(times)}


class NodeRig:
    """The node process plus this process's raw publisher and raw output subscribers."""

    def __init__(self, model, model_size, outputs, log_path, env=None, node_params=None):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from ..ros.interfaces import load_segmentation_info
        from .diagnostics_reader import DiagnosticsReader
        from .node_process import NodeProcess

        self.namespace = "/espnet_bench"
        params = {"model": model, "input_width": model_size[0], "input_height": model_size[1],
                  "warmup_frames": 3, "min_fps": 0.0}
        for name in OUTPUTS:
            params["publish_" + name] = str(name in outputs).lower()
        params.update(node_params or {})
        self.process = NodeProcess(self.namespace, params, log_path, extra_env=env)
        self.proc = self.process.proc
        self.node = rclpy.create_node("espnet_bench_driver")
        self.executor = rclpy.executors.SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.pub = self.node.create_publisher(Image, self.namespace + "/image", 1)
        self.received = []  # (receive ns, stamp ns) of the first output
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        base = self.namespace + "/espnet_segmentation/"
        self.skipped = {}
        info_cls = None
        if "info" in outputs:
            info_cls, reason = load_segmentation_info()
            if info_cls is None:
                self.skipped["info"] = reason
        self.outputs = [o for o in outputs if o not in self.skipped]
        for name in self.outputs:
            msg_type = info_cls if name == "info" else Image
            callback = self._on_output if name == self.outputs[0] else (lambda raw: None)
            self.node.create_subscription(msg_type, base + name, callback, qos, raw=True)
        self.diagnostics = DiagnosticsReader(self.namespace + "/espnet_segmentation")
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.feed, 10)

    def _on_output(self, raw):
        from ..messages.cdr import cdr_stamp

        self.received.append((time.time_ns(), cdr_stamp(raw)))

    def spin(self, timeout):
        self.executor.spin_once(timeout_sec=timeout)

    def publish(self):
        from ..messages.cdr import cdr_restamp

        self.pub.publish(cdr_restamp(self.frame_raw, time.time_ns()))

    def wait_ready(self, timeout=300):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.spin(0.1)
            if self.proc.poll() is not None:
                raise RuntimeError("the node exited with code %d: %s (log: %s)"
                                   % (self.proc.returncode, self.process.last_error(),
                                      self.process.log_path))
            if self.pub.get_subscription_count() and len(self.received) >= 3:
                return
            self.publish()
        raise RuntimeError("the node did not answer within %d s" % timeout)

    def saturate(self, seconds, in_flight=3):
        """Keeps ``in_flight`` frames ahead of the node's outputs for ``seconds``.

        Three: one being published, one in the model, one waiting, so the node always finds a
        fresh frame when its model thread is free, while this process sends no more frames
        than the node can take (flooding a 2-core machine with megabyte messages would measure
        the publisher, not the node). Returns the outputs received meanwhile.
        """
        self.received = []
        sent = 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            while sent < len(self.received) + in_flight:
                self.publish()
                sent += 1
            self.spin(0.01)
        return list(self.received)

    def drive(self, rate, seconds):
        """Publishes at ``rate`` for ``seconds``; returns the outputs received meanwhile."""
        self.received = []
        period = 1.0 / rate
        start = next_time = time.monotonic()
        while time.monotonic() - start < seconds:
            if time.monotonic() >= next_time:
                self.publish()
                next_time += period
            self.spin(max(0.0, min(0.005, next_time - time.monotonic())))
        end = time.monotonic() + 2.0
        while time.monotonic() < end:  # collect the last outputs in flight
            self.spin(0.05)
        return list(self.received)

    def settle_diagnostics(self, timeout=3.0):
        """Spins until a /diagnostics report newer than now arrives (the stages of what ran)."""
        since = time.monotonic()
        end = since + timeout
        while time.monotonic() < end:
            self.spin(0.05)
            if self.diagnostics.reports and self.diagnostics.reports[-1].time > since:
                return

    def close(self):
        self.node.destroy_node()
        return self.process.stop()


def _throughput(received):
    if len(received) < 2:
        return 0.0
    times = sorted(r for r, _ in received)
    return (len(times) - 1) / ((times[-1] - times[0]) * 1e-9)


def camera_message(frame):
    """The frame as a bgr8 camera message (serialized), as a driver would publish it."""
    from rclpy.serialization import serialize_message

    from ..messages.encode import image_message, rclpy_kit
    kit = rclpy_kit()
    msg = image_message(kit, kit.Header(frame_id="camera"), frame, "bgr8")
    return msg, serialize_message(msg)


def run_bench(model, frame, frame_size, model_size, seconds, out_dir, outputs=("label",),
              rounds=3, env=None, threads=0, pipelining=True):
    """Runs the interleaved rounds; returns the report dict (also written as JSON/Markdown)."""
    import rclpy

    from ..bench.frames import frame_at

    apply_localhost_env()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = frame_at(frame, frame_size)
    inproc = InProcess(model, model_size, outputs, threads=threads)
    rclpy.init()
    rig = None
    per_round = []
    try:
        msg, raw = camera_message(frame)
        rig = NodeRig(model, model_size, list(outputs), out_dir / "bench_node.log", env,
                      {"threads": threads, "pipelining": str(pipelining).lower()})
        rig.frame_raw = raw
        rig.wait_ready()
        node_threads = served_threads(rig.process.log())
        for index in range(rounds):
            bare = inproc.run(msg, seconds)
            paced_rate = max(0.5, 0.5 * bare["fps"])
            paced = rig.drive(rate=paced_rate, seconds=max(seconds, 10.0 / paced_rate))
            latencies = [(r - s) * 1e-6 for r, s in paced]
            node_cpu, own_cpu, wall = _cpu_seconds(rig.proc.pid), _cpu_seconds(), time.monotonic()
            flat_out = rig.saturate(seconds)
            wall = time.monotonic() - wall
            node_cpu = (_cpu_seconds(rig.proc.pid) - node_cpu) / wall
            own_cpu = (_cpu_seconds() - own_cpu) / wall
            rig.settle_diagnostics()
            stages = rig.diagnostics.stage_p50()  # the saturated frames fill the node's window
            node_fps = _throughput(flat_out)
            result = {"round": index + 1, "in_process": bare,
                      "node": {"fps": node_fps, "frames": len(flat_out),
                               "cpu_cores": node_cpu, "driver_cpu_cores": own_cpu,
                               "stage_p50_ms": stages,
                               "latency_ms": _percentiles(latencies),
                               "latency_rate_hz": paced_rate, "latency_frames": len(latencies)},
                      "throughput_ratio": node_fps / bare["fps"] if bare["fps"] else 0.0}
            if latencies:
                result["added_latency_ms"] = {
                    q: result["node"]["latency_ms"][q] - bare["latency_ms"][q]
                    for q in ("p50", "p95")}
            per_round.append(result)
            print(round_line(result), flush=True)
    finally:
        node_exit = rig.close() if rig is not None else None
        rclpy.shutdown()
    report = summarize(model, frame_size, model_size, outputs, seconds, per_round)
    report.update(threads=inproc.threads, node_threads=node_threads, pipelining=pipelining)
    report["skipped_outputs"] = rig.skipped if rig is not None else {}
    report["node_exit_code"] = node_exit
    (out_dir / "bench_node.json").write_text(json.dumps(report, indent=2))
    (out_dir / "bench_node.md").write_text(markdown(report))
    return report


def served_threads(log):
    """The torch threads a node serves with, from its "serving" line (None: not found); with
    ``threads: 0`` the node may give a core back (params.keep_every_core)."""
    found = re.search(r"(\d+) torch threads\)", log)
    return int(found.group(1)) if found else None


def summarize(model, frame_size, model_size, outputs, seconds, per_round):
    ratios = [r["throughput_ratio"] for r in per_round]
    added = [r["added_latency_ms"] for r in per_round if "added_latency_ms" in r]
    stage_names = []
    for r in per_round:
        stage_names += [s for s in r["node"]["stage_p50_ms"] if s not in stage_names]
    stages = {s: statistics.median([r["node"]["stage_p50_ms"][s] for r in per_round
                                    if s in r["node"]["stage_p50_ms"]]) for s in stage_names}
    return {
        "model": model, "frame_size": "%dx%d" % tuple(frame_size),
        "model_size": "%dx%d" % tuple(model_size), "outputs": list(outputs),
        "seconds": seconds, "rounds": per_round,
        "throughput_ratio": statistics.median(ratios) if ratios else 0.0,
        "throughput_ratio_range": [min(ratios), max(ratios)] if ratios else None,
        "added_latency_ms": {q: statistics.median([a[q] for a in added]) for q in ("p50", "p95")}
        if added else None,
        "node_stage_p50_ms": stages,
    }


def round_line(r):
    added = r.get("added_latency_ms") or {"p50": float("nan"), "p95": float("nan")}
    return ("round %d: in process %.1f FPS, node %.1f FPS, ratio %.3f, added latency p50 %+.1f "
            "ms p95 %+.1f ms, node CPU %.2f cores" % (
                r["round"], r["in_process"]["fps"], r["node"]["fps"], r["throughput_ratio"],
                added["p50"], added["p95"], r["node"]["cpu_cores"]))


def markdown(report):
    lines = [
        "%s, model input %s, camera frames %s bgr8, outputs: %s; torch threads: %s in process, "
        "%s in the node; node pipelining: %s" % (
            report["model"], report["model_size"], report["frame_size"],
            ", ".join(report["outputs"]), report.get("threads"), report.get("node_threads"),
            report.get("pipelining")),
        "",
        "| round | in process FPS | in process p50 / p95 ms | node FPS | ratio | node latency "
        "p50 / p95 ms | added p50 / p95 ms | node CPU (cores) | driver CPU (cores) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    nan = {"p50": float("nan"), "p95": float("nan")}
    for r in report["rounds"]:
        bare, node = r["in_process"], r["node"]
        lat, added = node["latency_ms"] or nan, r.get("added_latency_ms") or nan
        lines.append("| %d | %.2f | %.1f / %.1f | %.2f | %.3f | %.1f / %.1f | %+.1f / %+.1f | "
                     "%.2f | %.2f |" % (r["round"], bare["fps"], bare["latency_ms"]["p50"],
                                        bare["latency_ms"]["p95"], node["fps"],
                                        r["throughput_ratio"], lat["p50"], lat["p95"],
                                        added["p50"], added["p95"], node["cpu_cores"],
                                        node["driver_cpu_cores"]))
    added = report["added_latency_ms"] or nan
    lo, hi = report["throughput_ratio_range"] or (float("nan"), float("nan"))
    lines += [
        "",
        "throughput ratio node / in process: median %.3f (rounds %.3f-%.3f); added latency "
        "at half rate: p50 %+.1f ms, p95 %+.1f ms (medians over rounds)"
        % (report["throughput_ratio"], lo, hi, added["p50"], added["p95"]),
        "",
        "node stage p50 (ms, its /diagnostics while saturated; median over rounds): "
        + ", ".join("%s %.2f" % kv for kv in report["node_stage_p50_ms"].items()),
    ]
    for name, reason in report.get("skipped_outputs", {}).items():
        lines.append("output %s not measured: %s" % (name, reason))
    return "\n".join(lines) + "\n"
