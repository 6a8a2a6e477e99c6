"""Reduced precision behind an accuracy gate: calibration frames, the calibration file, the gate.

``espnet-ros calibrate`` writes a calibration file (``calibration.json``: which frames calibrate
the model, which frames judge it, and their digests) next to the cached calibrated models; a
backend given that file (option ``calibration_file``) builds or loads the int8 / bf16 model
and refuses it, with the figures, when it did not pass the gate.
"""
from .frames import KINDS, FrameSet, read_frames
from .gate import MAX_MIOU_DROP, MIN_AGREEMENT, GateResult, decide, run_gate
from .spec import CalibrationSpec, load_spec, write_spec

__all__ = ["KINDS", "MAX_MIOU_DROP", "MIN_AGREEMENT", "CalibrationSpec", "FrameSet", "GateResult",
           "decide", "load_spec", "read_frames", "run_gate", "write_spec"]
