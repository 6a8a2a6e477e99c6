"""Persistent cache of built TensorRT engines (no TensorRT needed to use or test it).

An engine is only valid for the exact weights, model arguments, input shape, precision,
torch2trt and TensorRT versions and GPU it was built for, so the key is the sha256 of all of
them. A changed field gives a new key (the old file is simply not used); an unreadable or
mismatching file is removed with a warning and rebuilt. Files are written atomically.
"""
import hashlib
import json
import logging
import os
from collections import OrderedDict
from pathlib import Path

import torch

LOG = logging.getLogger("espnet_ros")
CACHE_ENV = "ESPNET_ROS_ENGINE_CACHE"
# Bump when the file layout or the project-local converters change what an engine contains.
FORMAT_VERSION = 1


def cache_dir():
    base = Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "espnet_ros"
    return Path(os.environ.get(CACHE_ENV, str(base / "engines")))


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
    """sha256 of a sequence of tensors (the int8 calibration set)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        tensor = tensor.detach().cpu().float().contiguous()
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def cache_fields(weights, model_args, input_shape, precision, torch2trt_version, tensorrt_version,
                 gpu_name, compute_capability, piece="model", piece_shapes=None, calibration=None):
    """The fields that identify an engine, in a fixed order (JSON-serializable)."""
    return OrderedDict([
        ("format", FORMAT_VERSION),
        ("weights_sha256", weights),
        ("model_args", model_args),
        ("input_shape", [int(v) for v in input_shape]),
        ("piece", piece),
        ("piece_shapes", [[int(v) for v in shape] for shape in (piece_shapes or [])]),
        ("precision", precision),
        ("torch2trt", str(torch2trt_version)),
        ("tensorrt", str(tensorrt_version)),
        ("gpu", str(gpu_name)),
        ("compute_capability", "%s.%s" % tuple(compute_capability)),
        ("calibration_sha256", calibration),
    ])


def _canonical(fields):
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)


def cache_key(fields):
    return hashlib.sha256(_canonical(fields).encode()).hexdigest()


def _write_atomic(path, write):
    tmp = path.with_name(".%s.%d.tmp" % (path.name, os.getpid()))
    try:
        write(tmp)
        os.replace(str(tmp), str(path))
    finally:
        if tmp.exists():
            tmp.unlink()


class EngineCache:
    """Engines as ``<key>.engine`` plus ``<key>.json`` (the fields, for people and checks)."""

    def __init__(self, root=None):
        self.root = Path(root) if root else cache_dir()

    def paths(self, key):
        return self.root / (key + ".engine"), self.root / (key + ".json")

    def _discard(self, key, why):
        LOG.warning("engine cache: discarding %s (%s); it will be rebuilt", key[:16], why)
        for path in self.paths(key):
            if path.exists():
                path.unlink()

    def load(self, fields, loader):
        """``loader(path)`` of the cached engine for ``fields``, or None (missing or corrupt)."""
        key = cache_key(fields)
        engine, meta = self.paths(key)
        if not engine.is_file():
            return None
        try:
            stored = json.loads(meta.read_text())
        except (OSError, ValueError) as exc:
            self._discard(key, "unreadable metadata: %s" % exc)
            return None
        if _canonical(stored) != _canonical(fields):
            self._discard(key, "metadata does not match the key")
            return None
        try:
            return loader(engine)
        except Exception as exc:  # a truncated or foreign file fails in many ways
            self._discard(key, "unreadable engine: %s" % str(exc).splitlines()[0][:120])
            return None

    def store(self, fields, saver):
        """Writes an engine with ``saver(path)``; returns the engine path."""
        key = cache_key(fields)
        engine, meta = self.paths(key)
        self.root.mkdir(parents=True, exist_ok=True)
        _write_atomic(engine, lambda tmp: saver(tmp))
        _write_atomic(meta, lambda tmp: tmp.write_text(json.dumps(fields, indent=1, default=str)))
        return engine

    def get_or_build(self, fields, build, save, load, check=None):
        """(engine, "hit" | "built"): the cached engine, else ``build()`` stored with ``save``.

        ``check(engine)`` raises when a cached engine is not usable; it is then rebuilt.
        """
        engine = self.load(fields, load)
        if engine is not None:
            try:
                if check is not None:
                    check(engine)
                return engine, "hit"
            except Exception as exc:  # e.g. validation of a stale engine failed
                self._discard(cache_key(fields), "cached engine failed its check: %s" % exc)
        engine = build()
        if check is not None:
            check(engine)
        try:
            self.store(fields, lambda path: save(engine, path))
        except OSError as exc:  # a read-only cache must not stop inference
            LOG.warning("engine cache: could not store the engine in %s: %s", self.root, exc)
        return engine, "built"
