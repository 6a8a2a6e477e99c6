"""The README's install on a ROS 2 system, typed as a ROS user types it: the package cloned
into ``ws/src``, ``colcon build``, ``source install/setup.bash``, then ``ros2 pkg prefix``,
``ros2 interface show`` and ``ros2 launch espnet_ros segment.launch.py`` answering a frame.

The shared Kilted wheels in this environment stand in for ``/opt/ros/<distro>``: their
``setup.bash`` is the file ``scripts/build_interfaces.sh --underlay`` writes. rosdep needs
the internet; test_package_deps.py checks each declared key against rosdep's lists instead.
"""
import os
import subprocess
import time

import cv2
import pytest

pytest.importorskip("launch_ros")

from rosutil import REPO, Started, padded_image, stamp, start_probe, stop_probe  # noqa: E402

from espnet_ros.ros.env import localhost_launch_arguments  # noqa: E402

MODEL = "espnet-p2q3-cityscapes"


def typed(script, cwd, env=None, timeout=600):
    """Runs ``script`` in bash -e as typed in a terminal; returns its output (fails on error)."""
    proc = subprocess.run(["bash", "-ec", script], cwd=str(cwd), env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    assert proc.returncode == 0, "%s\n---\n%s" % (script, proc.stdout[-8000:])
    return proc.stdout


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """``ws/src/espnet_ros`` (a copy of the tracked files, as ``git clone`` gives), built."""
    ws = tmp_path_factory.mktemp("user_ws")
    clone = ws / "src" / "espnet_ros"
    clone.mkdir(parents=True)
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=str(REPO), check=True,
                           stdout=subprocess.PIPE).stdout.decode().split("\0")
    subprocess.run(["tar", "-C", str(REPO), "-cf", str(ws / "src.tar")] +
                   [f for f in files if f and (REPO / f).is_file()], check=True)
    subprocess.run(["tar", "-C", str(clone), "-xf", str(ws / "src.tar")], check=True)
    (ws / "src.tar").unlink()
    underlay = ws / "ros_underlay.bash"
    typed("bash %s --underlay %s" % (REPO / "scripts" / "build_interfaces.sh", underlay), ws)
    env = {k: v for k, v in os.environ.items()
           if k not in ("AMENT_PREFIX_PATH", "ESPNET_ROS_INTERFACES_PREFIX", "PYTHONPATH",
                        "CMAKE_PREFIX_PATH", "COLCON_PREFIX_PATH")}
    start = time.monotonic()
    out = typed("source %s  # stands in for /opt/ros/kilted/setup.bash\n"
                "colcon build --event-handlers console_cohesion+ status-\n" % underlay, ws, env)
    seconds = time.monotonic() - start
    # The environment after `source install/setup.bash`, for the commands that follow.
    dump = typed("source %s\nsource install/setup.bash\nenv -0" % underlay, ws, env)
    user_env = dict(item.split("=", 1) for item in dump.split("\0") if "=" in item)
    return {"ws": ws, "env": user_env, "underlay": underlay, "build_output": out,
            "seconds": seconds}


def test_colcon_build_installs_the_package_with_its_tests_registered(workspace):
    ws = workspace["ws"]
    out = workspace["build_output"]
    # The one warning expected: the venv standing in for /opt/ros has no local_setup.* files.
    warnings = [line for line in out.splitlines() if "WARNING" in line
                and "doesn't contain any 'local_setup.*' files" not in line]
    assert "Finished <<< espnet_ros" in out and not warnings, out
    prefix = ws / "install" / "espnet_ros"  # colcon's default, isolated layout
    share = prefix / "share" / "espnet_ros"
    for name in ("package.xml", "launch/segment.launch.py", "config/segment.yaml",
                 "msg/SegmentationInfo.msg"):
        assert (share / name).is_file(), name
    assert (prefix / "lib" / "espnet_ros" / "segment_node").is_file()
    # `colcon test` would run the pytest suite: CMakeLists.txt registered it with ctest.
    listed = typed("ctest --test-dir build/espnet_ros -N", ws, workspace["env"])
    assert "espnet_ros_pytest" in listed, listed
    # The Python the user gets is the install tree's, not this checkout's.
    where = typed("python3 -c 'import espnet_ros.msg, espnet_ros.ros.segment_node as m; "
                  "print(m.__file__)'", ws, workspace["env"])
    assert str(ws / "install") in where, where


def test_ros2_pkg_prefix_and_interface_show(workspace):
    out = typed("ros2 pkg prefix espnet_ros", workspace["ws"], workspace["env"])
    assert out.strip() == str(workspace["ws"] / "install" / "espnet_ros"), out
    out = typed("ros2 interface show espnet_ros/msg/SegmentationInfo", workspace["ws"],
                workspace["env"])
    for field in ("std_msgs/Header header", "string model", "uint16[] class_ids",
                  "uint8 void_id"):
        assert field in out, out


def test_ros2_launch_from_the_workspace_answers_a_frame(workspace, data_dir, tmp_path):
    from sensor_msgs.msg import Image
    probe = start_probe("espnet_workspace_probe")
    env = dict(workspace["env"], ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    model: %s\n    input_width: 256\n"
                      "    input_height: 128\n    warmup_frames: 1\n" % MODEL)
    launch = Started(["ros2", "launch", "espnet_ros", "segment.launch.py", "namespace:=ws",
                      "image:=/ws/image_raw", "params_file:=%s" % params]
                     + localhost_launch_arguments(), env, tmp_path / "launch.log")
    try:
        topic = "/ws/espnet_segmentation/label"
        probe.subscribe(Image, topic)
        publisher = probe.node.create_publisher(Image, "/ws/image_raw", 5)
        frame = cv2.resize(cv2.imread(str(data_dir / "cityscapes_samples" /
                                          "frankfurt_000000_000294_leftImg8bit.png")),
                           (320, 160), interpolation=cv2.INTER_AREA)
        assert probe.spin_until(lambda: probe.node.count_publishers(topic) > 0, 180), \
            launch.log()
        end = time.monotonic() + 120
        while not probe.received[topic] and time.monotonic() < end:
            publisher.publish(padded_image(frame, "bgr8", stamp_msg=stamp(7400, 1)))
            probe.spin_until(lambda: probe.received[topic], 0.5)
        assert probe.received[topic], launch.log()
        label = probe.messages(topic)[-1]
        assert (label.header.stamp.sec, label.width, label.height) == (7400, 320, 160)
        log = launch.log()
        # The node runs from the workspace's install tree, with ~/info and ~/label_info on.
        assert "~/info is off" not in log and "~/label_info is off" not in log, log
        assert "serving " + MODEL in log, log
    finally:
        code, _ = launch.stop()
        stop_probe(probe)
    assert code == 0, launch.log()


def test_colcon_test_runs_the_pytest_suite(workspace):
    """``colcon test`` as typed; PYTEST_ADDOPTS narrows the registered suite to one file."""
    env = dict(workspace["env"], PYTEST_ADDOPTS="-k test_package_deps -p no:cacheprovider")
    out = typed("colcon test --packages-select espnet_ros --event-handlers console_direct+\n"
                "colcon test-result --all --verbose", workspace["ws"], env)
    results = list((workspace["ws"] / "build" / "espnet_ros" / "test_results" / "espnet_ros")
                   .glob("*.xml"))
    assert results, out
    report = results[0].read_text()
    assert "test_package_deps" in report and 'failures="0"' in report, report[-3000:]
    assert "test_every_import_is_classified" in report, report[-3000:]
