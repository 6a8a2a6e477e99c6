"""What one training epoch is: its passes over the training set, their batches and order.

An epoch is one or more *passes*. The original ESPNet code makes an epoch five passes over the
training set at five input sizes, each with its own batch size (``augment.passes`` in the
config); the simpler mode is one pass with a random scale and crop (``augment.scales`` and
``augment.crop``). Each pass visits the frames in an order drawn by
``torch.utils.data.DistributedSampler`` (reshuffled every epoch), which also splits them
between the processes of a distributed run: rank r takes every W-th frame of the shuffled
order, so the r-th batches of W processes at batch b together hold exactly the frames of the
one-process batch of W*b. The last batch of a pass may be smaller, as in the original loader.
"""
from typing import List, NamedTuple, Sequence

from torch.utils.data import DistributedSampler


class Pass(NamedTuple):
    size: tuple            # (width, height) the frames are resized to, or None: scale + crop
    batch_size: int        # per process
    crop_resize: int = 0   # original RandomCropResize: up to N pixels cut from each border


class Batch(NamedTuple):
    pass_index: int
    indices: List[int]


def passes_of(augment: dict, batch_size: int) -> List[Pass]:
    """The passes of an epoch from the config's ``augment`` section and the stage batch size."""
    spec = augment.get("passes")
    if not spec:
        return [Pass(None, int(batch_size))]
    passes = []
    for item in spec:
        size = tuple(int(v) for v in item["size"])
        batch = int(batch_size) + int(item.get("batch_offset", 0))
        if len(size) != 2 or min(size) < 1 or batch < 1:
            raise ValueError("augment.passes entry %r: need size [width, height] and a batch "
                             "size of at least 1" % (item,))
        passes.append(Pass(size, batch, int(item.get("crop_resize", 0))))
    return passes


def epoch_batches(count: int, passes: Sequence[Pass], seed: int, epoch: int, rank: int = 0,
                  world_size: int = 1) -> List[Batch]:
    """This rank's batches of ``epoch``, pass after pass."""
    batches = []
    for index, p in enumerate(passes):
        sampler = DistributedSampler(range(count), num_replicas=world_size, rank=rank,
                                     shuffle=True, seed=pass_seed(seed, index), drop_last=False)
        sampler.set_epoch(epoch)
        order = list(sampler)
        batches.extend(Batch(index, order[i:i + p.batch_size])
                       for i in range(0, len(order), p.batch_size))
    return batches


def pass_seed(seed: int, pass_index: int) -> int:
    return int(seed) * 1000003 + pass_index * 7919
