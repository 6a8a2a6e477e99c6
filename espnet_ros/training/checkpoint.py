"""Training checkpoints written atomically.

The checkpoint format (its keys, the ``format`` tag, how a checkpoint becomes a zoo entry) is
defined and described in ``espnet_ros.models.registry``, which the node and every command use
without training/; its functions are re-exported here for the training code. ``save_atomic``
writes a checkpoint so that a crash never leaves half a file.

This module stays importable on Python 3.8 / torch 1.10: the node may use it.
"""
import os
import tempfile
from pathlib import Path

import torch

from ..models.registry import (  # noqa: F401  (the checkpoint format, used by training)
    FORMAT,
    MODELS_ENV,
    checkpoint_dict,
    entry_from_checkpoint,
    entry_from_dict,
    entry_to_dict,
    load,
    register_checkpoint,
    register_user_models,
)


def save_atomic(obj, path) -> Path:
    """Writes ``obj`` with torch.save so that ``path`` is always either the old or the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, str(path))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder):
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not every filesystem syncs directories
    finally:
        os.close(fd)
