"""The node on ROS 2 Jazzy: .venv-jazzy (scripts/setup-jazzy-env.sh, which scripts/test.sh
runs) holds Jazzy's rclpy, rmw and message wheels with torch, numpy and OpenCV. The node starts
there as `espnet-ros node`, answers a frame with the input's header (driven from Jazzy too),
publishes /diagnostics, says in one line each what is off on Jazzy, and exits 0 on SIGINT."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "/jazzy"
# What the Kilted environment sets and a Jazzy process must not inherit (the ROS wheels'
# bootstrapper re-executes Python once with their LD_LIBRARY_PATH unless its guard is set).
KILTED_ONLY = ("AMENT_PREFIX_PATH", "PYTHONPATH", "LD_LIBRARY_PATH", "VIRTUAL_ENV",
               "COLCON_PREFIX_PATH", "ROS_DISTRO", "_ROS_WHEELS_BOOTSTRAP_COMPLETE")


@pytest.fixture(scope="module")
def jazzy_venv():
    venv = os.environ.get("ESPNET_ROS_JAZZY_VENV")
    if not venv:
        pytest.skip("ESPNET_ROS_JAZZY_VENV is not set (scripts/test.sh sets it after "
                    "scripts/setup-jazzy-env.sh)")
    venv = Path(venv)
    if not (venv / "bin" / "espnet-ros").is_file():
        pytest.fail("ESPNET_ROS_JAZZY_VENV=%s has no espnet-ros: run scripts/setup-jazzy-env.sh"
                    % venv)
    return venv


def _env(venv):
    from espnet_ros.ros.env import localhost_env
    env = {k: v for k, v in localhost_env().items() if k not in KILTED_ONLY}
    env["PATH"] = "%s:/usr/bin:/bin" % (venv / "bin")
    env["PYTHONUNBUFFERED"] = "1"
    return env


# Loopback isolation in both forms: Jazzy's own (ROS_AUTOMATIC_DISCOVERY_RANGE, the
# <allowlist> profile) and Humble's (ROS_LOCALHOST_ONLY, the <interfaceWhiteList> profile),
# which Jazzy still reads: the node serves and answers under both (test_loopback_netns.py
# shows that Humble's form sends nothing off loopback).
@pytest.mark.parametrize("isolation", ["jazzy", "humble"])
def test_the_node_runs_on_jazzy(jazzy_venv, data_dir, tmp_path, isolation):
    env = _env(jazzy_venv)
    if isolation == "humble":
        from espnet_ros.ros.env import localhost_env
        env = {k: v for k, v in env.items()
               if k not in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE")}
        env = localhost_env(env, distro="humble")
        assert env["FASTDDS_DEFAULT_PROFILES_FILE"].endswith("fastdds_localhost_legacy.xml")
        assert env["ROS_LOCALHOST_ONLY"] == "1" and "ROS_AUTOMATIC_DISCOVERY_RANGE" not in env
    log_path = tmp_path / "node.log"
    with open(log_path, "w") as log:
        node = subprocess.Popen(
            [str(jazzy_venv / "bin" / "espnet-ros"), "node", "--ros-args", "-r",
             "__ns:=" + NAMESPACE, "-p", "model:=espnet-p2q3-cityscapes", "-p",
             "input_width:=128", "-p", "input_height:=64", "-p", "warmup_frames:=1"],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 180
        while "serving" not in log_path.read_text() and node.poll() is None \
                and time.monotonic() < end:
            time.sleep(0.2)
        text = log_path.read_text()
        assert "serving espnet-p2q3-cityscapes" in text, text[-3000:]
        probe = subprocess.run(
            [str(jazzy_venv / "bin" / "python"), str(REPO / "test" / "jazzy_probe.py"),
             NAMESPACE, "90"], env=env, capture_output=True, text=True, timeout=150)
        assert probe.returncode == 0, probe.stderr[-3000:]
        seen = json.loads(probe.stdout.strip().splitlines()[-1])
    finally:
        if node.poll() is None:
            node.send_signal(signal.SIGINT)
        code = node.wait(timeout=30)
    text = log_path.read_text()
    assert seen["rclpy"].startswith("7.1."), seen              # really Jazzy's rclpy
    assert seen["label_header"] == [4242, 17, "jazzy_cam"], (seen, text[-3000:])
    assert seen["label_size"] == [128, 96, "mono8"]
    assert any(name.endswith(": frame pipeline") for name in seen["diagnostics"]), seen
    assert code == 0 and "Traceback" not in text, text[-3000:]
    # What is off on Jazzy: one line each, naming why.
    info_off = [line for line in text.splitlines() if "~/info is off" in line]
    label_info_off = [line for line in text.splitlines() if "~/label_info is off" in line]
    assert len(info_off) == 1 and len(label_info_off) == 1, text
    assert "vision_msgs is not importable" in label_info_off[0]
    prefix = os.environ.get("ESPNET_ROS_INTERFACES_PREFIX")
    if prefix and (Path(prefix) / "share" / "espnet_ros" / "ros_distro").is_file():
        assert "was built for ROS 2 kilted and this is jazzy" in info_off[0], info_off
    assert not [line for line in text.splitlines() if "rcutils_reset_error" in line]
