"""Resolve model weights: explicit path, else the local cache, else a verified download."""
import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import torch

CACHE_ENV = "ESPNET_ROS_WEIGHTS_DIR"
MIRROR_ENV = "ESPNET_ROS_WEIGHTS_MIRROR"


class WeightsError(RuntimeError):
    """Weights missing, unreachable or not matching their checksum."""


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "espnet_ros"
    return Path(os.environ.get(CACHE_ENV, str(default / "weights")))


def sha256_of(path, chunk=1 << 20) -> str:
    digest = hashlib.sha256()
    with open(str(path), "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def source_url(entry) -> str:
    """The publication URL, or the same relative path under a mirror (URL or local folder)."""
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        return entry.url
    if "://" not in mirror:
        mirror = Path(mirror).resolve().as_uri()
    return mirror.rstrip("/") + "/" + entry.weights_file


def download(url: str, dest: Path, sha256: str, progress: bool = True) -> Path:
    """Downloads to ``dest`` atomically, checking the sha256 before the file appears."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as response, open(str(part), "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        bar = _progress_bar(total, dest.name, progress)
        for block in iter(lambda: response.read(1 << 16), b""):
            out.write(block)
            digest.update(block)
            bar.update(len(block))
        bar.close()
    if digest.hexdigest() != sha256:
        part.unlink()
        raise WeightsError("checksum mismatch for %s from %s: got %s, expected %s"
                           % (dest.name, url, digest.hexdigest(), sha256))
    os.replace(str(part), str(dest))
    return dest


def _progress_bar(total, name, enabled):
    from tqdm import tqdm
    return tqdm(total=total, unit="B", unit_scale=True, desc="downloading " + name,
                disable=not enabled, file=sys.stderr)


def resolve(entry, path=None, allow_download=True, progress=True) -> Path:
    """Path to the weights of ``entry``: explicit path, else cache, else download."""
    if path:
        path = Path(path).expanduser()
        if not path.is_file():
            raise WeightsError("weights file %s does not exist" % path)
        return path
    if not entry.weights_file:
        raise WeightsError("model %r is an architecture without published weights: pass a "
                           "checkpoint with --weights (or the node's 'weights' parameter)"
                           % entry.name)
    cached = cache_dir() / entry.weights_file
    if cached.is_file():
        if sha256_of(cached) == entry.sha256:
            return cached
        raise WeightsError("cached weights %s do not match their sha256 %s: delete the file to "
                           "download it again" % (cached, entry.sha256))
    url = source_url(entry)
    if not allow_download:
        raise WeightsError(_missing_message(entry, cached, url, "downloads are disabled"))
    try:
        return download(url, cached, entry.sha256, progress)
    except (urllib.error.URLError, OSError) as exc:
        raise WeightsError(_missing_message(entry, cached, url, str(exc))) from exc


def _missing_message(entry, cached, url, reason):
    return ("weights for %r are not available (%s): fetching %s failed: %s. Put the file at %s, "
            "point %s at a folder that holds it, set %s to a mirror of the publication folder, "
            "or pass the file with --weights"
            % (entry.name, entry.weights_file, url, reason, cached, CACHE_ENV, MIRROR_ENV))


def _load_failure(exc):
    """torch.load's failure in one line, without its advice to load unsafely."""
    text = " ".join(str(exc).split())
    if "weights_only" in text or "Weights only load failed" in text:
        return ("it holds Python objects besides tensors, which are refused because loading "
                "them could run code: pass a state dict or an espnet-ros training checkpoint")
    return "not a readable PyTorch file, corrupt or truncated (%s: %s)" % (
        type(exc).__name__, text.split(". ")[0][:160])


def load_state_dict(path) -> dict:
    """Loads a plain state dict or a training checkpoint that wraps one under 'model'."""
    try:
        obj = torch.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises many types for a corrupt file
        raise WeightsError("cannot read weights %s: %s" % (path, _load_failure(exc))) from exc
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict):
        raise WeightsError("%s does not hold a state dict" % path)
    # Checkpoints saved from nn.DataParallel carry a 'module.' prefix.
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}
