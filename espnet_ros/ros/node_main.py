"""The segmentation node's process entry point (``ros2 run espnet_ros segment_node``,
``espnet-ros node``, ``python -m espnet_ros.ros.node_main``).

Light on purpose: the stop signals are handled before torch and the node module are imported,
so a Ctrl-C during the first seconds of start-up is a clean exit too.
"""
import logging
import sys

from .rosout import NotForwarded, deliver_before_exit
from .shutdown import StopRequested, StopSignals, exit_now, init_ros, shutdown_ros, spin_until_stopped

SWITCH_INTERVAL_S = 0.001


def main(args=None):
    """Runs the node; ends the process.

    Exit code 0 after SIGINT or SIGTERM (any number of them, see shutdown.py) or the lifecycle
    shutdown transition; 1 with one line
    when the node cannot start (missing weights, unusable backend, bad parameter).
    """
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    for handler in logging.getLogger().handlers:  # once the node exists its logger prints them
        handler.addFilter(NotForwarded())
    # The model thread needs the GIL back between operators; at Python's 5 ms default a busy
    # publish or executor thread makes it wait up to that long each time (measured: a 128x64
    # forward 12 -> 39 ms next to a busy thread; 19 ms at 1 ms).
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # Before any thread exists: one heap that malloc_trim can give back after a large frame.
    from ..malloc import one_arena
    one_arena()
    log = logging.getLogger("espnet_ros")
    stop = StopSignals().install()
    node = None
    code = 0
    try:
        with stop.interrupting():  # importing torch, loading and warming up the model
            from .segment_node import SegmentNode
            init_ros(args, stop)
            node = SegmentNode()
        spin_until_stopped(node, stop, node.finished)
    except StopRequested:
        pass
    except Exception as exc:
        if node is not None:
            raise  # a failure while serving keeps its traceback
        if not stop.requested.is_set():
            log.error("segment_node failed to start: %s", str(exc) or type(exc).__name__)
            deliver_before_exit()  # the error above to /rosout readers (rqt_console)
            code = 1
        # else: the stop signal interrupted the start and came out as another exception (numpy's
        # C extensions turn it into ImportError when it lands in their import): a clean stop.
    finally:
        if stop.requested.is_set():
            log.info("stopping on %s", stop.name)
        if node is not None:
            node.destroy_node()
        node = None  # freed in shutdown_ros, so its DDS participant and shared memory go too
        shutdown_ros()
    exit_now(code)


if __name__ == "__main__":
    main(sys.argv)
