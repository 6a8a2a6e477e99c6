"""Zoo entries stored in training checkpoints, and their registration in the zoo.

A checkpoint written by ``espnet-ros train`` (``checkpoint_dict`` here, written atomically by
``espnet_ros.training.checkpoint``) is a dict loadable with ``torch.load(weights_only=True)``::

    format      "espnet_ros.checkpoint/1"
    model       the state dict (what ``create_model(name, weights=path)`` loads)
    entry       everything a zoo entry needs: name, arch, arch_args, classes, palette,
                normalization {order, mean, std, scale}, input_size, void_id, dataset,
                description, label_ids
    metrics     {"epoch", "val_miou", ...} at the time of writing
    train_state only in ``last.pth``: optimizer, scaler, RNG states, epoch, batch position...

Wherever a model is named (``--model``, the node's ``model`` parameter, ``model:=`` of the
launch file), the path of such a checkpoint works as well as a zoo name (``lookup``).

``register_checkpoint(path)`` adds the checkpoint's entry to the zoo of the running process;
after it, ``Segmenter.from_zoo(name, weights=path)`` and ``espnet-ros predict --model NAME
--weights PATH`` work as for a published model. Every ``espnet-ros`` command and the node call
``register_user_models()``, which registers the checkpoints listed in the environment variable
``ESPNET_ROS_MODELS`` (paths separated by ``os.pathsep``, each optionally ``NAME=PATH``).

Here, not in training/, because the node and every command read checkpoints without training.
Importable on Python 3.8 / torch 1.10.
"""
import os

import torch

from . import zoo
from .zoo import ModelEntry, Normalization

FORMAT = "espnet_ros.checkpoint/1"
MODELS_ENV = "ESPNET_ROS_MODELS"


def entry_to_dict(entry: ModelEntry) -> dict:
    """Plain types only, so the checkpoint loads with ``weights_only=True``."""
    norm = entry.normalization
    return {
        "name": entry.name, "arch": entry.arch, "arch_args": dict(entry.arch_args),
        "classes": list(entry.classes), "palette": [list(c) for c in entry.palette],
        "normalization": {"order": norm.order, "mean": list(norm.mean), "std": list(norm.std),
                          "scale": float(norm.scale)},
        "input_size": list(entry.input_size), "void_id": entry.void_id, "dataset": entry.dataset,
        "description": entry.description,
        "label_ids": list(entry.label_ids) if entry.label_ids is not None else None,
    }


def checkpoint_dict(state_dict, entry: ModelEntry, metrics: dict, train_state=None) -> dict:
    """A checkpoint of the format above (``train_state`` only for resumable ones)."""
    data = {"format": FORMAT, "model": state_dict, "entry": entry_to_dict(entry),
            "metrics": metrics}
    if train_state is not None:
        data["train_state"] = train_state
    return data


def entry_from_dict(meta: dict, name=None) -> ModelEntry:
    norm = meta["normalization"]
    return ModelEntry(
        name=name or meta["name"], arch=meta["arch"], arch_args=dict(meta["arch_args"]),
        classes=tuple(meta["classes"]), palette=tuple(tuple(c) for c in meta["palette"]),
        normalization=Normalization(norm["order"], tuple(norm["mean"]), tuple(norm["std"]),
                                    float(norm["scale"])),
        input_size=tuple(meta["input_size"]), void_id=meta.get("void_id"),
        dataset=meta.get("dataset", "custom"), description=meta.get("description", ""),
        label_ids=tuple(meta["label_ids"]) if meta.get("label_ids") is not None else None)


def load(path) -> dict:
    try:
        obj = torch.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises many types for a corrupt file
        raise ValueError("cannot read checkpoint %s: %s" % (path, exc)) from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError("%s is not an espnet-ros training checkpoint (no %r format tag); published "
                         "weights need their zoo name instead" % (path, FORMAT))
    return obj


def entry_from_checkpoint(path, name=None) -> ModelEntry:
    return entry_from_dict(load(path)["entry"], name)


def register_checkpoint(path, name=None, replace=False) -> ModelEntry:
    """Registers the zoo entry stored in checkpoint ``path`` (under ``name`` if given).

    Refuses to shadow a different existing entry unless ``replace``. The entry has no
    published weights: pass the checkpoint as ``weights`` when loading it.
    """
    entry = entry_from_checkpoint(path, name)
    if entry.name in zoo.names() and not replace and zoo.get(entry.name) != entry:
        raise ValueError("zoo already has a different model named %r: register %s under another "
                         "name" % (entry.name, path))
    return zoo.register(entry)


def lookup(ref, weights=None):
    """(zoo entry, weights) for ``ref``: a zoo name, or the path of a checkpoint written by
    ``espnet-ros train``, whose stored entry is registered and whose weights are used unless
    ``weights`` names others. A name that is both a zoo name and a file means the zoo's."""
    path = os.path.expanduser(str(ref))
    if ref not in zoo.names() and os.path.isfile(path):
        return register_checkpoint(path, replace=True), weights or path
    return zoo.get(ref), weights


def register_user_models(environ=None) -> list:
    """Registers the checkpoints listed in $ESPNET_ROS_MODELS; returns their entries."""
    value = (os.environ if environ is None else environ).get(MODELS_ENV, "")
    entries = []
    for item in filter(None, (v.strip() for v in value.split(os.pathsep))):
        name, _, path = item.rpartition("=")
        entries.append(register_checkpoint(path, name or None))
    return entries
