"""``espnet-ros bench cameras``: N cameras into one node against N single-camera nodes.

Both set-ups have the same topics (camera C: ``/C/image`` in, ``/C/espnet_segmentation/label``
out; see node_camera.py), so one driver feeds both the same way: every camera keeps
``in_flight`` frames ahead of its own outputs (pre-serialized bgr8 frames, restamped), which
saturates the node(s) without flooding the machine, and gives each camera the same chance.
Measured per run, alternating the set-ups: total RSS of the node processes (the peak of 1 s
samples), output FPS per camera and in total, latency (stamp to label received) p50/p95 per
camera, CPU of the node processes and of this driver, and from the nodes' /diagnostics the
stage p50s and, for the one node, forward calls against frames (one call per batch).
"""
import json
import statistics
import time
from pathlib import Path

import numpy as np

from ..ros.env import apply_localhost_env
from .bench_node import _cpu_seconds, _percentiles, camera_message

SETUPS = ("one_node", "n_nodes")


def _rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class CameraRig:
    """The node process(es) of one set-up, and this process's publishers and subscribers."""

    def __init__(self, setup, cameras, params, log_dir, env=None, one_node_threads=0,
                 each_node_threads=1):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from .diagnostics_reader import DiagnosticsReader
        from .node_process import NodeProcess

        self.setup, self.cameras = setup, list(cameras)
        if setup == "one_node":
            node_params = dict(params, cameras="[%s]" % ",".join(self.cameras),
                               threads=one_node_threads)
            self.processes = [NodeProcess("/", node_params, Path(log_dir) / "one_node.log",
                                          extra_env=env)]
            self.readers = {c: DiagnosticsReader("/espnet_segmentation") for c in self.cameras}
            self.task_prefix = {c: c + ": " for c in self.cameras}
        else:
            node_params = dict(params, threads=each_node_threads)
            self.processes = [NodeProcess("/" + c, node_params,
                                          Path(log_dir) / ("node_%s.log" % c), extra_env=env)
                              for c in self.cameras]
            self.readers = {c: DiagnosticsReader("/%s/espnet_segmentation" % c)
                            for c in self.cameras}
            self.task_prefix = {c: "" for c in self.cameras}
        self.node = rclpy.create_node("espnet_bench_cameras_driver")
        self.executor = rclpy.executors.SingleThreadedExecutor()
        self.executor.add_node(self.node)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = {c: self.node.create_publisher(Image, "/%s/image" % c, 1) for c in cameras}
        self.received = {c: [] for c in cameras}  # (receive ns, stamp ns)
        for c in cameras:
            self.node.create_subscription(
                Image, "/%s/espnet_segmentation/label" % c,
                lambda raw, c=c: self._on_label(c, raw), qos, raw=True)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.frame_raw = None

    def _on_label(self, camera, raw):
        from ..messages.cdr import cdr_stamp
        self.received[camera].append((time.time_ns(), cdr_stamp(raw)))

    def _on_diagnostics(self, msg):
        for reader in set(self.readers.values()):
            reader.feed(msg)

    def spin(self, timeout):
        self.executor.spin_once(timeout_sec=timeout)

    def publish(self, camera):
        from ..messages.cdr import cdr_restamp
        self.pubs[camera].publish(cdr_restamp(self.frame_raw, time.time_ns()))

    def wait_ready(self, timeout=300):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.spin(0.1)
            for p in self.processes:
                if p.proc.poll() is not None:
                    raise RuntimeError("a node exited with code %d: %s (log: %s)"
                                       % (p.proc.returncode, p.last_error(), p.log_path))
            if all(len(r) >= 2 for r in self.received.values()):
                return
            for c in self.cameras:
                if self.pubs[c].get_subscription_count():
                    self.publish(c)
        raise RuntimeError("the node(s) did not answer every camera within %d s" % timeout)

    def saturate(self, seconds, in_flight=2):
        """Every camera keeps ``in_flight`` frames ahead of its own outputs for ``seconds``."""
        self.received = {c: [] for c in self.cameras}
        sent = {c: 0 for c in self.cameras}
        rss, next_sample = [], time.monotonic()
        pids = [p.proc.pid for p in self.processes]
        cpu0 = [_cpu_seconds(pid) for pid in pids]
        own0, start = _cpu_seconds(), time.monotonic()
        while time.monotonic() - start < seconds:
            for c in self.cameras:
                while sent[c] < len(self.received[c]) + in_flight:
                    self.publish(c)
                    sent[c] += 1
            if time.monotonic() >= next_sample:
                rss.append(sum(_rss_kb(pid) for pid in pids))
                next_sample += 1.0
            self.spin(0.005)
        wall = time.monotonic() - start
        cpu = sum(_cpu_seconds(pid) - c0 for pid, c0 in zip(pids, cpu0)) / wall
        return {"wall_s": wall, "rss_kb": max(rss), "cpu_cores": cpu,
                "driver_cpu_cores": (_cpu_seconds() - own0) / wall,
                "received": {c: list(r) for c, r in self.received.items()}}

    def settle_diagnostics(self, timeout=3.0):
        since = time.monotonic()
        end = since + timeout
        while time.monotonic() < end:
            self.spin(0.05)
            if all(r.reports and r.reports[-1].time > since for r in self.readers.values()):
                return

    def stage_p50(self, camera):
        from ..messages.diagnostics import TASK_PIPELINE
        return self.readers[camera].stage_p50(self.task_prefix[camera] + TASK_PIPELINE)

    def model_values(self, camera):
        from ..messages.diagnostics import TASK_MODEL
        status = self.readers[camera].latest(TASK_MODEL)
        return dict(status.values) if status else {}

    def close(self):
        self.node.destroy_node()
        return [p.stop() for p in self.processes]


def _fps(received):
    if len(received) < 2:
        return 0.0
    times = sorted(r for r, _ in received)
    return (len(times) - 1) / ((times[-1] - times[0]) * 1e-9)


def measure(rig, seconds):
    """One saturated measurement of a started rig: the run's figures."""
    result = rig.saturate(seconds)
    rig.settle_diagnostics()
    per_camera = {}
    for c in rig.cameras:
        received = result["received"][c]
        per_camera[c] = {"fps": _fps(received), "frames": len(received),
                         "latency_ms": _percentiles([(r - s) * 1e-6 for r, s in received]),
                         "stage_p50_ms": rig.stage_p50(c)}
    rates = [v["fps"] for v in per_camera.values()]
    mean = statistics.mean(rates) if rates else 0.0
    model = rig.model_values(rig.cameras[0])
    return {"setup": rig.setup, "rss_mb": result["rss_kb"] / 1024.0,
            "aggregate_fps": sum(rates), "min_camera_rate_vs_mean": min(rates) / mean
            if mean else 0.0, "cpu_cores": result["cpu_cores"],
            "driver_cpu_cores": result["driver_cpu_cores"], "cameras": per_camera,
            "forward_calls": model.get("Forward calls"),
            "frames_per_forward_call": model.get("Frames per forward call")}


def each_node_threads(cameras, cores=None):
    """Torch threads of each of N single-camera nodes: the cores shared out (at least one), what
    one would set for N nodes on one machine; each node's default (all cores) would make N
    nodes oversubscribe the cores N times."""
    from ..messages.params import usable_cores
    return max(1, (cores or usable_cores()) // max(1, cameras))


def run_bench(model, frame, cameras, frame_size, model_size, seconds, runs, out_dir, env=None,
              warmup_s=3.0, one_node_threads=0):
    """``runs`` runs, each measuring both set-ups one after the other (the order alternates)."""
    import rclpy

    from ..bench.frames import frame_at

    apply_localhost_env()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _, raw = camera_message(frame_at(frame, frame_size))
    params = {"model": model, "input_width": model_size[0], "input_height": model_size[1],
              "warmup_frames": 2, "min_fps": 0.0, "publish_info": "false"}
    names = ["cam%d" % i for i in range(cameras)]
    each_threads = each_node_threads(cameras)
    rclpy.init()
    results = []
    try:
        for run in range(runs):
            order = SETUPS if run % 2 == 0 else SETUPS[::-1]
            for setup in order:
                rig = CameraRig(setup, names, params, out_dir, env, one_node_threads,
                                each_threads)
                rig.frame_raw = raw
                try:
                    rig.wait_ready()
                    rig.saturate(warmup_s)  # let every process reach its steady state
                    result = measure(rig, seconds)
                finally:
                    exits = rig.close()
                result.update(run=run + 1, exit_codes=exits)
                results.append(result)
                print(run_line(result), flush=True)
    finally:
        rclpy.shutdown()
    report = {"model": model, "cameras": cameras, "frame_size": "%dx%d" % tuple(frame_size),
              "one_node_threads": one_node_threads or "default",
              "each_node_threads": each_threads,
              "model_size": "%dx%d" % tuple(model_size), "seconds": seconds, "runs": results,
              "ratios": ratios(results)}
    (out_dir / "bench_cameras.json").write_text(json.dumps(report, indent=2))
    (out_dir / "bench_cameras.md").write_text(markdown(report))
    return report


def ratios(results):
    """Per run: one node / N nodes for RSS and aggregate FPS."""
    out = []
    for run in sorted({r["run"] for r in results}):
        by = {r["setup"]: r for r in results if r["run"] == run}
        if set(by) == set(SETUPS):
            one, many = by["one_node"], by["n_nodes"]
            out.append({"run": run, "rss": one["rss_mb"] / many["rss_mb"],
                        "aggregate_fps": one["aggregate_fps"] / many["aggregate_fps"]
                        if many["aggregate_fps"] else float("inf")})
    return out


def run_line(r):
    lat = [v["latency_ms"] for v in r["cameras"].values() if v["latency_ms"]]
    return ("run %d %s: RSS %.0f MB, %.2f FPS in total (slowest camera %.2fx the mean), "
            "latency p50 %.0f-%.0f ms, CPU %.2f cores" % (
                r["run"], r["setup"], r["rss_mb"], r["aggregate_fps"],
                r["min_camera_rate_vs_mean"], min(x["p50"] for x in lat) if lat else np.nan,
                max(x["p50"] for x in lat) if lat else np.nan, r["cpu_cores"]))


def markdown(report):
    lines = ["%d cameras, %s bgr8 frames, model %s at %s, %s s per measurement; torch threads "
             "of the one node: %s, of each single-camera node: %s" % (
                 report["cameras"], report["frame_size"], report["model"],
                 report["model_size"], report["seconds"], report.get("one_node_threads"),
                 report.get("each_node_threads")), "",
        "| run | set-up | total RSS MB | aggregate FPS | per camera FPS | slowest / mean | "
        "latency p50 / p95 ms per camera | node CPU (cores) | forward calls (frames per call) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["runs"]:
        cams = r["cameras"].values()
        lines.append("| %d | %s | %.0f | %.2f | %s | %.2f | %s | %.2f | %s |" % (
            r["run"], r["setup"], r["rss_mb"], r["aggregate_fps"],
            " / ".join("%.2f" % v["fps"] for v in cams), r["min_camera_rate_vs_mean"],
            "; ".join("%.0f / %.0f" % (v["latency_ms"]["p50"], v["latency_ms"]["p95"])
                      if v["latency_ms"] else "-" for v in cams), r["cpu_cores"],
            "%s (%s)" % (r["forward_calls"], r["frames_per_forward_call"])
            if r["forward_calls"] else "-"))
    lines += ["", "one node / N nodes per run: " + "; ".join(
        "run %d: RSS %.2fx, aggregate FPS %.2fx" % (x["run"], x["rss"], x["aggregate_fps"])
        for x in report["ratios"]), "", "stage p50 ms (camera 0 of each set-up, last run): "]
    for r in report["runs"][-2:]:
        stages = next(iter(r["cameras"].values()))["stage_p50_ms"]
        lines.append("- %s: %s" % (r["setup"], ", ".join("%s %.1f" % kv for kv in stages.items())))
    return "\n".join(lines) + "\n"
