"""``espnet-ros demo``: node + camera source in separate processes, watched live.

The node starts through ``ros2 launch espnet_ros segment.launch.py`` where the launch system
and the package's install tree are there, else directly. Prints the time from that start to
the first label, then FPS, latency, inference time and power once a second from the node's own
outputs and /diagnostics, and writes a few overlay PNGs and a summary (JSON and Markdown).
Ctrl-C (SIGINT) or SIGTERM stops everything cleanly.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ..ros.env import localhost_env
from ..ros.shutdown import StopRequested, init_ros, shutdown_ros
from .node_process import LaunchedNode, NodeProcess, ros2_launch_unavailable

STARTERS = ("auto", "launch", "direct")


def camera_command(source, rate, encoding, topic, count=0, size=None):
    cmd = [sys.executable, "-m", "espnet_ros.cli", "camera", str(source), "--rate", str(rate),
           "--encoding", encoding, "--topic", topic]
    if count:
        cmd += ["--count", str(count)]
    if size:
        cmd += ["--size", "%dx%d" % size]
    return cmd


class Watcher:
    """Subscribes to the node's outputs and diagnostics and keeps the numbers."""

    def __init__(self, node, namespace, out_dir, keep_overlays):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from .diagnostics_reader import DiagnosticsReader

        self.node = node
        self.out_dir = out_dir
        self.keep = keep_overlays
        self.saved = []
        self.stamps = []        # (receive monotonic, latency ms from the input stamp)
        self.first_label = None  # monotonic time of the first ~/label
        qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        base = namespace.rstrip("/") + "/espnet_segmentation"
        self.diagnostics = DiagnosticsReader(base, keep=10)
        node.create_subscription(Image, base + "/overlay", self._on_overlay, qos)
        node.create_subscription(Image, base + "/label", self._on_label, qos)
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.feed, 10)

    def _on_label(self, _msg):
        if self.first_label is None:
            self.first_label = time.monotonic()

    def _on_overlay(self, msg):
        now_ns = self.node.get_clock().now().nanoseconds
        stamp_ns = msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec
        self.stamps.append((time.monotonic(), (now_ns - stamp_ns) * 1e-6))
        if len(self.saved) < self.keep and len(self.stamps) % 5 == 1:
            self._save(msg)

    def _save(self, msg):
        import cv2

        from ..messages.decode import image_to_bgr

        path = self.out_dir / ("overlay_%03d.png" % len(self.saved))
        cv2.imwrite(str(path), image_to_bgr(msg))
        self.saved.append(str(path))

    def window(self, seconds):
        now = time.monotonic()
        recent = [lat for t, lat in self.stamps if t >= now - seconds]
        return len(recent) / seconds, recent

    def value(self, task, key, default="-"):
        return self.diagnostics.value(task, key, default)

    def latest_statuses(self):
        """{task: {level, message, values}} of the newest diagnostics, for the summary."""
        report = self.diagnostics.reports[-1] if self.diagnostics.reports else None
        return {task: status._asdict() for task, status in (report.statuses.items() if report
                                                            else ())}


def start_node(starter, namespace, params, log_path, image):
    """The node through ``ros2 launch`` or directly; returns (process, what was started)."""
    if starter not in STARTERS:
        raise ValueError("starter must be one of %s" % ", ".join(STARTERS))
    reason = ros2_launch_unavailable() if starter != "direct" else None
    if starter == "launch" and reason:
        raise RuntimeError("ros2 launch is not available here: %s" % reason)
    if starter == "direct" or reason:
        if reason:
            print("demo: ros2 launch is not available here (%s): starting the node directly"
                  % reason, flush=True)
        return (NodeProcess(namespace, params, log_path, remaps=[("image", image)],
                            new_session=True), "the node")
    return LaunchedNode(namespace, params, log_path, image, new_session=True), "ros2 launch"


def run_demo(source, out_dir, model="espnet-p2q8-cityscapes", rate=10.0, duration=20.0,
             encoding="bgr8", namespace="/demo", keep_overlays=4, extra_params=None,
             size=None, startup_timeout=180.0, starter="auto"):
    """Runs the demo; returns the summary dict (empty when stopped before the first output)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = localhost_env()
    os.environ.update(env)
    params = {"model": model, "warmup_frames": 2}
    params.update(extra_params or {})
    stop = init_ros()
    camera_log = open(str(out_dir / "camera.log"), "w")
    camera_proc = node = watcher_node = None
    summary = {}
    try:
        with stop.interrupting():
            import rclpy

            watcher_node = rclpy.create_node("espnet_demo_watcher")
            watcher = Watcher(watcher_node, namespace, out_dir, keep_overlays)
            start = time.monotonic()
            node, started = start_node(starter, namespace, params, out_dir / "node.log",
                                       namespace + "/camera/image")
            # Own sessions: a terminal's Ctrl-C reaches only the demo, which stops each child
            # with one SIGINT. ros2 launch exits with a traceback when a second SIGINT (the
            # group's, then ours) lands while its interpreter is already tearing down.
            camera_proc = subprocess.Popen(
                camera_command(source, rate, encoding, namespace + "/camera/image", size=size),
                env=env, stdin=subprocess.DEVNULL, stdout=camera_log, stderr=subprocess.STDOUT,
                start_new_session=True)
            print("demo: %s and camera started; model %s, source %s at %.1f Hz; outputs in %s"
                  % (started, model, source, rate, out_dir), flush=True)
            summary = _watch(watcher, watcher_node, node, out_dir, startup_timeout, duration,
                             start, started)
            summary.update(model=model, source=str(source), camera_rate_hz=rate,
                           starter=started)
            write_summary(summary, out_dir)
    except StopRequested:
        print("demo: stopped by %s" % stop.name, flush=True)
    finally:
        if camera_proc is not None and camera_proc.poll() is None:
            camera_proc.send_signal(signal.SIGINT)
        if node is not None:
            node.stop()
        if camera_proc is not None:
            try:
                camera_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                camera_proc.kill()
        if watcher_node is not None:
            watcher_node.destroy_node()
        watcher = watcher_node = None  # freed in shutdown_ros, with the DDS participant
        shutdown_ros()
        camera_log.close()
    return summary


def _watch(watcher, watcher_node, node, out_dir, startup_timeout, duration, start, started):
    """Spins the watcher until ``duration`` s after the first output; returns the summary."""
    import rclpy

    first = serving = None
    last_print = start
    while True:
        rclpy.spin_once(watcher_node, timeout_sec=0.05)
        now = time.monotonic()
        if node.proc.poll() is not None:
            raise RuntimeError("the node exited with code %d: %s (log: %s)"
                               % (node.proc.returncode, node.last_error(), node.log_path))
        if first is None:
            if serving is None and "]: serving " in node.log():
                serving = now  # model loaded and warmed up (the node's start-up line)
            if watcher.stamps and watcher.first_label is not None:
                first = now  # model loading and warm-up are not part of the numbers
                print("demo: first label %.1f s after %s started (the node was serving after "
                      "%.1f s)" % (watcher.first_label - start, started,
                                   (serving or now) - start), flush=True)
            elif now - start > startup_timeout:
                raise RuntimeError("no output from the node within %.0f s; see %s"
                                   % (startup_timeout, out_dir / "node.log"))
            continue
        if now - first >= duration:
            break
        if now - last_print >= 1.0:
            last_print = now
            fps, recent = watcher.window(2.0)
            print("  FPS %5.2f | latency p50 %7.1f ms | inference p50 %s ms | power %s W | "
                  "dropped %s" % (fps, np.median(recent) if recent else float("nan"),
                                  watcher.value("frame pipeline", "Inference p50 (ms)"),
                                  _short(watcher.value("model and power", "Average power (W)")),
                                  watcher.value("frame pipeline", "Frames dropped")),
                  flush=True)
    summary = summarize(watcher, duration)
    summary["first_label_s"] = watcher.first_label - start
    return summary


def _short(text):
    return "unavailable" if text.startswith("unavailable") else text


def summarize(watcher, duration):
    latencies = [lat for _, lat in watcher.stamps]
    times = [t for t, _ in watcher.stamps]
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {
        "duration_s": duration,
        "frames_out": len(latencies),
        "fps": (len(times) - 1) / span if span > 0 else 0.0,
        "latency_ms_p50": float(np.percentile(latencies, 50)),
        "latency_ms_p95": float(np.percentile(latencies, 95)),
        "diagnostics": watcher.latest_statuses(),
        "overlays": watcher.saved,
    }


def write_summary(summary, out_dir):
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    pipeline = summary["diagnostics"].get("frame pipeline", {}).get("values", {})
    power = summary["diagnostics"].get("model and power", {}).get("values", {})
    lines = ["# espnet-ros demo", "",
             "| metric | value |", "| --- | --- |",
             "| model | %s |" % summary["model"],
             "| source | %s at %.1f Hz |" % (summary["source"], summary["camera_rate_hz"]),
             "| node started by | %s; first label after %.1f s |"
             % (summary["starter"], summary["first_label_s"]),
             "| output FPS | %.2f |" % summary["fps"],
             "| latency p50 / p95 (ms, input stamp to overlay received) | %.1f / %.1f |"
             % (summary["latency_ms_p50"], summary["latency_ms_p95"])]
    for key in ("Inference p50 (ms)", "Inference p95 (ms)", "Frames received", "Frames processed",
                "Frames dropped", "Frames rejected"):
        lines.append("| %s | %s |" % (key, pipeline.get(key, "-")))
    for key in ("Backend", "Average power (W)", "Energy per frame (J)"):
        lines.append("| %s | %s |" % (key, power.get(key, "-")))
    (out_dir / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[2:]))
