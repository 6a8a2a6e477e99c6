"""``espnet-ros bench node``: bare inference versus the same model through the node.

In one run, on one frame size: (1) the inference core in this process, frame after frame;
(2) the node in its own process, fed by this process over DDS with two frames always ahead of
its outputs (throughput); (3) the node fed at half the bare rate (latency, input stamp to
output received here). The ratio of (2) to (1) and the p50 latency added are the figures of merit.
"""
import json
import time
from pathlib import Path

import cv2
import numpy as np

from .env import apply_localhost_env


def _percentiles(values):
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


def bare_inference(model, size, frame, seconds, warmup=3):
    from ..inference import Segmenter

    segmenter = Segmenter.from_zoo(model, input_size=size)
    for _ in range(warmup):
        segmenter.segment(frame)
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        t0 = time.perf_counter()
        segmenter.segment(frame)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"fps": len(times) / (sum(times) / 1e3), "latency_ms": _percentiles(times),
            "frames": len(times)}


class _NodeRig:
    """The node process plus this process's publisher and label subscriber."""

    def __init__(self, model, size, outputs, log_path):
        import rclpy
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from .node_process import NodeProcess

        self.namespace = "/espnet_bench"
        params = {"model": model, "input_width": size[0], "input_height": size[1],
                  "warmup_frames": 3, "min_fps": 0.0}
        for name in ("label", "color_mask", "overlay"):
            params["publish_" + name] = str(name in outputs).lower()
        self.process = NodeProcess(self.namespace, params, log_path)
        self.proc = self.process.proc
        self.node = rclpy.create_node("espnet_bench_driver")
        self.pub = self.node.create_publisher(Image, self.namespace + "/image", 1)
        self.received = []  # (receive ns, stamp ns)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        base = self.namespace + "/espnet_segmentation/"
        for name in outputs:
            callback = self._on_output if name == outputs[0] else (lambda msg: None)
            self.node.create_subscription(Image, base + name, callback, qos)
        from diagnostic_msgs.msg import DiagnosticArray
        self.pipeline_values = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if status.name.endswith("espnet_segmentation: frame pipeline"):
                self.pipeline_values = {kv.key: kv.value for kv in status.values}

    def _on_output(self, msg):
        now = self.node.get_clock().now().nanoseconds
        self.received.append((now, msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec))

    def wait_ready(self, timeout=300):
        import rclpy
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.1)
            if self.proc.poll() is not None:
                raise RuntimeError("the node exited with code %d: %s (log: %s)"
                                   % (self.proc.returncode, self.process.last_error(),
                                      self.process.log_path))
            if self.pub.get_subscription_count() and len(self.received) >= 3:
                return
            self.publish(self.frame_msg)
        raise RuntimeError("the node did not answer within %d s" % timeout)

    def publish(self, msg):
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.pub.publish(msg)

    def saturate(self, seconds, in_flight=2):
        """Keeps ``in_flight`` frames ahead of the node's outputs for ``seconds``.

        The node always finds a fresh frame when it finishes one, while this process sends no
        more frames than the node can take (flooding a 2-core machine with 1.5 MB messages would
        measure the publisher, not the node). Returns the outputs received meanwhile.
        """
        import rclpy
        self.received = []
        sent = 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            while sent < len(self.received) + in_flight:
                self.publish(self.frame_msg)
                sent += 1
            rclpy.spin_once(self.node, timeout_sec=0.01)
        return list(self.received)

    def drive(self, rate, seconds):
        """Publishes at ``rate`` for ``seconds``; returns the outputs received meanwhile."""
        import rclpy
        self.received = []
        period = 1.0 / rate
        start = next_time = time.monotonic()
        while time.monotonic() - start < seconds:
            if time.monotonic() >= next_time:
                self.publish(self.frame_msg)
                next_time += period
            rclpy.spin_once(self.node, timeout_sec=max(0.0, min(0.005, next_time - time.monotonic())))
        end = time.monotonic() + 2.0
        while time.monotonic() < end:  # collect the last outputs in flight
            rclpy.spin_once(self.node, timeout_sec=0.05)
        return list(self.received)

    def close(self):
        self.node.destroy_node()
        self.process.stop()


def _throughput(received):
    if len(received) < 2:
        return 0.0
    times = sorted(r for r, _ in received)
    return (len(times) - 1) / ((times[-1] - times[0]) * 1e-9)


def run_bench(model, size, frame, seconds, out_dir, outputs=("label",)):
    """Runs the three measurements; returns the report dict (also written as JSON/Markdown)."""
    import rclpy

    from .image_codec import fill_image_msg

    apply_localhost_env()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    bare = bare_inference(model, size, frame, seconds)
    rclpy.init()
    rig = None
    try:
        from sensor_msgs.msg import Image
        rig = _NodeRig(model, size, list(outputs), out_dir / "bench_node.log")
        rig.frame_msg = fill_image_msg(Image(), frame, "bgr8")
        rig.frame_msg.header.frame_id = "camera"
        rig.wait_ready()
        flat_out = rig.saturate(seconds)
        node_inference = rig.pipeline_values.get("Inference p50 (ms)")
        paced_rate = max(0.5, 0.5 * bare["fps"])
        paced = rig.drive(rate=paced_rate, seconds=max(seconds, 10.0 / paced_rate))
    finally:
        if rig is not None:
            rig.close()
        rclpy.shutdown()
    node_fps = _throughput(flat_out)
    latencies = [(r - s) * 1e-6 for r, s in paced]
    report = {
        "model": model, "size": "%dx%d" % size, "outputs": list(outputs),
        "bare": bare,
        "node": {"fps": node_fps, "frames": len(flat_out),
                 "inference_ms_p50_in_node": node_inference,
                 "latency_ms": _percentiles(latencies) if latencies else None,
                 "latency_rate_hz": paced_rate, "latency_frames": len(latencies)},
    }
    report["throughput_ratio"] = node_fps / bare["fps"] if bare["fps"] else 0.0
    if latencies:
        report["added_latency_p50_ms"] = report["node"]["latency_ms"]["p50"] - bare["latency_ms"]["p50"]
    (out_dir / "bench_node.json").write_text(json.dumps(report, indent=2))
    (out_dir / "bench_node.md").write_text(markdown(report))
    return report


def markdown(report):
    bare, node = report["bare"], report["node"]
    lat = node["latency_ms"] or {"p50": float("nan"), "p95": float("nan")}
    lines = [
        "| %s @ %s (outputs: %s) | FPS | latency p50 (ms) | latency p95 (ms) |"
        % (report["model"], report["size"], ", ".join(report["outputs"])),
        "| --- | --- | --- | --- |",
        "| bare inference (this process) | %.2f | %.1f | %.1f |"
        % (bare["fps"], bare["latency_ms"]["p50"], bare["latency_ms"]["p95"]),
        "| through the node (across processes) | %.2f | %.1f | %.1f |"
        % (node["fps"], lat["p50"], lat["p95"]),
        "",
        "throughput ratio node/bare: %.3f (target >= 0.90); added p50 latency: %.1f ms "
        "(target <= 10 ms); inference p50 inside the node while saturated: %s ms"
        % (report["throughput_ratio"], report.get("added_latency_p50_ms", float("nan")),
           node.get("inference_ms_p50_in_node")),
    ]
    return "\n".join(lines) + "\n"
