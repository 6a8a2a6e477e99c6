"""Helpers for tests that run the node in its own process and talk to it over real DDS."""
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np

from espnet_ros.tools import node_process

REPO = Path(__file__).resolve().parents[1]


def non_loopback_tx_bytes():
    """Bytes sent so far by every interface except loopback (from /proc/net/dev)."""
    total = 0
    with open("/proc/net/dev") as f:
        for line in f.readlines()[2:]:
            name, data = line.split(":", 1)
            if name.strip() != "lo":
                total += int(data.split()[8])
    return total


class NodeProcess(node_process.NodeProcess):
    """The node in a subprocess with its log in ``log_dir`` (named after the namespace)."""

    def __init__(self, namespace, params, log_dir, extra_env=None, params_file=None):
        log = Path(log_dir) / ("node%s.log" % namespace.replace("/", "_"))
        super().__init__(namespace, params, log, params_file=params_file, extra_env=extra_env)


class Probe:
    """A test-side rclpy node: publishes inputs, records outputs, calls parameter services."""

    def __init__(self, node):
        self.node = node
        self.received = {}

    def subscribe(self, msg_type, topic, reliable=True, depth=50):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        if topic in self.received:
            return
        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        self.received[topic] = []
        self.node.create_subscription(
            msg_type, topic, lambda msg, t=topic: self.received[t].append(
                (self.node.get_clock().now().nanoseconds, msg)), qos)

    def messages(self, topic):
        return [m for _, m in self.received[topic]]

    def spin_until(self, condition, timeout=60.0):
        import rclpy
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.05)
            if condition():
                return True
        return False

    def set_parameters(self, node_name, **values):
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        client = self.node.create_client(SetParameters, node_name + "/set_parameters")
        assert client.wait_for_service(timeout_sec=30), "no parameter service on " + node_name
        request = SetParameters.Request()
        request.parameters = [Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        future = client.call_async(request)
        assert self.spin_until(future.done, 120), "set_parameters timed out"
        self.node.destroy_client(client)
        return future.result().results


def stamp(sec, nanosec=0):
    from builtin_interfaces.msg import Time
    return Time(sec=sec, nanosec=nanosec)


def padded_image(pixels, encoding, pad=8, bigendian=False, stamp_msg=None, frame_id="camera"):
    """A sensor_msgs/Image from an (H, W[, C]) array with ``pad`` extra bytes per row."""
    from sensor_msgs.msg import Image
    h, w = pixels.shape[:2]
    row = np.ascontiguousarray(pixels).reshape(h, -1).view(np.uint8)
    data = np.zeros((h, row.shape[1] + pad), np.uint8)
    data[:, :row.shape[1]] = row
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian),
                step=data.shape[1])
    msg.data = data.tobytes()
    msg.header.frame_id = frame_id
    if stamp_msg is not None:
        msg.header.stamp = stamp_msg
    return msg


def start_probe(name):
    """rclpy in this process (loopback-only DDS) with one test node; ``stop_probe`` ends it."""
    import rclpy

    from espnet_ros.ros.env import apply_localhost_env
    apply_localhost_env()
    rclpy.init()
    return Probe(rclpy.create_node(name))


def stop_probe(probe):
    import rclpy
    probe.node.destroy_node()
    rclpy.shutdown()


LATE_LABEL_INFO_READER = """
import json, sys, time
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from vision_msgs.msg import LabelInfo
rclpy.init()
node = rclpy.create_node("late_label_info_reader")
got = []
qos = QoSProfile(depth=int(sys.argv[2]), reliability=ReliabilityPolicy.RELIABLE,
                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
node.create_subscription(LabelInfo, sys.argv[1], got.append, qos)
end = time.monotonic() + 60
while not got and time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.1)
print(json.dumps([[c.class_id, c.class_name] for c in got[0].class_map] if got else None))
"""


def late_class_map(topic, depth):
    """{class id: name} that a process starting now receives on ``topic`` (a LabelInfo
    published before it existed), subscribing reliable, transient-local, with ``depth``;
    None when nothing came within 60 s."""
    import json
    import sys

    from espnet_ros.ros.env import localhost_env
    result = subprocess.run([sys.executable, "-c", LATE_LABEL_INFO_READER, topic, str(depth)],
                            env=localhost_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    pairs = json.loads(result.stdout.strip().splitlines()[-1])
    return None if pairs is None else {int(i): name for i, name in pairs}


class Started:
    """A command in its own process group with its output in a log file."""

    def __init__(self, cmd, env, log_path):
        self.log_path = Path(log_path)
        self._log = open(str(self.log_path), "w")
        self.proc = subprocess.Popen([str(c) for c in cmd], env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def log(self):
        return self.log_path.read_text()

    def wait_for_log(self, text, timeout=180.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.proc.poll() is None:
            if text in self.log():
                return True
            time.sleep(0.1)
        return text in self.log()

    def signal_group(self, signum):
        """As a terminal's Ctrl-C does: every process of the group gets the signal."""
        os.killpg(self.proc.pid, signum)

    def stop(self, signum=signal.SIGINT, timeout=30.0):
        """Signal (if still running), wait; returns (exit code, seconds it took to exit)."""
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        return self.wait(timeout, start)

    def wait(self, timeout=30.0, start=None):
        """Wait (SIGKILL to the group after ``timeout``); returns (exit code, seconds)."""
        start = time.monotonic() if start is None else start
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.proc.wait()
        self._log.close()
        return self.proc.returncode, time.monotonic() - start


def child_pids(pid):
    """PIDs whose parent is ``pid`` (from /proc)."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    # "pid (comm) state ppid ...": comm may hold spaces, so split after ')'
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                children.append(int(entry))
    return children


def environ_of(pid):
    """The environment a running process was started with (from /proc)."""
    with open("/proc/%d/environ" % pid, "rb") as f:
        items = [item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item]
    return {k.decode(): v.decode() for k, v in items}


def catches_signal(pid, signum):
    """Whether process ``pid`` has a handler installed for ``signum`` (SigCgt in /proc)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (int(signum) - 1) & 1)
    return False
