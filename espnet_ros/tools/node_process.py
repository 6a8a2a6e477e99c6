"""segment_node in its own process: what the demo, the benchmarks, bag replay and tests start.

``NodeProcess`` starts the node directly; ``LaunchedNode`` through ``ros2 launch espnet_ros
segment.launch.py`` as a ROS user does, where the launch system and the package's install
tree are there (``ros2_launch_unavailable()`` says why not).
"""
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from ..ros.env import localhost_env, localhost_launch_arguments

LAUNCH_FILE = "segment.launch.py"
# Node parameters that segment.launch.py takes as launch arguments (they override params_file).
LAUNCH_ARGUMENT_PARAMS = ("model", "backend", "device", "use_sim_time")


def node_command(namespace, params, remaps=(), params_file=None):
    """The command line of ``python -m espnet_ros.ros.node_main`` with ROS arguments."""
    cmd = [sys.executable, "-m", "espnet_ros.ros.node_main", "--ros-args",
           "-r", "__ns:=" + namespace]
    if params_file:
        cmd += ["--params-file", str(params_file)]
    for key, value in params.items():
        cmd += ["-p", "%s:=%s" % (key, value)]
    for src, dst in remaps:
        cmd += ["-r", "%s:=%s" % (src, dst)]
    return cmd


def ros2_launch_unavailable(env=None):
    """None where ``ros2 launch espnet_ros`` can run, else the reason (one short phrase)."""
    env = os.environ if env is None else env
    if importlib.util.find_spec("launch_ros") is None:
        return "launch_ros is not installed"
    if shutil.which("ros2", path=env.get("PATH")) is None:
        return "no ros2 command on PATH"
    prefixes = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    if not any(os.path.isfile(os.path.join(p, "share", "espnet_ros", "launch", LAUNCH_FILE))
               for p in prefixes):
        return "espnet_ros is not in the ament index (AMENT_PREFIX_PATH)"
    return None


def launch_command(namespace, params, image, params_file, launch_args=()):
    """``ros2 launch espnet_ros segment.launch.py`` with loopback-only DDS and ``params``."""
    cmd = ["ros2", "launch", "espnet_ros", LAUNCH_FILE, "namespace:=" + namespace,
           "image:=" + image, "params_file:=" + str(params_file)]
    cmd += ["%s:=%s" % (k, params[k]) for k in LAUNCH_ARGUMENT_PARAMS if k in params]
    return cmd + localhost_launch_arguments() + list(launch_args)


def write_params_file(path, params):
    """A ROS 2 parameters YAML with ``params`` for every node (``/**``).

    String values are read as YAML, as ``-p name:=value`` is (so "256" is an integer).
    """
    values = {k: yaml.safe_load(v) if isinstance(v, str) and v else v
              for k, v in params.items() if k not in LAUNCH_ARGUMENT_PARAMS}
    Path(path).write_text(yaml.safe_dump({"/**": {"ros__parameters": values}}))
    return path


class NodeProcess:
    """Starts the node (loopback-only DDS, log to ``log_path``); ``stop()`` ends it with SIGINT."""

    def __init__(self, namespace, params, log_path, remaps=(), params_file=None, extra_env=None,
                 new_session=False):
        self._start(namespace, log_path, node_command(namespace, params, remaps, params_file),
                    extra_env, new_session)

    def _start(self, namespace, log_path, cmd, extra_env, new_session=False):
        self.namespace = namespace
        self.base = namespace.rstrip("/") + "/espnet_segmentation"
        self.log_path = Path(log_path)
        env = localhost_env()
        env.update(extra_env or {})
        env["PYTHONUNBUFFERED"] = "1"
        self._log = open(str(self.log_path), "w")
        # new_session: a Ctrl-C in the terminal reaches only the parent, which stops the node.
        # stdin is not a terminal, so ros2 launch forwards SIGINT to the node (noninteractive).
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=new_session)

    def log(self):
        return self.log_path.read_text()

    def last_error(self):
        """The last error line of the log (or its last line), for one-line failure messages."""
        try:
            lines = [line for line in self.log().splitlines() if line.strip()]
        except OSError:
            return "no log"
        errors = [line for line in lines if "error" in line.lower()]
        return (errors or lines or ["no output"])[-1].strip()[:300]

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self, timeout=15):
        """SIGINT, then kill after ``timeout`` s; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class LaunchedNode(NodeProcess):
    """The node under ``ros2 launch`` (the launch's output, node lines included, in ``log_path``).

    Parameters other than the launch arguments go through a params file written beside the
    log. ``stop()`` sends SIGINT to ``ros2 launch``, which stops the node as on Ctrl-C.
    """

    def __init__(self, namespace, params, log_path, image, extra_env=None, launch_args=(),
                 new_session=False):
        params_file = write_params_file(Path(log_path).with_suffix(".params.yaml"), params)
        self._start(namespace, log_path,
                    launch_command(namespace, params, image, params_file, launch_args), extra_env,
                    new_session)
