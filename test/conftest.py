"""Shared fixtures. Third-party data is read from the folder named by ESPNET_ROS_DATA."""
import logging
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

# launch_testing's pytest plugins (auto-loaded once the ROS 2 tools are installed) import
# launch.logging, which makes every logger created afterwards a LaunchLogger that does not
# propagate: caplog would see none of the project's records. Loggers created from here on are
# plain ones again (launch adds its own handlers to the loggers it uses).
logging.setLoggerClass(logging.Logger)

DATA_ENV = "ESPNET_ROS_DATA"

# A shell without job control starts `cmd &` with SIGINT ignored, and an ignored signal stays
# ignored through exec: `ros2 launch` then never sees the SIGINT a test sends it (launch keeps
# an inherited SIG_IGN; measured: SigIgn 0x1001007 on the launch process, killed after 30 s).
# A caught signal is reset to the default on exec, so every process the tests start gets a
# working Ctrl-C again, as in a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# ---------------------------------------------------------------- tests by layer
# Two markers, applied here rather than in each file:
# - ros: the test starts processes (the node, the CLI, ros2 tools, torchrun) or joins DDS:
#   every test of ROS_MODULES, every test using one of ROS_FIXTURES, and ROS_TESTS;
# - slow: no process and no DDS, but more than a second of model building, conversion or
#   training on this project's 2-core CI machine (measured with --durations=0).
# `pytest -m "not ros and not slow"` runs in well under a minute; `-m "not ros"` in minutes.
ROS_MODULES = {
    "test_bag_replay.py", "test_clean_exit.py", "test_diagnostics_parity.py",
    "test_distributed.py", "test_interfaces.py", "test_jazzy.py", "test_loopback_netns.py",
    "test_node.py", "test_node_cameras.py", "test_node_hostile.py", "test_node_lifecycle.py",
    "test_node_nav2.py", "test_node_outputs.py", "test_own_data.py", "test_ros2_launch.py",
    "test_rosout.py", "test_setup_env.py", "test_workspace_flow.py",
}
ROS_FIXTURES = {"probe", "interfaces_workspace", "interfaces_env", "ros2_env"}
ROS_TESTS = {
    "test_train.py::test_resume_after_sigkill_gives_the_uninterrupted_weights",
}
SLOW_TESTS = {
    "test_argmax.py::test_openvino_hands_on_nhwc_logits_as_an_nchw_view_with_the_same_labels",
    "test_argmax.py::test_the_segmenter_gives_the_same_labels_for_nchw_and_nhwc_logits",
    "test_backends.py::test_auto_picks_a_runnable_backend",
    "test_backends.py::test_backend_labels_match_eager_fp32_on_real_frames",
    "test_backends.py::test_encoder_and_baselines_match_eager_on_real_frames",
    "test_backends.py::test_fixed_shape_backend_is_built_per_image_size",
    "test_backends.py::test_segmenter_keeps_its_old_api",
    "test_bag.py::test_offline_eval_equals_the_model_on_the_dataset_files",
    "test_bench.py::test_bench_cpu_runs_end_to_end",
    "test_bench.py::test_bench_system_writes_markdown_json_and_plot",
    "test_bench.py::test_op_profile_splits_the_forward_by_kind_of_op",
    "test_bench.py::test_sweep_pins_each_clock_and_measures_power_there",
    "test_cli.py::test_info_lists_backends",
    "test_cli.py::test_models_table_and_json",
    "test_cli.py::test_predict_unknown_model_and_missing_weights",
    "test_cli.py::test_predict_writes_label_color_overlay_for_the_sample_frames",
    "test_int8_recipe.py::test_int8_leaves_adds_concats_batchnorms_and_kept_blocks_in_fp32",
    "test_lowp.py::test_a_changed_key_rebuilds_and_an_unchanged_one_loads",
    "test_lowp.py::test_a_corrupt_cached_model_is_removed_with_a_warning_and_rebuilt",
    "test_lowp.py::test_a_new_calibration_set_is_a_new_key",
    "test_lowp.py::test_a_passed_int8_model_is_a_real_int8_graph",
    "test_lowp.py::test_auto_times_a_gated_calibrated_model_and_skips_a_refused_one",
    "test_lowp.py::test_an_int8_model_with_every_block_kept_fp32_is_refused_though_it_passed",
    "test_lowp.py::test_bench_cpu_labels_rows",
    "test_lowp.py::test_calibrate_then_eval_int8_on_camvid",
    "test_lowp.py::test_constant_frame_calibration_is_refused_and_the_node_path_falls_back",
    "test_train.py::test_erfnet_trains_in_two_stages_and_loads_through_the_zoo",
    "test_train.py::test_models_build_and_train_for_few_classes",
    "test_train.py::test_resume_restores_the_dropout_rng",
    "test_zoo.py::test_camvid_normalization_is_the_training_split_statistics",
}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "ros: starts processes (the node, the CLI, ros2 tools, torchrun) or joins "
        "DDS; deselect with -m 'not ros'")
    config.addinivalue_line(
        "markers", "slow: pure, but over a second of model work on 2 cores; deselect with "
        "-m 'not slow'")


def _test_id(item):
    """``file.py::test_name`` without parameters."""
    return "%s::%s" % (item.path.name, item.originalname)


def pytest_collection_modifyitems(items):
    for item in items:
        test_id = _test_id(item)
        if item.path.name in ROS_MODULES or ROS_FIXTURES & set(item.fixturenames) \
                or test_id in ROS_TESTS:
            item.add_marker(pytest.mark.ros)
        elif test_id in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


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
