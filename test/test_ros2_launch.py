"""The node through the real ROS 2 tools, on the colcon install tree as a ROS user has it:
``ros2 launch espnet_ros segment.launch.py`` with every launch argument, ``ros2 run``, ``ros2
node list``, ``ros2 topic echo``, ``ros2 param get/set``, and clean exits under launch."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

pytest.importorskip("rclpy")

from rosutil import Started, child_pids, environ_of, padded_image, stamp  # noqa: E402

from espnet_ros.ros.env import profile_path  # noqa: E402

MODEL = "espnet-p2q3-cityscapes"
NODE = "/front/espnet_segmentation"
PARAMS = {"input_width": 256, "input_height": 128, "warmup_frames": 1, "use_camera_info": True}


# Without the ros2 daemon (it would outlive the test) each command discovers the graph
# itself: give it time to find the node on a busy machine.
DISCOVERY = {"param": ["--no-daemon", "--timeout", "30"], "node": ["--no-daemon", "--spin-time", "5"]}


def ros2(env, verb, sub, *args, timeout=180):
    """``ros2 VERB SUB ARGS...`` as typed in a terminal; returns (exit code, stdout + stderr)."""
    cmd = ["ros2", verb, sub] + DISCOVERY.get(verb, []) + [str(a) for a in args]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr


def params_file(path, values):
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": values}}))
    return path


def node_pid(launch):
    """The node's pid: the one child of ``ros2 launch`` (rviz is absent here)."""
    for _ in range(100):
        children = child_pids(launch.proc.pid)
        if children:
            return children[0]
        time.sleep(0.1)
    raise AssertionError("ros2 launch started no process:\n" + launch.log())


def assert_clean(log, *expected):
    assert "Traceback" not in log and "process has died" not in log, log
    for text in expected:
        assert text in log, (text, log)


class Publisher:
    """Publishes a frame (and camera_info) to a node's input, again and again until stopped:
    best-effort input may lose any single message."""

    def __init__(self, probe, frame, image_topic, info_topic=None):
        from sensor_msgs.msg import CameraInfo, Image

        from espnet_ros.messages.encode import camera_info_message, rclpy_kit
        kit = rclpy_kit()
        self.probe, self.frame = probe, frame
        self.image_pub = probe.node.create_publisher(Image, image_topic, 5)
        self.info_pub = probe.node.create_publisher(CameraInfo, info_topic, 5) if info_topic else None
        self.info = camera_info_message(kit, kit.Header(frame_id="front_cam"),
                                              frame.shape[1], frame.shape[0])

    def until(self, condition, sec, timeout=120.0, frame_id="front_cam"):
        """Publishes the frame stamped ``sec`` every 0.5 s until ``condition()``."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            msg = padded_image(self.frame, "bgr8", stamp_msg=stamp(sec, 42), frame_id=frame_id)
            if self.info_pub is not None:
                self.info.header = msg.header
                self.info_pub.publish(self.info)
            self.image_pub.publish(msg)
            if self.probe.spin_until(condition, 0.5):
                return True
        return False


@pytest.fixture(scope="module")
def front(ros2_env, tmp_path_factory, probe):
    """``ros2 launch`` with every launch argument; stopped by test_sigint_to_launch."""
    from sensor_msgs.msg import CameraInfo, Image
    tmp = tmp_path_factory.mktemp("front")
    profile = tmp / "my_fastdds_profile.xml"
    shutil.copy(profile_path(), str(profile))  # loopback-only, under a path of its own
    env = dict(ros2_env)
    # The launch process itself says OFF: LOCALHOST in the node can only come from the argument.
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "OFF"
    launch = Started(
        ["ros2", "launch", "espnet_ros", "segment.launch.py", "namespace:=front",
         "image:=/front/image_raw", "camera_info:=/front/cam/info", "model:=" + MODEL,
         "backend:=torch", "device:=cpu", "params_file:=%s" % params_file(tmp / "p.yaml", PARAMS),
         "use_sim_time:=false", "rviz:=true", "discovery_range:=LOCALHOST",
         "fastdds_profile:=%s" % profile],
        env, tmp / "launch.log")
    launch.profile = profile
    for name in ("label", "camera_info"):
        probe.subscribe(CameraInfo if name == "camera_info" else Image, NODE + "/" + name)
    assert probe.spin_until(lambda: probe.node.count_publishers(NODE + "/label") > 0, 180), \
        launch.log()
    yield launch
    if launch.proc.poll() is None:
        launch.stop()


def test_launch_arguments_reach_the_node_and_a_frame_yields_a_label(probe, front, frame, ros2_env):
    publisher = Publisher(probe, frame, "/front/image_raw", "/front/cam/info")
    labels, infos = probe.received[NODE + "/label"], probe.received[NODE + "/camera_info"]
    assert publisher.until(lambda: labels and infos, sec=7000), front.log()
    label = labels[-1][1]
    assert (label.header.stamp.sec, label.header.stamp.nanosec) == (7000, 42)
    assert label.header.frame_id == "front_cam" and label.encoding == "mono8"
    assert (label.width, label.height) == (320, 160)
    assert infos[-1][1].header.stamp.sec == 7000  # camera_info:= remapped the input
    env = environ_of(node_pid(front))
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(front.profile)
    for name, expected in (("model", "String value is: " + MODEL),
                           ("backend", "String value is: torch"),
                           ("device", "String value is: cpu"),
                           ("use_sim_time", "Boolean value is: False"),
                           ("input_width", "Integer value is: 256")):  # from params_file
        code, out = ros2(ros2_env, "param", "get", NODE, name)
        assert code == 0 and expected in out, (name, out)
    log = front.log()
    assert log.count("rviz:=true, but rviz2 is not installed here") == 1, log
    assert_clean(log, "diagnostics published with")
    assert "~/info is off" not in log  # the messages come from the install tree


def test_ros2_node_list_and_topic_echo(probe, front, frame, ros2_env):
    for _ in range(6):  # a fresh participant may need more than one spin to see every node
        code, out = ros2(ros2_env, "node", "list")
        if code != 0 or NODE in out.split():
            break
    assert code == 0 and NODE in out.split(), out
    echo = subprocess.Popen(["ros2", "topic", "echo", "--once", "--no-daemon", "--field", "header",
                             NODE + "/label", "sensor_msgs/msg/Image"], env=ros2_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    publisher = Publisher(probe, frame, "/front/image_raw")
    try:
        assert publisher.until(lambda: echo.poll() is not None, sec=7100, frame_id="echo_cam",
                               timeout=60)
    finally:
        if echo.poll() is None:
            echo.kill()
        out = echo.communicate()[0]
    assert echo.returncode == 0, out
    assert "sec: 7100" in out and "frame_id: echo_cam" in out, out


def test_ros2_param_set_live_reload_and_read_only(probe, front, frame, ros2_env):
    code, out = ros2(ros2_env, "param", "set", NODE, "overlay_alpha", "0.8")
    assert code == 0 and "Set parameter successful" in out, out
    code, out = ros2(ros2_env, "param", "get", NODE, "overlay_alpha")
    assert "Double value is: 0.8" in out, out
    code, out = ros2(ros2_env, "param", "set", NODE, "model", "no-such-model")
    assert "Setting parameter failed" in out and "unknown model" in out, out
    code, out = ros2(ros2_env, "param", "set", NODE, "model", "espnet-c-p2q3-cityscapes")
    assert "Set parameter successful" in out, out
    code, out = ros2(ros2_env, "param", "set", NODE, "input_transport",
                     "compressed")
    assert "Setting parameter failed" in out and "read-only" in out, out
    labels = probe.received[NODE + "/label"]
    publisher = Publisher(probe, frame, "/front/image_raw")
    assert publisher.until(lambda: labels[-1][1].header.stamp.sec == 7200, sec=7200), front.log()
    assert "serving espnet-c-p2q3-cityscapes" in front.log()


def test_sigint_to_launch_is_a_clean_exit(front):
    """Runs last on this launch: SIGINT to ros2 launch alone (launch forwards it)."""
    code, _ = front.stop(signal.SIGINT)
    assert code == 0, front.log()
    assert_clean(front.log(), "process has finished cleanly", "stopping on SIGINT")


@pytest.fixture
def streaming_launch(ros2_env, tmp_path, probe, data_dir):
    """A launch (use_sim_time:=true) fed by `espnet-ros camera` at 30 Hz; returns (launch, camera)."""
    from sensor_msgs.msg import Image

    from espnet_ros.ros.env import localhost_launch_arguments
    # The model comes from the params file alone: no model:= argument may replace it.
    launch = Started(["ros2", "launch", "espnet_ros", "segment.launch.py", "namespace:=stream",
                      "image:=/stream/camera/image", "use_sim_time:=true",
                      "params_file:=%s" % params_file(tmp_path / "p.yaml",
                                                      dict(PARAMS, model=MODEL))]
                     + localhost_launch_arguments(), ros2_env, tmp_path / "launch.log")
    camera = Started([sys.executable, "-m", "espnet_ros.cli", "camera",
                      data_dir / "cityscapes_samples", "--rate", "30", "--size", "512x256",
                      "--topic", "/stream/camera/image"], ros2_env, tmp_path / "camera.log")
    topic = "/stream/espnet_segmentation/label"
    probe.subscribe(Image, topic)
    started = time.time()  # labels of an earlier test's launch may still be queued here

    def streaming_now():
        return sum(m.header.stamp.sec >= started for m in probe.messages(topic)) >= 5

    streaming = probe.spin_until(streaming_now, 180)
    try:
        assert streaming, launch.log()
        yield launch, camera
    finally:
        for process in (launch, camera):
            if process.proc.poll() is None:
                process.stop()


def test_terminal_ctrl_c_while_frames_stream(streaming_launch, ros2_env):
    """SIGINT to launch and node at once, as a terminal sends it (launch forwards another)."""
    launch, camera = streaming_launch
    code, out = ros2(ros2_env, "param", "get", "/stream/espnet_segmentation",
                     "use_sim_time")
    assert "Boolean value is: True" in out, out
    code, out = ros2(ros2_env, "param", "get", "/stream/espnet_segmentation", "model")
    assert "String value is: " + MODEL in out, out  # the YAML's, not a launch default
    pid = node_pid(launch)
    launch.signal_group(signal.SIGINT)
    code, _ = launch.wait()
    assert code == 0, launch.log()
    assert_clean(launch.log(), "process has finished cleanly", "stopping on SIGINT")
    assert not os.path.exists("/proc/%d" % pid)  # not orphaned


def test_sigterm_to_the_node_alone_is_a_clean_exit(streaming_launch):
    """docker stop / systemd / kill: SIGTERM to the node under launch."""
    launch, camera = streaming_launch
    pid = node_pid(launch)
    subprocess.run(["kill", "-TERM", str(pid)], check=True)
    assert launch.wait_for_log("process has finished cleanly", 30), launch.log()
    assert_clean(launch.log(), "stopping on SIGTERM")
    code, _ = launch.wait(30)  # its only process finished: launch ends by itself
    assert code == 0, launch.log()


def test_ros2_run_serves_and_sigterm_ends_it_cleanly(ros2_env, tmp_path, probe, frame):
    from sensor_msgs.msg import Image
    run = Started(["ros2", "run", "espnet_ros", "segment_node", "--ros-args",
                   "-r", "__ns:=/run", "-r", "image:=/run/image_raw", "-p", "model:=" + MODEL,
                   "-p", "input_width:=256", "-p", "input_height:=128", "-p", "warmup_frames:=1"],
                  ros2_env, tmp_path / "run.log")
    try:
        topic = "/run/espnet_segmentation/label"
        probe.subscribe(Image, topic)
        assert probe.spin_until(lambda: probe.node.count_publishers(topic) > 0, 180), run.log()
        publisher = Publisher(probe, frame, "/run/image_raw")
        assert publisher.until(lambda: probe.received[topic], sec=7300), run.log()
        assert probe.messages(topic)[-1].header.stamp.sec == 7300
    finally:
        code, _ = run.stop(signal.SIGTERM)  # ros2 run forwards it to the node
    assert code == 0, run.log()
    assert_clean(run.log(), "stopping on SIGTERM")


def _streamed_demo(env, tmp_path, starter, *extra):
    return Started([sys.executable, "-m", "espnet_ros.cli", "demo", "--model", MODEL,
                    "--rate", "5", "--size", "512x256", "--out", tmp_path / "demo",
                    "--starter", starter, "--param", "input_width:=256",
                    "--param", "input_height:=128"] + list(extra), env, tmp_path / "demo.log")


def test_demo_through_ros2_launch_and_its_ctrl_c(ros2_env, tmp_path):
    """The main job's demo: the node under ros2 launch, then Ctrl-C to the whole group."""
    demo = _streamed_demo(ros2_env, tmp_path, "auto", "--duration", "600")
    try:
        assert demo.wait_for_log("FPS", 240), demo.log()
    finally:
        demo.signal_group(signal.SIGINT)
        code, _ = demo.wait(60)
    log = demo.log()
    assert code == 0, log
    assert "demo: ros2 launch and camera started" in log and "first label" in log
    assert "demo: stopped by SIGINT" in log
    node_log = (tmp_path / "demo" / "node.log").read_text()
    camera_log = (tmp_path / "demo" / "camera.log").read_text()
    assert_clean(log + node_log + camera_log, "process has finished cleanly")


def test_demo_without_ros2_launch_starts_the_node_directly(ros2_env, tmp_path):
    """A plain pip machine: no ros2 command, so the demo says so in one line."""
    env = dict(ros2_env)
    env["PATH"] = ":".join(p for p in env["PATH"].split(":")
                           if not (p and shutil.which("ros2", path=p)))
    demo = _streamed_demo(env, tmp_path, "auto", "--duration", "2")
    code, _ = demo.wait(300)
    log = demo.log()
    assert code == 0, log
    assert log.count("ros2 launch is not available here (no ros2 command on PATH): "
                     "starting the node directly") == 1, log
    assert "demo: the node and camera started" in log and "first label" in log
    assert (tmp_path / "demo" / "summary.json").is_file()

