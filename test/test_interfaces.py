"""msg/SegmentationInfo.msg: colcon build with scripts/build_interfaces.sh, then real DDS.

The interfaces are built once per test run into a pytest temporary directory (clean build).
To keep the suite fast, point ESPNET_ROS_INTERFACES_PREFIX at the install/ directory of a
workspace made by scripts/build_interfaces.sh (e.g. build/ros_ws/install): the script then
rebuilds that workspace incrementally (about a second) instead of building from scratch.

Every process that starts ROS gets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, a random
ROS_DOMAIN_ID and a unique topic name.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

try:
    import rclpy  # noqa: F401

    HAVE_RCLPY = True
except Exception:  # ImportError, or a missing RMW library (OSError/RuntimeError)
    HAVE_RCLPY = False

pytestmark = pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy is not importable")

REPO = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO / "scripts" / "build_interfaces.sh"
PREFIX_ENV = "ESPNET_ROS_INTERFACES_PREFIX"
FASTDDS_PROFILE = REPO / "config" / "fastdds_localhost.xml"
BUILD_TIMEOUT = 600

# Values chosen to hit the limits of the field types; floats exactly representable in float32.
EXPECTED = {
    "stamp_sec": 1700000000,
    "stamp_nanosec": 123456789,
    "frame_id": "camera_optical_frame",
    "model": "espnetv2_cityscapes",
    "backend": "onnxruntime",
    "precision": "fp16",
    "inference_ms": 12.5,
    "latency_ms": 40.25,
    "width": 4294967295,
    "height": 512,
    "class_ids": [0, 1, 13, 255, 65535],
    "pixel_counts": [400000, 100000, 24288, 0, 4294967295],
    "void_id": 255,
}

_LOAD_MSG = """
import json, os, sys, time
mode = sys.argv[1]
reason = ""
if mode == "helper":
    from espnet_ros.ros.interfaces import load_segmentation_info
    SegmentationInfo, reason = load_segmentation_info()
    if SegmentationInfo is None:
        print("NO_MESSAGE: " + reason, flush=True)
        sys.exit(3)
else:
    from espnet_ros.msg import SegmentationInfo
import espnet_ros
import espnet_ros.msg
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""

PUBLISHER = _LOAD_MSG + """
topic, stop_file, expected = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
rclpy.init()
node = rclpy.create_node("segmentation_info_test_publisher")
pub = node.create_publisher(SegmentationInfo, topic, QOS)
msg = SegmentationInfo()
msg.header.stamp.sec = expected["stamp_sec"]
msg.header.stamp.nanosec = expected["stamp_nanosec"]
msg.header.frame_id = expected["frame_id"]
for name in ("model", "backend", "precision", "inference_ms", "latency_ms", "width", "height",
             "class_ids", "pixel_counts", "void_id"):
    setattr(msg, name, expected[name])
deadline = time.monotonic() + 60
while not os.path.exists(stop_file) and time.monotonic() < deadline:
    pub.publish(msg)
    time.sleep(0.05)
node.destroy_node()
rclpy.shutdown()
"""

SUBSCRIBER = _LOAD_MSG + """
topic = sys.argv[2]
rclpy.init()
node = rclpy.create_node("segmentation_info_test_subscriber")
received = []
node.create_subscription(SegmentationInfo, topic, received.append, QOS)
deadline = time.monotonic() + 60
while not received and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.1)
if not received:
    print("NOTHING_RECEIVED", flush=True)
    sys.exit(4)
m = received[0]
print(json.dumps({
    "stamp_sec": m.header.stamp.sec, "stamp_nanosec": m.header.stamp.nanosec,
    "frame_id": m.header.frame_id, "model": m.model, "backend": m.backend,
    "precision": m.precision, "inference_ms": m.inference_ms, "latency_ms": m.latency_ms,
    "width": m.width, "height": m.height,
    "class_ids": list(m.class_ids), "pixel_counts": list(m.pixel_counts),
    "void_id": m.void_id,
    "class_ids_typecode": m.class_ids.typecode, "pixel_counts_typecode": m.pixel_counts.typecode,
    "msg_module": espnet_ros.msg.__file__, "library": espnet_ros.__file__, "reason": reason,
}), flush=True)
node.destroy_node()
rclpy.shutdown()
"""


def _run_build(ws, *args):
    start = time.monotonic()
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), *args, str(ws)], cwd=str(REPO),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=BUILD_TIMEOUT)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, "build_interfaces.sh failed:\n" + proc.stdout[-6000:]
    return proc.stdout, seconds


@pytest.fixture(scope="session")
def workspace(interfaces_workspace):
    """The session's build (see conftest.interfaces_workspace)."""
    return interfaces_workspace


def _ros_env(workspace, mode):
    """Environment of a child process; mode "helper" or "env_file"."""
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # mandatory: nothing leaves loopback
    env.pop("ROS_LOCALHOST_ONLY", None)
    env.pop("ROS_STATIC_PEERS", None)
    if FASTDDS_PROFILE.is_file():
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(FASTDDS_PROFILE)
    lib = os.path.realpath(str(workspace["lib"]))
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep)
        if p and os.path.realpath(p) != lib)
    env.pop(PREFIX_ENV, None)
    if mode == "helper":
        # The library first (as from pip or the source tree), only the prefix for the message;
        # LD_LIBRARY_PATH does NOT name <prefix>/lib.
        env["PYTHONPATH"] = str(REPO)
        env[PREFIX_ENV] = str(workspace["prefix"])
    else:
        env["PYTHONPATH"] = ""  # env.sh adds the install tree
    return env


def _python_cmd(workspace, mode, script, *args):
    if mode == "env_file":
        env_sh = workspace["ws"] / "env.sh"
        return ["bash", "-c", '. "$0" && exec "$@"', str(env_sh), sys.executable, str(script),
                mode, *args]
    return [sys.executable, str(script), mode, *args]


def _stop(procs):
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_clean_build_installs_message_library_and_launcher(workspace):
    prefix, site = workspace["prefix"], workspace["site"]
    print("build_interfaces.sh took %.1f s" % workspace["seconds"])
    assert (prefix / "share" / "espnet_ros" / "msg" / "SegmentationInfo.msg").is_file()
    assert (prefix / "share" / "ament_index" / "resource_index" / "rosidl_interfaces"
            / "espnet_ros").is_file()
    for kind in ("rosidl_generator_c", "rosidl_typesupport_c", "rosidl_typesupport_fastrtps_c",
                 "rosidl_typesupport_introspection_c", "rosidl_generator_py"):
        assert (workspace["lib"] / ("libespnet_ros__%s.so" % kind)).is_file(), kind
    assert list((site / "espnet_ros").glob("espnet_ros_s__rosidl_typesupport_c*.so"))
    # The library's __init__.py (extend_path), not rosidl's empty one, and the library itself.
    init = (site / "espnet_ros" / "__init__.py").read_text()
    assert init == (REPO / "espnet_ros" / "__init__.py").read_text()
    assert "extend_path" in init
    assert (site / "espnet_ros" / "ros" / "interfaces.py").is_file()
    launcher = prefix / "lib" / "espnet_ros" / "segment_node"
    assert launcher.is_file() and os.access(str(launcher), os.X_OK)
    env_sh = (workspace["ws"] / "env.sh").read_text()
    for line in ('export %s="%s"' % (PREFIX_ENV, prefix),
                 'export PYTHONPATH="%s' % site,
                 'export LD_LIBRARY_PATH="%s' % workspace["lib"]):
        assert line in env_sh


def test_rebuild_is_incremental_and_keeps_working(workspace):
    output, seconds = _run_build(workspace["ws"])
    print("rebuild took %.1f s" % seconds)
    assert "Finished <<< espnet_ros" in output
    env = _ros_env(workspace, "env_file")
    code = "from espnet_ros.msg import SegmentationInfo; print(SegmentationInfo().void_id)"
    proc = subprocess.run(
        ["bash", "-c", '. "$0" && exec "$@"', str(workspace["ws"] / "env.sh"), sys.executable,
         "-c", code], env=env, cwd=str(workspace["ws"]), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "0", proc.stdout


@pytest.mark.parametrize("mode", ["helper", "env_file"])
def test_segmentation_info_round_trip_across_processes(workspace, tmp_path, mode):
    pub_py, sub_py = tmp_path / "pub.py", tmp_path / "sub.py"
    pub_py.write_text(textwrap.dedent(PUBLISHER))
    sub_py.write_text(textwrap.dedent(SUBSCRIBER))
    topic = "espnet_ros_test_" + uuid.uuid4().hex[:12]
    stop_file = tmp_path / "stop"
    env = _ros_env(workspace, mode)
    env["ROS_DOMAIN_ID"] = str(random.randint(1, 101))
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"

    procs = []
    try:
        sub = subprocess.Popen(_python_cmd(workspace, mode, sub_py, topic), env=env,
                               cwd=str(tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        procs.append(sub)
        pub = subprocess.Popen(
            _python_cmd(workspace, mode, pub_py, topic, str(stop_file), json.dumps(EXPECTED)),
            env=env, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        procs.append(pub)
        sub_out, sub_err = sub.communicate(timeout=90)
        stop_file.touch()
        pub_out, pub_err = pub.communicate(timeout=30)
    finally:
        stop_file.touch()
        _stop(procs)

    report = "subscriber rc=%s\n%s\n%s\npublisher rc=%s\n%s\n%s" % (
        sub.returncode, sub_out, sub_err[-3000:], pub.returncode, pub_out, pub_err[-3000:])
    assert sub.returncode == 0, report
    assert pub.returncode == 0, report
    got = json.loads(sub_out.strip().splitlines()[-1])
    for key, value in EXPECTED.items():
        assert got[key] == value, (key, got[key], value)
    assert (got["class_ids_typecode"], got["pixel_counts_typecode"]) == ("H", "I")
    site = str(workspace["site"])
    assert got["msg_module"].startswith(site), got["msg_module"]
    if mode == "helper":
        # extend_path: library from the source tree, message from the install prefix.
        assert got["library"] == str(REPO / "espnet_ros" / "__init__.py"), got["library"]
        # <prefix>/lib was not on LD_LIBRARY_PATH: the helper loaded the libraries by path.
        assert "preloaded" in got["reason"], got["reason"]
    else:
        assert got["library"].startswith(site), got["library"]


def _helper_in_subprocess(env, cwd):
    code = ("from espnet_ros.ros.interfaces import load_segmentation_info\n"
            "cls, reason = load_segmentation_info()\n"
            "print(cls is not None)\nprint(reason)\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(cwd),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
    found, reason = proc.stdout.strip().split("\n", 1)
    return found == "True", reason


def test_extend_path_library_first_install_tree_later(workspace, tmp_path):
    env = _ros_env(workspace, "helper")
    env.pop(PREFIX_ENV)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        [str(workspace["lib"])] + [p for p in env["LD_LIBRARY_PATH"].split(os.pathsep) if p])
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(workspace["site"])])
    code = ("import espnet_ros\nfrom espnet_ros.msg import SegmentationInfo\n"
            "import espnet_ros.msg\nprint(espnet_ros.__file__)\nprint(espnet_ros.msg.__file__)\n"
            "print(type(SegmentationInfo).__import_type_support__() is None)\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(tmp_path),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
    library, msg_module = proc.stdout.strip().splitlines()[:2]
    assert library == str(REPO / "espnet_ros" / "__init__.py")
    assert msg_module.startswith(str(workspace["site"]))


def test_helper_reports_why_without_prefix(workspace, tmp_path):
    env = _ros_env(workspace, "helper")
    env.pop(PREFIX_ENV)
    env.pop("AMENT_PREFIX_PATH", None)  # the ament index is the helper's other way to it
    found, reason = _helper_in_subprocess(env, tmp_path)
    assert not found
    assert PREFIX_ENV in reason and "not set" in reason


def test_helper_reports_missing_typesupport_libraries(workspace, tmp_path):
    # A prefix with the Python package but without <prefix>/lib/*.so.
    fake = tmp_path / "install"
    rel = workspace["site"].relative_to(workspace["prefix"])
    shutil.copytree(str(workspace["site"] / "espnet_ros" / "msg"),
                    str(fake / rel / "espnet_ros" / "msg"))
    for so in (workspace["site"] / "espnet_ros").glob("*.so"):
        shutil.copy2(str(so), str(fake / rel / "espnet_ros"))
    env = _ros_env(workspace, "helper")
    env[PREFIX_ENV] = str(fake)
    found, reason = _helper_in_subprocess(env, tmp_path)
    assert not found
    assert "typesupport" in reason and str(fake / "lib") in reason, reason
