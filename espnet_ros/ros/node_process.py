"""segment_node in its own process: what the demo, the benchmarks, bag replay and tests start."""
import signal
import subprocess
import sys
from pathlib import Path

from .env import localhost_env


def node_command(namespace, params, remaps=(), params_file=None):
    """The command line of ``python -m espnet_ros.ros.segment_node`` with ROS arguments."""
    cmd = [sys.executable, "-m", "espnet_ros.ros.segment_node", "--ros-args",
           "-r", "__ns:=" + namespace]
    if params_file:
        cmd += ["--params-file", str(params_file)]
    for key, value in params.items():
        cmd += ["-p", "%s:=%s" % (key, value)]
    for src, dst in remaps:
        cmd += ["-r", "%s:=%s" % (src, dst)]
    return cmd


class NodeProcess:
    """Starts the node (loopback-only DDS, log to ``log_path``); ``stop()`` ends it with SIGINT."""

    def __init__(self, namespace, params, log_path, remaps=(), params_file=None, extra_env=None,
                 new_session=False):
        self.namespace = namespace
        self.base = namespace.rstrip("/") + "/espnet_segmentation"
        self.log_path = Path(log_path)
        env = localhost_env()
        env.update(extra_env or {})
        env["PYTHONUNBUFFERED"] = "1"
        self._log = open(str(self.log_path), "w")
        # new_session: a Ctrl-C in the terminal reaches only the parent, which stops the node
        self.proc = subprocess.Popen(node_command(namespace, params, remaps, params_file), env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=new_session)

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
