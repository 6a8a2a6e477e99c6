"""Shared fixtures. Third-party data is read from the folder named by ESPNET_ROS_DATA."""
import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest

# launch_testing's pytest plugins (auto-loaded once the ROS 2 tools are installed) import
# launch.logging, which makes every logger created afterwards a LaunchLogger that does not
# propagate: caplog would see none of the project's records. Loggers created from here on are
# plain ones again (launch adds its own handlers to the loggers it uses).
logging.setLoggerClass(logging.Logger)

DATA_ENV = "ESPNET_ROS_DATA"

# ---------------------------------------------------------------- tests by layer
# `pytest -m "not ros"` runs the pure tests (no process started, no DDS) in under a minute.
# A test is marked ``ros`` when its module is listed here (every test there starts the node,
# the CLI, a ros2 tool or joins DDS), when it uses one of ROS_FIXTURES, or by its own mark.
ROS_MODULES = {
    "test_bag_replay.py", "test_clean_exit.py", "test_diagnostics_parity.py",
    "test_interfaces.py", "test_jazzy.py", "test_loopback_netns.py", "test_node.py",
    "test_node_cameras.py", "test_node_hostile.py", "test_node_lifecycle.py",
    "test_node_nav2.py", "test_node_outputs.py", "test_own_data.py", "test_ros2_launch.py",
    "test_rosout.py", "test_setup_env.py", "test_workspace_flow.py",
}
ROS_FIXTURES = {"probe", "interfaces_workspace", "interfaces_env", "ros2_env"}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "ros: starts processes (the node, the CLI, ros2 tools) or joins DDS; "
        "deselect with -m 'not ros'")


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.name in ROS_MODULES or ROS_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.ros)


@pytest.fixture(scope="module", autouse=True)
def zombie_dds_segments_removed():
    """After each test module, Fast DDS's own cleaner (``fastdds shm clean``) removes the
    shared-memory segments of processes that died without closing them. With the project
    profiles each holds 128 MiB of RAM: a few suite runs here left 22 GB in /dev/shm and one
    was OOM-killed. Only segments whose owner is gone are removed."""
    yield
    tool = shutil.which("fastdds")
    if tool:
        subprocess.run([tool, "shm", "clean"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60, check=False)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path, parent):
    """Plain test modules, collected by pytest itself.

    launch_testing's plugin (auto-loaded with the ROS 2 tools) imports every test file while
    collecting the *directory* to look for launch tests; a module-level
    ``pytest.importorskip`` then skips the whole directory, every test with it. This suite has
    no launch_testing-style tests, so its modules never need that plugin's collector.
    """
    if module_path.name == "__init__.py":
        return None
    return pytest.Module.from_parent(parent, path=module_path)


def _data_root():
    value = os.environ.get(DATA_ENV)
    return Path(value) if value else None


@pytest.fixture(scope="session")
def data_dir():
    root = _data_root()
    if root is None:
        pytest.skip("%s is not set: point it at the shared data folder" % DATA_ENV)
    if not (root / "README.md").is_file():
        pytest.fail("%s=%s does not hold the shared data" % (DATA_ENV, root))
    return root


@pytest.fixture(scope="session", autouse=True)
def weights_from_local_mirror(tmp_path_factory):
    """Weights come through the real resolve/download path, from the local publication copy."""
    root = _data_root()
    saved = {k: os.environ.get(k) for k in ("ESPNET_ROS_WEIGHTS_DIR", "ESPNET_ROS_WEIGHTS_MIRROR")}
    os.environ["ESPNET_ROS_WEIGHTS_DIR"] = str(tmp_path_factory.mktemp("weights_cache"))
    if root is not None:
        os.environ["ESPNET_ROS_WEIGHTS_MIRROR"] = str(root / "espnet_pretrained")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def city_frame(data_dir):
    import cv2
    image = cv2.imread(str(data_dir / "cityscapes_samples" /
                           "frankfurt_000000_000294_leftImg8bit.png"), cv2.IMREAD_COLOR)
    assert image is not None
    return image


@pytest.fixture(scope="session")
def frame(city_frame):
    """The node tests' camera frame: a Cityscapes frame at 320x160 (modules that need another
    size define their own ``frame``)."""
    import cv2
    return cv2.resize(city_frame, (320, 160), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def probe(request):
    """A test-side rclpy node (loopback-only DDS) for the module's tests, named after the
    module; it records /diagnostics from its start, so a test reads every status a node sent."""
    pytest.importorskip("rclpy")
    from diagnostic_msgs.msg import DiagnosticArray
    from rosutil import start_probe, stop_probe

    module = request.module.__name__.rpartition(".")[2]
    probe = start_probe("espnet_%s_probe" % module.replace("test_", "", 1))
    probe.subscribe(DiagnosticArray, "/diagnostics", depth=200)
    yield probe
    stop_probe(probe)


@pytest.fixture(scope="session")
def interfaces_workspace(tmp_path_factory):
    """msg/ built once per session with scripts/build_interfaces.sh.

    ESPNET_ROS_INTERFACES_PREFIX naming the install/ dir of such a workspace makes this an
    incremental rebuild (about a second); otherwise a clean build in a temporary directory.
    Returns {"ws", "prefix", "site", "lib", "seconds", "output"}.
    """
    import subprocess
    import time
    import warnings

    repo = Path(__file__).resolve().parents[1]
    given = os.environ.get("ESPNET_ROS_INTERFACES_PREFIX")
    prefix = Path(given).resolve() if given else None
    if prefix is not None and prefix.name == "install" and (prefix.parent / "build").is_dir():
        ws, args = prefix.parent, []
    else:
        if given:
            warnings.warn("ESPNET_ROS_INTERFACES_PREFIX=%s is not an install/ dir made by "
                          "build_interfaces.sh; building into a temporary directory" % given,
                          stacklevel=2)
        ws, args = tmp_path_factory.mktemp("ros_ws"), ["--clean"]
    start = time.monotonic()
    proc = subprocess.run(["bash", str(repo / "scripts" / "build_interfaces.sh")] + args + [str(ws)],
                          cwd=str(repo), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=900)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, "build_interfaces.sh failed:\n" + proc.stdout[-6000:]
    prefix = ws / "install"
    sites = sorted(prefix.glob("lib/python3*/site-packages/espnet_ros/msg/__init__.py"))
    assert sites, proc.stdout[-3000:]
    return {"ws": ws, "prefix": prefix, "site": sites[0].parents[2], "lib": prefix / "lib",
            "seconds": seconds, "output": proc.stdout}


@pytest.fixture(scope="session")
def interfaces_env(interfaces_workspace):
    """Environment for processes that use espnet_ros.msg; also applied to this process."""
    env = {"ESPNET_ROS_INTERFACES_PREFIX": str(interfaces_workspace["prefix"])}
    os.environ.update(env)
    return env


@pytest.fixture(scope="session")
def ros2_env(interfaces_workspace):
    """The environment of a ROS user on the colcon install tree, for the real ROS 2 tools.

    ``AMENT_PREFIX_PATH=<install>:<venv>`` and the venv's bin first on PATH (the node's
    launcher starts ``python3``), as on a ROS install; nothing points at the install tree
    otherwise. DDS stays on loopback (this project's tests). Skips where the tools are absent:
    setup-env.sh installs them from ESPNET_ROS_ROS2 or a ROS install provides them.
    """
    import importlib.util
    import shutil
    import sys

    from espnet_ros.ros.env import localhost_env
    bin_dir = os.path.join(sys.prefix, "bin")
    if importlib.util.find_spec("launch_ros") is None or \
            shutil.which("ros2", path=bin_dir + os.pathsep + os.environ.get("PATH", "")) is None:
        pytest.skip("the ROS 2 tools (ros2, launch_ros) are not installed: scripts/setup-env.sh "
                    "installs them from ESPNET_ROS_ROS2, or source a ROS 2 install")
    env = localhost_env()
    env.pop("ESPNET_ROS_INTERFACES_PREFIX", None)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([str(interfaces_workspace["prefix"]), sys.prefix])
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env
