"""The calibration file: which frames calibrate a model and which frames gate it.

Written by ``espnet-ros calibrate`` as ``DIR/calibration.json``; the calibrated models are cached
in the same folder, keyed by the file's digests plus the weights, input size and library
versions (see backends.openvino_backend). The node and ``eval`` name the file (or its folder).
"""
import json
from pathlib import Path
from typing import NamedTuple, Optional

from ..artifact_cache import write_atomic
from .frames import FrameSet, frame_sets

FILE_NAME = "calibration.json"
FORMAT = "espnet_ros.calibration/1"


class CalibrationSpec(NamedTuple):
    precision: str                       # int8 or bf16
    gate: FrameSet
    gate_sha256: str
    calibration: Optional[tuple] = None      # int8 only: a FrameSet or a tuple of them
    calibration_sha256: Optional[str] = None
    model: Optional[str] = None              # the zoo name it was made for (informative)
    path: Optional[Path] = None              # the file it was read from

    @property
    def folder(self):
        return self.path.parent if self.path else None


def spec_path(path):
    path = Path(path)
    return path / FILE_NAME if path.is_dir() or not path.suffix else path


def write_spec(folder, spec):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "precision": spec.precision, "model": spec.model,
            "gate": spec.gate.to_json(), "gate_sha256": spec.gate_sha256,
            "calibration": _sets_json(spec.calibration),
            "calibration_sha256": spec.calibration_sha256}
    path = folder / FILE_NAME
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1)))
    return spec._replace(path=path)


def _sets_json(sets):
    if not sets:
        return None
    sets = frame_sets(sets)
    return sets[0].to_json() if len(sets) == 1 else [each.to_json() for each in sets]


def _sets_from_json(data):
    if not data:
        return None
    if isinstance(data, list):
        return tuple(FrameSet.from_json(each) for each in data)
    return FrameSet.from_json(data)


def load_spec(path):
    """The calibration file at ``path`` (the file or its folder); ValueError when unusable."""
    path = spec_path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError("cannot read calibration file %s: %s (run espnet-ros calibrate)"
                         % (path, exc)) from exc
    except ValueError as exc:
        raise ValueError("calibration file %s is not JSON: %s" % (path, exc)) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError("%s is not a calibration file of this version (format %r, expected %r)"
                         % (path, data.get("format") if isinstance(data, dict) else None, FORMAT))
    calibration = data.get("calibration")
    return CalibrationSpec(data["precision"], FrameSet.from_json(data["gate"]),
                           data["gate_sha256"],
                           _sets_from_json(calibration),
                           data.get("calibration_sha256"), data.get("model"), path)
