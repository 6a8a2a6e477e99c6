"""lifecycle:=true: the node as a managed node, driven by the real ``ros2 lifecycle`` command and
by launch_ros's LifecycleNode from segment.launch.py (autostart:=true)."""
import os
import re
import subprocess
import time

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("ros2lifecycle", reason="the ros2 lifecycle command is not installed")

from rosutil import NodeProcess, Started, padded_image, stamp  # noqa: E402

from espnet_ros.ros.env import localhost_launch_arguments  # noqa: E402

MODEL = "espnet-p2q3-cityscapes"
# 1024x512 makes the model's buffers large enough for cleanup to show in RSS.
PARAMS = {"model": MODEL, "input_width": 1024, "input_height": 512, "warmup_frames": 1,
          "lifecycle": True}


def lifecycle(env, verb, node, *args):
    cmd = ["ros2", "lifecycle", verb, "--no-daemon", "--spin-time", "5", node] + list(args)
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    return result.returncode, result.stdout + result.stderr


def _answered(probe, pub, frame, topic, sec, timeout=60):
    """Publishes a frame stamped ``sec`` until its label arrives; False after ``timeout``."""
    def seen():
        return any(m.header.stamp.sec == sec for m in probe.messages(topic))
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        pub.publish(padded_image(frame, "bgr8", stamp_msg=stamp(sec)))
        if probe.spin_until(seen, 0.5):
            return True
    return False


def test_ros2_lifecycle_drives_the_node_through_every_state(probe, frame, ros2_env, tmp_path):
    from sensor_msgs.msg import Image
    node = NodeProcess("/lc", PARAMS, tmp_path, extra_env=ros2_env)
    name = node.base
    try:
        probe.subscribe(Image, name + "/label")
        pub = probe.node.create_publisher(Image, "/lc/image", 5)
        assert probe.spin_until(lambda: "unconfigured (no model loaded)" in node.log(), 120), \
            node.log()
        code, out = lifecycle(ros2_env, "get", name)
        assert code == 0 and out.startswith("unconfigured [1]"), out
        assert probe.node.count_publishers(name + "/label") == 0  # nothing exists yet
        rss_unconfigured = node.rss_kb()

        code, out = lifecycle(ros2_env, "set", name, "configure")
        assert code == 0 and "Transitioning successful" in out, out + node.log()
        assert lifecycle(ros2_env, "get", name)[1].startswith("inactive [2]")
        rss_configured = node.rss_kb()
        assert rss_configured > rss_unconfigured + 20 * 1024, (rss_unconfigured, rss_configured)
        # Inactive: publishers exist, nothing subscribes to the camera.
        assert probe.node.count_publishers(name + "/label") > 0
        assert pub.get_subscription_count() == 0

        code, out = lifecycle(ros2_env, "set", name, "activate")
        assert code == 0 and "Transitioning successful" in out, out
        assert probe.spin_until(lambda: pub.get_subscription_count() > 0, 30)
        assert _answered(probe, pub, frame, name + "/label", 100), node.log()

        code, out = lifecycle(ros2_env, "set", name, "deactivate")
        assert code == 0 and "Transitioning successful" in out, out
        assert probe.spin_until(lambda: pub.get_subscription_count() == 0, 30)
        assert not _answered(probe, pub, frame, name + "/label", 101, timeout=3)

        code, out = lifecycle(ros2_env, "set", name, "cleanup")
        assert code == 0 and "Transitioning successful" in out, out
        assert lifecycle(ros2_env, "get", name)[1].startswith("unconfigured [1]")
        rss_cleaned = node.rss_kb()
        # The model and its buffers are gone (torch's libraries stay loaded).
        assert rss_cleaned < rss_configured - 20 * 1024, (rss_configured, rss_cleaned)
        print("RSS kB: unconfigured %d, configured %d, after activate/deactivate/cleanup %d"
              % (rss_unconfigured, rss_configured, rss_cleaned))

        # A bad model: configure fails with the reason and the node stays unconfigured.
        assert probe.set_parameters(name, model="no-such-model")[0].successful
        code, out = lifecycle(ros2_env, "set", name, "configure")
        assert "Transitioning successful" not in out, out
        assert lifecycle(ros2_env, "get", name)[1].startswith("unconfigured [1]")
        assert "configure failed: " in node.log() and "no-such-model" in node.log()
        assert probe.set_parameters(name, model=MODEL)[0].successful
        # Configured again: the thread trial starts from every core, not from what it kept.
        code, out = lifecycle(ros2_env, "set", name, "configure")
        assert code == 0 and "Transitioning successful" in out, out
        cores = len(os.sched_getaffinity(0))
        trials = re.findall(r"threads: \d+ of (\d+) cores", node.log())
        assert trials == ([str(cores)] * 2 if cores > 1 else []), node.log()

        code, out = lifecycle(ros2_env, "set", name, "shutdown")
        assert code == 0 and "Transitioning successful" in out, out
        assert node.proc.wait(timeout=30) == 0, node.log()
    finally:
        node.stop()
    assert "Traceback" not in node.log(), node.log()


def test_launch_file_configures_and_activates_a_lifecycle_node(probe, frame, ros2_env,
                                                              tmp_path):
    """``ros2 launch ... lifecycle:=true autostart:=true``: launch_ros's LifecycleNode, driven
    by the configure and activate events of segment.launch.py."""
    from sensor_msgs.msg import Image
    name = "/lcl/espnet_segmentation"
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    input_width: 256\n    input_height: 128\n"
                      "    warmup_frames: 1\n")
    launch = Started(["ros2", "launch", "espnet_ros", "segment.launch.py", "namespace:=lcl",
                      "model:=" + MODEL, "lifecycle:=true", "autostart:=true",
                      "params_file:=%s" % params] + localhost_launch_arguments(),
                     ros2_env, tmp_path / "launch.log")
    try:
        probe.subscribe(Image, name + "/label")
        pub = probe.node.create_publisher(Image, "/lcl/image", 5)
        assert probe.spin_until(lambda: pub.get_subscription_count() > 0, 180), launch.log()
        assert _answered(probe, pub, frame, name + "/label", 200), launch.log()
        code, out = lifecycle(ros2_env, "get", name)
        assert code == 0 and out.startswith("active [3]"), out
        log = launch.log()
        assert "unconfigured (no model loaded)" in log and "serving " + MODEL in log, log
    finally:
        code, _ = launch.stop()
    assert code == 0, launch.log()
