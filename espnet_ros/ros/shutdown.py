"""Clean exits for the project's ROS processes (node, camera source, demo).

SIGINT and SIGTERM both mean "stop": exit code 0, no traceback. A terminal's Ctrl-C reaches
every process of its group and ``ros2 launch`` forwards another SIGINT, so a second signal
during shutdown must be harmless too. rclpy's own handlers are not installed: they raise
KeyboardInterrupt wherever the main thread is (also inside ``destroy_node``) and turn SIGTERM
into an exception that looks like a failure.
"""
import gc
import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager

from .rosout import stop_forwarding

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(BaseException):
    """Raised in the main thread by the first stop signal while ``interrupting()`` is active.

    A BaseException, like KeyboardInterrupt, so that ``except Exception`` start-up handlers do
    not mistake it for a failure.
    """

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """SIGINT/SIGTERM handlers for the main thread; the first signal sets ``requested``."""

    def __init__(self):
        self.requested = threading.Event()
        self.name = None  # the first signal's name, e.g. "SIGTERM"
        self._interrupt = False

    def install(self):
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, _frame):
        if self.requested.is_set():
            return  # a second Ctrl-C, or launch forwarding the terminal's: already stopping
        self.name = signal.Signals(signum).name
        self.requested.set()
        if self._interrupt:
            self._interrupt = False
            raise StopRequested(signum)

    @contextmanager
    def interrupting(self):
        """Inside this block the first signal also raises StopRequested (long start-up work)."""
        if self.requested.is_set():
            raise StopRequested(signal.SIGINT)
        self._interrupt = True
        try:
            yield
        finally:
            self._interrupt = False


def init_ros(args=None, stop=None):
    """rclpy.init() without rclpy's signal handlers, then ours; returns the StopSignals.

    ``signal_handler_options`` exists from Humble on (Humble, Jazzy and Kilted all take it);
    older rclpy installs its handlers unconditionally, and ours replace them. ``stop``: the
    StopSignals already installed (before slow imports), kept with its state.
    """
    import rclpy

    stop = stop or StopSignals()
    try:
        from rclpy.signals import SignalHandlerOptions
    except ImportError:
        rclpy.init(args=args)
    else:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    return stop.install()


def spin_until_stopped(node, stop, done=None, period=0.1):
    """Spins ``node`` until a stop signal (checked every ``period`` s), ``done`` (an Event, e.g.
    a lifecycle shutdown) is set, or rclpy shuts down.

    Python runs signal handlers only between bytecodes, so the executor must come back from
    its wait regularly instead of blocking in rclpy.spin().
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        while not stop.requested.is_set() and not (done is not None and done.is_set()) \
                and rclpy.ok(context=node.context):
            executor.spin_once(timeout_sec=period)
    finally:
        executor.remove_node(node)
        executor.shutdown(timeout_sec=0)


def shutdown_ros():
    """Frees the nodes, then rclpy.try_shutdown(), where rclpy was imported (a stop during
    imports comes before). Callers drop their own references to their nodes first.

    The DDS participant, and with it Fast DDS's shared-memory segment (128 MiB of RAM with this
    project's profiles), is deleted only when the last node object is freed. exit_now skips
    Python's teardown, so without this every stopped node left its segment in /dev/shm until
    someone ran ``fastdds shm clean`` (test_shm_segments), and its peers kept sending to it.
    """
    rclpy = sys.modules.get("rclpy")
    if rclpy is not None:
        stop_forwarding()  # the log handler holds the node
        gc.collect()  # a node and its callbacks refer to each other
        rclpy.try_shutdown()


def exit_now(code):
    """Ends the process with ``code`` once ROS is shut down, skipping interpreter teardown.

    Tearing down torch & co. takes 1-3 s on a loaded 2-core CPU, longer than supervisors and
    ``ros2 launch`` should wait, and a worker thread still inside a forward pass can make it
    abort. Nothing is left to clean up: ROS logging ended with rclpy's shutdown, and the
    Python logs and standard streams are flushed here.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing more to write
            pass
    os._exit(code)
