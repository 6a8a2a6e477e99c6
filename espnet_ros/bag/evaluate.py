"""``espnet-ros bag eval``: the model over a bag's frames, no ROS graph, accuracy only.

The pipeline is built exactly as the node builds it (``Pipeline.build`` from the node's
parameter values) and each frame takes the node's path: ``messages.decode.decode``, then
``Pipeline.run``. So a replay that drops nothing gives the same mIoU.
"""
import time

from ..messages import params as P
from ..messages.decode import ImageDecodeError, decode
from .io import BagError, BagReader, iter_frames
from .scoring import Scorer


def node_config(model, weights=None, size=None, device="cpu", backend="torch", precision="fp32"):
    """The node's parameter values for this model (also what replay passes to the node)."""
    config = P.defaults()
    config.update(model=model, weights=weights or "", device=device, backend=backend,
                  precision=precision, warmup_frames=0)
    if size:
        config.update(input_width=int(size[0]), input_height=int(size[1]))
    return config


def build_pipeline(config):
    from ..inference import Pipeline
    try:
        return Pipeline.build(**P.pipeline_kwargs(config))
    except (KeyError, OSError, RuntimeError, ValueError) as exc:
        raise BagError("cannot load model %s: %s" % (config["model"], exc)) from exc


def evaluate_bag(bag_path, config, image_topic=None, label_topic=None, limit=None, progress=None,
                 pipeline=None):
    """Scores ``config``'s model on the labelled frames of the bag; returns the report dict.

    ``pipeline``: one from build_pipeline(config), to reuse a loaded model across bags.
    """
    rejected = []
    unlabelled = 0
    start = time.perf_counter()
    with BagReader(bag_path) as bag:
        topics = bag.choose_topics(image_topic, label_topic, need_label=True)
        scorer = None
        for stamp, msg, gt in iter_frames(bag, topics):
            if gt is None:
                unlabelled += 1
                continue
            if limit is not None and scorer is not None and scorer.frames >= limit:
                break
            if scorer is None:  # only now: topic errors come before the slow model load
                pipeline = pipeline or build_pipeline(config)
                scorer = Scorer(pipeline.entry)
            try:
                image = decode(msg)
            except ImageDecodeError as exc:  # the node rejects such a frame too
                rejected.append({"stamp_ns": stamp, "reason": str(exc)})
                continue
            labels = pipeline.run(image.pixels, image.order, config["output_resolution"]).labels
            scorer.add(labels, gt, "stamp %d.%09d" % divmod(stamp, 10 ** 9))
            if progress:
                progress(scorer.frames)
    if scorer is None or scorer.frames == 0:
        raise BagError("bag %s has no image with a ground-truth label on %s (paired by header stamp)"
                       % (bag_path, topics.label))
    report = {"bag": str(bag_path), "mode": "offline", "model": config["model"],
              "input_size": list(pipeline.model_size),
              "image_topic": topics.image, "label_topic": topics.label,
              "frames_unlabelled": unlabelled, "frames_rejected": len(rejected),
              "rejected": rejected[:20], "seconds": time.perf_counter() - start}
    report["accuracy"] = scorer.summary()
    return report
