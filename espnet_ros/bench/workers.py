"""Benchmark candidates in fresh worker processes, timed in interleaved rounds.

Some candidates change the whole process (flush-denormal, threads, the allocator, OpenMP
settings), and first-label times need a fresh start, so each candidate runs in its own spawned
worker. The parent then asks the workers in turn for a few timed runs per round: every round
sees the same machine load for all of them, and a speed-up is taken per round.

Worker side: ``serve(conn, prepare)``. Parent side: a ``WorkerPool``. Nothing heavy is imported
here: a worker sets its environment (e.g. OpenMP's) before it imports torch.
"""
import multiprocessing
import time
from collections import OrderedDict


def serve(conn, prepare):
    """The body of a worker. ``prepare()`` builds the candidate and returns (the payload of the
    "ready" message, ``measure``); then each ("time", n) request is answered with
    ``[measure() for n times]``, until any other message. A failure is sent as ("error", text).
    """
    try:
        payload, measure = prepare()
        conn.send(("ready",) + tuple(payload))
        while True:
            message = conn.recv()
            if message[0] != "time":
                break
            conn.send([measure() for _ in range(message[1])])
    except Exception as exc:  # reported to the parent, which marks the candidate failed
        first_line = (str(exc).splitlines() or [""])[0]
        conn.send(("error", "%s: %s" % (type(exc).__name__, first_line[:300])))
    finally:
        conn.close()


def receive(conn, process, timeout_s):
    """The worker's next message; raises RuntimeError when it died or hangs."""
    deadline = time.monotonic() + timeout_s
    while not conn.poll(0.5):
        if not process.is_alive():
            raise RuntimeError("worker exited with code %s" % process.exitcode)
        if time.monotonic() > deadline:
            raise RuntimeError("worker sent nothing for %.0f s" % timeout_s)
    try:
        return conn.recv()
    except EOFError:  # the worker died: its end of the pipe closed
        process.join(5)
        raise RuntimeError("worker exited with code %s" % process.exitcode) from None


class WorkerPool:
    """Named workers of one study; leaving the ``with`` block stops them all."""

    def __init__(self, timeout_s, log=print):
        self.timeout_s = timeout_s
        self.log = log
        self.context = multiprocessing.get_context("spawn")  # fresh: no inherited settings
        self.started = OrderedDict()   # name -> (process, connection), until ready or failed
        self.workers = OrderedDict()   # name -> (process, connection) of the ready ones

    def launch(self, name, target, *args):
        """Starts ``target(conn, spawned_at, *args)`` (``spawned_at``: time.time() now) in a
        fresh process; its ready message is read by ``ready``."""
        parent, child = self.context.Pipe()
        process = self.context.Process(target=target, daemon=True,
                                       args=(child, time.time()) + tuple(args))
        process.start()
        child.close()
        self.started[name] = (process, parent)

    def ready(self, name):
        """The ready message of a launched worker (("ready", ...) or ("error", text)); a
        failed one is logged and dropped from the pool."""
        process, conn = self.started.pop(name)
        try:
            reply = receive(conn, process, self.timeout_s)
        except RuntimeError as exc:
            reply = ("error", str(exc))
        if reply[0] == "error":
            self.log("%s: failed: %s" % (name, reply[1]))
            process.join(5)
            if process.is_alive():
                process.terminate()
        else:
            self.workers[name] = (process, conn)
        return reply

    def time_rounds(self, rounds, iterations, summary):
        """{name: [each round's list of ``measure()`` results]} of the ready workers, over
        ``rounds`` interleaved rounds of ``iterations`` runs each; the log shows each round's
        ``summary(results)`` (milliseconds)."""
        timings = OrderedDict((name, []) for name in self.workers)
        for index in range(rounds):
            for name, (process, conn) in self.workers.items():
                conn.send(("time", iterations))
                timings[name].append(receive(conn, process, self.timeout_s))
            self.log("round %d/%d: %s" % (index + 1, rounds, ", ".join(
                "%s %.0f" % (name, summary(timings[name][-1])) for name in self.workers)))
        return timings

    def stop(self):
        """Asks every worker to stop; terminates those that hang."""
        for process, conn in list(self.workers.values()) + list(self.started.values()):
            try:
                conn.send(("stop",))
            except (OSError, BrokenPipeError):
                pass
            process.join(10)
            if process.is_alive():
                process.terminate()
        self.workers.clear()
        self.started.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
