"""A node that ends leaves no Fast DDS shared memory behind: each segment holds 128 MiB of RAM
with this project's profiles until someone runs ``fastdds shm clean``, and its peers go on
sending to it. Checked in a mount namespace with a /dev/shm of its own, so that the segments of
whatever else runs on the machine do not count."""
import json
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("rclpy")

from netns import unshare_prefixes  # noqa: E402

from espnet_ros.ros.env import localhost_env  # noqa: E402
from espnet_ros.tools.node_process import node_command  # noqa: E402

SMALL = {"model": "espnet-p2q3-cityscapes", "input_width": "128", "input_height": "64",
         "warmup_frames": "1"}
FAST_DDS = ("fastdds_", "fastrtps_", "sem.fastdds_", "sem.fastrtps_")

# Runs in the namespace: a private /dev/shm, the command until ``ready`` is in its log (or it
# exits), SIGINT, then one JSON line with the exit code and /dev/shm while running and after.
SCENARIO = r"""
import json, os, signal, subprocess, sys, time
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1g", "tmpfs", "/dev/shm"], check=True)
cmd, log_path, ready = json.loads(sys.argv[1])
with open(log_path, "w") as log:
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    end = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < end and ready not in open(log_path).read():
        time.sleep(0.2)
    running = sorted(os.listdir("/dev/shm"))
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=60)
print("SHM " + json.dumps({"code": code, "running": running,
                           "after": sorted(os.listdir("/dev/shm"))}))
"""


def in_own_shm(cmd, log_path, ready):
    """Runs the scenario; its report, or skips where no mount namespace can be made here."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    env = localhost_env()
    env["PYTHONUNBUFFERED"] = "1"
    errors = []
    for prefix in unshare_prefixes("--mount"):
        proc = subprocess.run(prefix + [sys.executable, "-c", SCENARIO,
                                        json.dumps([cmd, str(log_path), ready])],
                              env=env, capture_output=True, text=True, timeout=600)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("SHM ")]
        if lines:
            return json.loads(lines[-1][4:])
        errors.append(proc.stderr[-500:])
    if all("mount" in e or "unshare" in e for e in errors):
        pytest.skip("cannot make a mount namespace here: " + errors[-1].strip())
    raise AssertionError("the scenario did not report:\n" + "\n".join(errors))


def _fast_dds(names):
    return [n for n in names if n.startswith(FAST_DDS)]


def test_a_stopped_node_leaves_no_segment(tmp_path):
    log = tmp_path / "node.log"
    report = in_own_shm(node_command("/shm_stop", SMALL), log, "serving ")
    assert report["code"] == 0, log.read_text()
    assert _fast_dds(report["running"]), report  # the check sees segments: it can fail
    assert _fast_dds(report["after"]) == [], report


def test_a_node_that_fails_to_start_leaves_no_segment(tmp_path):
    log = tmp_path / "node.log"
    params = dict(SMALL, backend="torch2trt", allow_fallback="false")
    report = in_own_shm(node_command("/shm_fail", params), log, "never printed")
    assert report["code"] == 1 and "failed to start" in log.read_text(), log.read_text()
    assert _fast_dds(report["after"]) == [], report
