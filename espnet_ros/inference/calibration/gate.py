"""The accuracy gate a reduced-precision model must pass before anything serves it.

Against the fp32 model on frames the user names: pixel agreement of the labels over all the
frames' pixels (at least MIN_AGREEMENT), no frame below FRAME_FLOOR and, where those frames have
ground truth with the model's classes, the mIoU drop (at most MAX_MIOU_DROP points).

The frames are compared at the model's input size, so each weighs the same and the agreement
over all pixels is the mean of the frames' agreements.
"""
from typing import NamedTuple, Optional, Tuple

import numpy as np

from ...metrics import pixel_agreement, scored_classes
from ..logits import argmax_labels, model_logits

MIN_AGREEMENT = 0.99   # fraction of the gate frames' pixels with the fp32 label
# Each frame's own agreement must reach this too: one ruined frame (a class flipped over a
# whole region) fails the gate even where the other frames keep the mean up.
FRAME_FLOOR = 0.97
MAX_MIOU_DROP = 0.5    # mIoU points (percent) the candidate may lose against fp32


class GateResult(NamedTuple):
    passed: bool
    agreement_min: float
    agreement_mean: float
    frames: int
    miou_fp32: Optional[float] = None        # percent
    miou_candidate: Optional[float] = None   # percent
    reasons: Tuple[str, ...] = ()             # why it failed (empty when passed)
    min_agreement: float = MIN_AGREEMENT
    max_miou_drop: float = MAX_MIOU_DROP
    frame_floor: float = FRAME_FLOOR

    @property
    def miou_drop(self):
        if self.miou_fp32 is None or self.miou_candidate is None:
            return None
        return self.miou_fp32 - self.miou_candidate

    def summary(self):
        text = "pixel agreement with fp32 %.2f %% over %d frame(s) (needs >= %.2f %%), " \
               "worst frame %.2f %% (needs >= %.2f %%)" % (
                   100 * self.agreement_mean, self.frames, 100 * self.min_agreement,
                   100 * self.agreement_min, 100 * self.frame_floor)
        if self.miou_drop is not None:
            text += "; mIoU %.2f -> %.2f (%+.2f points, allowed -%.2f)" % (
                self.miou_fp32, self.miou_candidate, -self.miou_drop, self.max_miou_drop)
        return ("passed: " if self.passed else "failed: ") + text

    def to_json(self):
        data = self._asdict()
        data["reasons"] = list(self.reasons)
        return data

    @classmethod
    def from_json(cls, data):
        data = dict(data)
        data["reasons"] = tuple(data.get("reasons", ()))
        return cls(**data)


def reaches(agreement_min, agreement_mean, margin=0.0):
    """Whether (worst frame, all pixels) agreements pass the gate's two bounds (``margin``
    above each: the calibration's trials aim there, their frames being fewer)."""
    return agreement_mean >= MIN_AGREEMENT + margin and agreement_min >= FRAME_FLOOR + margin


def decide(agreements, miou_fp32=None, miou_candidate=None, min_agreement=None,
           max_miou_drop=None):
    """The verdict from per-frame agreements (fractions; frames of one size) and optional
    mIoUs (percent); thresholds default to MIN_AGREEMENT and MAX_MIOU_DROP."""
    min_agreement = MIN_AGREEMENT if min_agreement is None else min_agreement
    max_miou_drop = MAX_MIOU_DROP if max_miou_drop is None else max_miou_drop
    if not agreements:
        raise ValueError("the gate needs at least one frame")
    reasons = []
    low, mean = min(agreements), float(np.mean(agreements))
    if mean < min_agreement:
        reasons.append("pixel agreement %.2f %% < %.2f %%" % (100 * mean, 100 * min_agreement))
    if low < FRAME_FLOOR:
        reasons.append("a frame's pixel agreement %.2f %% < %.2f %%" % (100 * low,
                                                                       100 * FRAME_FLOOR))
    if miou_fp32 is not None and miou_candidate is not None \
            and miou_fp32 - miou_candidate > max_miou_drop:
        reasons.append("mIoU drop %.2f points > %.2f" % (miou_fp32 - miou_candidate,
                                                          max_miou_drop))
    return GateResult(not reasons, float(low), mean, len(agreements), miou_fp32, miou_candidate,
                      tuple(reasons), min_agreement, max_miou_drop, FRAME_FLOOR)


def _upsample(labels, shape):
    import cv2
    if labels.shape == shape:
        return labels
    return cv2.resize(labels, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def run_gate(reference, candidate, preprocess, images, entry, dataset=None):
    """Gate of forward callable ``candidate`` against ``reference`` (each NCHW batch -> logits:
    e.g. the eager model and its compiled low-precision version) on BGR ``images``, both fed
    ``preprocess([image])`` (an ``inference.Preprocessor``) and compared at the model's size.

    With ``dataset`` (the images' labelled split, same order) and zoo model ``entry`` predicting
    its classes, the mIoU of both is scored too.
    """
    confusions = None
    if dataset is not None:
        try:
            confusions = [scored_classes(entry, dataset)[0] for _ in range(2)]
        except ValueError:  # other classes than the model's: agreement only
            confusions = None
    agreements = []
    for index, image in enumerate(images):
        batch = preprocess([image], "bgr")
        expected, got = (argmax_labels(model_logits(forward, batch))[0].numpy()
                         for forward in (reference, candidate))
        agreements.append(pixel_agreement(expected, got))
        if confusions is not None:
            truth = dataset.read_label(index)
            confusions[0].update(_upsample(expected, truth.shape), truth)
            confusions[1].update(_upsample(got, truth.shape), truth)
    mious = [None, None]
    if confusions is not None:
        mious = [100.0 * c.compute().miou for c in confusions]
    return decide(agreements, mious[0], mious[1])
