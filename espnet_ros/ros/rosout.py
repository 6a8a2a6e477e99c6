"""The library's Python log records (logger ``espnet_ros``: backend fallbacks, cache notes,
start-up failures) through the node's ROS logger, so they reach /rosout and rqt_console, not
only stderr. Imports no ROS module: it takes the node's logger object.
"""
import logging
import time

LIBRARY_LOGGER = "espnet_ros"
FORWARDED = "espnet_ros_forwarded"


# A failure in the first second of start-up would otherwise leave with the process before
# DDS discovery matched any /rosout reader (rqt_console): /rosout is transient_local, so a
# reader that matches while the node still exists gets the history. Up to 4 s: after its
# first announcements Fast DDS re-announces a participant every 3 s, and a reader that missed
# the first ones (a loaded machine) is matched only then. With no reader at all, a failed
# start exits 4 s later.
DELIVERY_WAIT_S = 4.0
DELIVERY_MARGIN_S = 1.0  # the reader may match the writer later than the writer matched it


class RosLoggerHandler(logging.Handler):
    """Passes each record to a node's rclpy logger at the matching severity."""

    def __init__(self, node):
        super().__init__()
        self.node = node
        self.ros_logger = node.get_logger()

    def emit(self, record):
        level = record.levelno
        log = (self.ros_logger.error if level >= logging.ERROR
               else self.ros_logger.warning if level >= logging.WARNING
               else self.ros_logger.info if level >= logging.INFO
               else self.ros_logger.debug)
        try:
            log(record.getMessage())
        except Exception:  # e.g. after rclpy shut down: the stderr handler still prints it
            return
        setattr(record, FORWARDED, True)


def _handlers():
    logger = logging.getLogger(LIBRARY_LOGGER)
    return [h for h in logger.handlers if isinstance(h, RosLoggerHandler)]


def forward_library_logs(node):
    """Forwards the library's records to ``node``'s logger (the newest node's: one per process)."""
    stop_forwarding()
    handler = RosLoggerHandler(node)
    logging.getLogger(LIBRARY_LOGGER).addHandler(handler)
    return handler


def stop_forwarding(handler=None):
    """Removes ``handler`` (default: every node's), and with it the reference to its node."""
    for old in [handler] if handler is not None else _handlers():
        logging.getLogger(LIBRARY_LOGGER).removeHandler(old)


def deliver_before_exit(wait_s=DELIVERY_WAIT_S, margin_s=DELIVERY_MARGIN_S):
    """Before a process exits on a start-up failure: keeps the forwarding node up to ``wait_s``
    until a /rosout reader is matched, then ``margin_s`` for the delivery. False when no node
    or no reader."""
    for handler in _handlers():
        end = time.monotonic() + wait_s
        try:
            while handler.node.count_subscribers("/rosout") == 0:
                if time.monotonic() >= end:
                    return False
                time.sleep(0.02)
        except Exception:  # the node is gone already
            return False
        time.sleep(margin_s)
        return True
    return False


class NotForwarded(logging.Filter):
    """For a process's stderr handler: skips records the ROS logger has printed already."""

    def filter(self, record):
        return not getattr(record, FORWARDED, False)
