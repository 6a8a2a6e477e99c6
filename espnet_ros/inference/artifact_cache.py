"""A persistent cache of built artifacts (TensorRT engines, quantized models) keyed by content.

An artifact is valid only for the exact inputs that produced it, so its key is the sha256 of
all of them (``fields``: weights, model arguments, shapes, precision, calibration data, library
versions ...). A changed field gives a new key (the old file is simply not used); an unreadable
or mismatching file is removed with a warning and rebuilt. Files are written atomically.
"""
import hashlib
import json
import logging
import os
from pathlib import Path

import torch

LOG = logging.getLogger("espnet_ros")


def weights_sha256(model):
    """sha256 over the state dict: names, dtypes, shapes and values, in name order."""
    digest = hashlib.sha256()
    state = model.state_dict()
    for name in sorted(state):
        tensor = state[name]
        if not torch.is_tensor(tensor):
            digest.update(("%s=%r;" % (name, tensor)).encode())
            continue
        tensor = tensor.detach().cpu().contiguous()
        digest.update(("%s:%s:%s;" % (name, tensor.dtype, tuple(tensor.shape))).encode())
        try:
            data = tensor.numpy().tobytes()
        except TypeError:  # dtypes numpy lacks (bfloat16)
            data = tensor.float().numpy().tobytes()
        digest.update(data)
    return digest.hexdigest()


def tensors_sha256(tensors):
    """sha256 of a sequence of tensors (calibration frames)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        tensor = tensor.detach().cpu().float().contiguous()
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def model_args(model, entry):
    """The architecture part of a key: class, zoo architecture and its arguments."""
    return {"class": type(model).__name__, "arch": getattr(entry, "arch", None),
            "args": dict(getattr(entry, "arch_args", {}) or {})}


def canonical(fields):
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)


def cache_key(fields):
    return hashlib.sha256(canonical(fields).encode()).hexdigest()


def write_atomic(path, write):
    """``write(tmp_path)`` then an atomic rename to ``path`` (no half-written file is seen)."""
    path = Path(path)
    tmp = path.with_name(".%s.%d.tmp" % (path.name, os.getpid()))
    try:
        write(tmp)
        os.replace(str(tmp), str(path))
    finally:
        if tmp.exists():
            tmp.unlink()


class ArtifactCache:
    """Artifacts as ``<key><suffix>`` plus ``<key>.json`` (the fields, for people and checks)."""

    what = "artifact cache"   # for warnings
    noun = "file"

    def __init__(self, root, suffix):
        self.root = Path(root)
        self.suffix = suffix

    def paths(self, key):
        return self.root / (key + self.suffix), self.root / (key + ".json")

    def _discard(self, key, why):
        LOG.warning("%s: discarding %s (%s); it will be rebuilt", self.what, key[:16], why)
        for path in self.paths(key):
            if path.exists():
                path.unlink()

    def load(self, fields, loader):
        """``loader(path)`` of the cached artifact for ``fields``, or None (missing or corrupt)."""
        key = cache_key(fields)
        artifact, meta = self.paths(key)
        if not artifact.is_file():
            return None
        try:
            stored = json.loads(meta.read_text())
        except (OSError, ValueError) as exc:
            self._discard(key, "unreadable metadata: %s" % exc)
            return None
        if canonical(stored) != canonical(fields):
            self._discard(key, "metadata does not match the key")
            return None
        try:
            return loader(artifact)
        except Exception as exc:  # a truncated or foreign file fails in many ways
            self._discard(key, "unreadable %s: %s" % (self.noun, str(exc).splitlines()[0][:120]))
            return None

    def store(self, fields, saver):
        """Writes an artifact with ``saver(path)``; returns its path."""
        key = cache_key(fields)
        artifact, meta = self.paths(key)
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(artifact, saver)
        write_atomic(meta, lambda tmp: tmp.write_text(json.dumps(fields, indent=1, default=str)))
        return artifact

    def get_or_build(self, fields, build, save, load, check=None):
        """(artifact, "hit" | "built"): the cached one, else ``build()`` stored with ``save``.

        ``check(artifact)`` raises when a cached artifact is not usable; it is then rebuilt.
        """
        artifact = self.load(fields, load)
        if artifact is not None:
            try:
                if check is not None:
                    check(artifact)
                return artifact, "hit"
            except Exception as exc:  # e.g. validation of a stale engine failed
                self._discard(cache_key(fields), "cached file failed its check: %s" % exc)
        artifact = build()
        if check is not None:
            check(artifact)
        try:
            self.store(fields, lambda path: save(artifact, path))
        except OSError as exc:  # a read-only cache must not stop inference
            LOG.warning("%s: could not store in %s: %s", self.what, self.root, exc)
        return artifact, "built"
