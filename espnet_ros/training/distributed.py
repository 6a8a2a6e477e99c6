"""torch.distributed for training and evaluation: one process per GPU (or CPU worker), started
by ``torchrun``, which this module detects from its environment.

``setup()`` returns a ``World``: rank, world size, the device of this process and whether it
is the main process (rank 0, the only one that writes files or prints). Without torchrun the
world is one process and nothing touches torch.distributed. Backend: nccl on CUDA, gloo on
the CPU. Collective operations that fail because another worker has gone raise ``WorkerLost``
with one readable line instead of the backend's traceback.
"""
import datetime
import os
from typing import NamedTuple

import torch
from torch import distributed as dist

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
TIMEOUT_ENV = "ESPNET_ROS_DIST_TIMEOUT_S"  # how long a collective waits for a silent worker


class WorkerLost(RuntimeError):
    """Another worker stopped (crashed, killed or lost its connection)."""


class World(NamedTuple):
    rank: int
    size: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def launched_by_torchrun(environ=None) -> bool:
    environ = os.environ if environ is None else environ
    return all(name in environ for name in TORCHRUN_VARS)


def setup(device="auto", environ=None) -> World:
    """Joins the process group when started by torchrun; picks this process's device."""
    environ = os.environ if environ is None else environ
    if not launched_by_torchrun(environ):
        return World(0, 1, 0, _device(device, 0))
    rank, size = int(environ["RANK"]), int(environ["WORLD_SIZE"])
    local_rank = int(environ["LOCAL_RANK"])
    device = _device(device, local_rank)
    if size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        timeout = datetime.timedelta(seconds=float(environ.get(TIMEOUT_ENV, 1800)))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
    return World(rank, size, local_rank, device)


def teardown(world: World):
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def _device(name, local_rank) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)  # one GPU per local process
    return device


def shard(count: int, world: World) -> range:
    """This rank's share of ``count`` items (rank, rank + size, ...): disjoint, covering all."""
    return range(world.rank, count, world.size)


def all_reduce_sum(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """Sums ``tensor`` over all ranks in place (a no-op for one process)."""
    if world.distributed:
        with lost_worker_guard():
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_confusion(confusion, world: World):
    """Sums a ``ConfusionMatrix``'s counts over all ranks, in place."""
    if world.distributed:
        for name in ("matrix", "ignored_predictions"):
            counts = torch.from_numpy(getattr(confusion, name).copy())
            all_reduce_sum(counts, world)
            getattr(confusion, name)[...] = counts.numpy()
    return confusion


def all_gather_object(obj, world: World) -> list:
    if not world.distributed:
        return [obj]
    gathered = [None] * world.size
    with lost_worker_guard():
        dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj, world: World):
    """Rank 0's ``obj`` on every rank (what rank 0 read from disk: the other ranks may run on
    machines that do not share its filesystem)."""
    if not world.distributed:
        return obj
    box = [obj if world.main else None]
    with lost_worker_guard():
        dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: World):
    if world.distributed:
        with lost_worker_guard():
            dist.barrier()


class lost_worker_guard:
    """Turns the backend's error for a vanished peer into ``WorkerLost``."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is not None and isinstance(exc, RuntimeError) and not isinstance(exc, WorkerLost):
            text = " ".join(str(exc).split())[:200]
            raise WorkerLost("another worker stopped or lost its connection (%s: %s)"
                             % (type(exc).__name__, text)) from exc
        return False
