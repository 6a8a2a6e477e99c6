"""The worker pool of the CPU studies (bench cpu): each candidate in its own process, a failing
or dying one reported and left out, the others timed in interleaved rounds, all stopped at the
end. Light workers (no torch) keep it fast."""
import os
import time

from espnet_ros.bench.workers import WorkerPool, serve


def _worker(conn, spawned_at, name, failure):
    def prepare():
        if failure == "raise":
            raise ValueError("cannot build %s\nsecond line" % name)
        if failure == "exit":
            os._exit(3)
        count = iter(range(100))
        return (name, spawned_at), lambda: float(next(count))

    serve(conn, prepare)


def test_ready_workers_are_timed_in_rounds_and_failing_ones_are_reported():
    logs = []
    names = ("a", "raises", "exits", "b")
    before = time.time()
    with WorkerPool(60, logs.append) as pool:
        for name in names:
            pool.launch(name, _worker, name, {"raises": "raise", "exits": "exit"}.get(name))
        replies = {name: pool.ready(name) for name in names}
        timings = pool.time_rounds(2, 3, max)
        processes = [process for process, _ in pool.workers.values()]
    assert replies["raises"] == ("error", "ValueError: cannot build raises")
    assert replies["exits"] == ("error", "worker exited with code 3")
    assert replies["a"][:2] == ("ready", "a") and before <= replies["a"][2] <= time.time()
    assert timings == {"a": [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]],
                       "b": [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]}
    assert "raises: failed: ValueError: cannot build raises" in logs
    assert logs[-2:] == ["round 1/2: a 2, b 2", "round 2/2: a 5, b 5"]
    assert processes and not any(process.is_alive() for process in processes)
