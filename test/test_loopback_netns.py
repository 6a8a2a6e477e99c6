"""No packet leaves loopback, proved per process: the scenarios run in a network namespace of
their own with a fake external interface (test/netns.py), whose transmit counter counts only
what this project's processes send, whatever else runs on the machine. The same namespace shows
that the check can fail and what the launch file's product defaults do."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("rclpy")

import netns  # noqa: E402

MODEL = "espnet-p2q3-cityscapes"


@pytest.fixture(scope="module")
def in_netns():
    reason = netns.unavailable()
    if reason:
        pytest.skip(reason)
    return netns.run


# ---------------------------------------------------------------- scenarios (in the namespace)

def project_processes(arg):
    """The demo through ros2 launch: launch, node, camera and the watcher, with this project's
    loopback settings; then the ros2 command line on the same graph."""
    env = arg["env"]
    demo = subprocess.run(
        [sys.executable, "-m", "espnet_ros.cli", "demo", "--starter", "launch", "--model", MODEL,
         "--rate", "5", "--duration", "3", "--size", "512x256", "--out", arg["out"],
         "--param", "input_width:=256", "--param", "input_height:=128"],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=400)
    topics = subprocess.run(["ros2", "topic", "list", "--no-daemon", "--spin-time", "2"],
                            env=env, capture_output=True, text=True, timeout=120)
    return {"demo_code": demo.returncode, "demo": (demo.stdout + demo.stderr)[-4000:],
            "topics_code": topics.returncode}


def plain_rclpy_without_loopback_settings(arg):
    """A ROS process as a user runs it on a robot: default discovery, no profile."""
    env = {k: v for k, v in arg["env"].items()
           if k not in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE")}
    code = ("import rclpy, time; from std_msgs.msg import String; rclpy.init(); "
            "n = rclpy.create_node('espnet_netns_control'); p = n.create_publisher(String, 'c', 1); "
            "end = time.time() + 3\n"
            "while time.time() < end: p.publish(String(data='x')); time.sleep(0.1)\n"
            "n.destroy_node(); rclpy.shutdown()")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    return {"code": result.returncode, "output": (result.stdout + result.stderr)[-2000:]}


def _node_env(launch, timeout=120):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from rosutil import child_pids, environ_of
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        children = child_pids(launch.pid)
        if children:
            time.sleep(0.5)
            return environ_of(children[0])
        time.sleep(0.1)
    return None


def launch_defaults(arg):
    """segment.launch.py without DDS arguments: (1) a user's own discovery range and profile
    reach the node unchanged; (2) a Fast DDS user without a profile gets the large-image one,
    and best-effort 1024x512 frames from a camera with the same profile are answered."""
    import rclpy
    from sensor_msgs.msg import Image
    base = {k: v for k, v in arg["env"].items()
            if k not in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE",
                         "RMW_FASTRTPS_USE_QOS_FROM_XML")}
    cmd = ["ros2", "launch", "espnet_ros", "segment.launch.py", "namespace:=robot",
           "image:=/robot/image", "model:=" + MODEL, "params_file:=" + arg["params_file"]]
    results = {}
    own = dict(base, FASTDDS_DEFAULT_PROFILES_FILE=arg["own_profile"])
    launch = subprocess.Popen(cmd, env=own, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT)
    results["own"] = _node_env(launch)
    launch.send_signal(2)
    results["own_code"] = launch.wait(60)

    log = open(arg["log"], "w")
    launch = subprocess.Popen(cmd, env=base, stdin=subprocess.DEVNULL, stdout=log,
                              stderr=subprocess.STDOUT)
    results["default"] = _node_env(launch)
    camera_env = dict(base, FASTDDS_DEFAULT_PROFILES_FILE=(results["default"] or {}).get(
        "FASTDDS_DEFAULT_PROFILES_FILE", ""))
    camera = subprocess.Popen(
        [sys.executable, "-m", "espnet_ros.cli", "camera", arg["frames"], "--rate", "10",
         "--size", "1024x512", "--topic", "/robot/image"], env=camera_env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    os.environ.clear()
    os.environ.update(camera_env)
    rclpy.init()
    node = rclpy.create_node("espnet_netns_probe")
    labels = []
    node.create_subscription(Image, "/robot/espnet_segmentation/label",
                             lambda m: labels.append((m.width, m.height)), 10)
    end = time.monotonic() + 240
    while len(labels) < 3 and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.shutdown()
    for process in (camera, launch):
        process.send_signal(2)
        process.wait(60)
    log.close()
    results["labels"] = labels
    results["default_code"] = launch.returncode
    return results


# ---------------------------------------------------------------- tests

def test_no_packet_leaves_loopback(in_netns, ros2_env, tmp_path, data_dir):
    report = in_netns("test_loopback_netns:project_processes",
                      {"env": ros2_env, "out": str(tmp_path / "demo")}, env=ros2_env)
    result = report["result"]
    assert result["demo_code"] == 0, result["demo"]
    assert "first label" in result["demo"] and result["topics_code"] == 0, result
    assert (report["tx_bytes"], report["tx_packets"]) == (0, 0), report


def test_the_check_sees_a_process_without_the_loopback_settings(in_netns, ros2_env):
    report = in_netns("test_loopback_netns:plain_rclpy_without_loopback_settings",
                      {"env": ros2_env}, env=ros2_env)
    assert report["result"]["code"] == 0, report["result"]["output"]
    assert report["tx_packets"] > 0, report  # DDS discovery multicast on espnet0


def test_launch_defaults_keep_the_users_dds_settings(in_netns, ros2_env, tmp_path, data_dir):
    # A user's own profile: our loopback transports without our reader and writer settings.
    own = tmp_path / "robot_profile.xml"
    ours = (Path(__file__).resolve().parents[1] / "config" / "fastdds_localhost.xml").read_text()
    own.write_text(ours[:ours.index("    <!-- Each sample's payload")]
                   + ours[ours.index("  </profiles>"):])
    params = tmp_path / "p.yaml"
    params.write_text(json.dumps({"/**": {"ros__parameters": {
        "input_width": 256, "input_height": 128, "warmup_frames": 1}}}))
    report = in_netns("test_loopback_netns:launch_defaults",
                      {"env": ros2_env, "own_profile": str(own), "params_file": str(params),
                       "frames": str(data_dir / "cityscapes_samples"),
                       "log": str(tmp_path / "launch.log")}, env=ros2_env)
    result = report["result"]
    log = (tmp_path / "launch.log").read_text()
    assert result["own"] is not None and result["default"] is not None, (result, log)
    assert "ROS_AUTOMATIC_DISCOVERY_RANGE" not in result["own"]  # inherited: none set
    assert result["own"]["FASTDDS_DEFAULT_PROFILES_FILE"] == str(own)
    assert "RMW_FASTRTPS_USE_QOS_FROM_XML" not in result["own"]  # the user's profile, as is
    assert "ROS_AUTOMATIC_DISCOVERY_RANGE" not in result["default"]
    large = result["default"]["FASTDDS_DEFAULT_PROFILES_FILE"]
    assert large.endswith("share/espnet_ros/config/fastdds_large_images.xml") and \
        os.path.isfile(large)
    assert result["default"]["RMW_FASTRTPS_USE_QOS_FROM_XML"] == "1"  # its memory policy
    assert result["labels"] and {tuple(s) for s in result["labels"]} == {(1024, 512)}, (result, log)
    assert result["own_code"] == 0 and result["default_code"] == 0, (result, log)


def jazzy_publisher_per_isolation(arg):
    """A Jazzy rclpy publisher (3 s) under each isolation form; espnet0's packets for each."""
    import netns
    code = ("import rclpy, time; from std_msgs.msg import String; rclpy.init(); "
            "n = rclpy.create_node('espnet_netns_jazzy'); p = n.create_publisher(String, 'c', 1); "
            "end = time.time() + 3\n"
            "while time.time() < end: p.publish(String(data='x')); time.sleep(0.1)\n"
            "n.destroy_node(); rclpy.shutdown()")
    results = {}
    for form, extra in arg["forms"].items():
        before = netns.tx_counters()["tx_packets"]
        run = subprocess.run([arg["python"], "-c", code], env=dict(arg["env"], **extra),
                             capture_output=True, text=True, timeout=120)
        results[form] = {"code": run.returncode, "output": (run.stdout + run.stderr)[-2000:],
                         "tx_packets": netns.tx_counters()["tx_packets"] - before}
    return results


def test_humbles_isolation_form_keeps_a_jazzy_process_on_loopback(in_netns):
    """Humble's form (ROS_LOCALHOST_ONLY=1, the <interfaceWhiteList> profile), tested on the
    Jazzy wheels. The control, the same process without either, runs last (a closing
    process's multicast leave would count for the next one) and sends discovery off loopback.
    (On Jazzy either profile alone still sends: the environment variable is what confines
    discovery, the profile what confines the data.)"""
    from test_jazzy import KILTED_ONLY
    venv = os.environ.get("ESPNET_ROS_JAZZY_VENV")
    if not venv or not (Path(venv) / "bin" / "python").is_file():
        pytest.skip("ESPNET_ROS_JAZZY_VENV is not set (scripts/test.sh sets it)")
    from espnet_ros.ros.env import localhost_env
    base = {k: v for k, v in os.environ.items() if k not in KILTED_ONLY + (
        "ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE", "ROS_LOCALHOST_ONLY",
        "RMW_FASTRTPS_USE_QOS_FROM_XML")}
    base["PATH"] = "%s:/usr/bin:/bin" % (Path(venv) / "bin")
    humble = localhost_env({}, distro="humble")
    # (RMW_FASTRTPS_USE_QOS_FROM_XML: the profile's reader/writer memory policy, see env.py)
    assert set(humble) == {"ROS_LOCALHOST_ONLY", "FASTDDS_DEFAULT_PROFILES_FILE",
                           "RMW_FASTRTPS_USE_QOS_FROM_XML"}
    report = in_netns("test_loopback_netns:jazzy_publisher_per_isolation",
                      {"python": str(Path(venv) / "bin" / "python"), "env": base,
                       "forms": {"humble": humble, "none": {}}})
    result = report["result"]
    assert all(r["code"] == 0 for r in result.values()), result
    assert result["humble"]["tx_packets"] == 0, result
    assert result["none"]["tx_packets"] > 0, result
