"""A short real training run on CamVid on CPU: the loss falls, validation mIoU rises.

The published two-stage recipe (ESPNet-C on labels down-sampled x8, then ESPNet initialised
from it) with everything shrunk to fit a laptop CPU: frames at half resolution (240x180),
160x120 crops, batch 4, four epochs per stage (364 iterations each; about 4 minutes on two
cores). Not a test: a benchmark whose output goes in the README.

    python -m espnet_ros.training.smoke --data-root $ESPNET_ROS_DATA/camvid --out out/smoke
"""
import argparse
import csv
import time
from pathlib import Path

from ..inference import Segmenter
from .config import load_config
from .evaluate import evaluate
from .distributed import setup
from .train import StageTrainer, prepare_data, train

CONFIG = Path(__file__).resolve().parents[2] / "config" / "train_espnet_camvid.yaml"


def smoke_config(args):
    overrides = ["dataset.root=%s" % args.data_root, "name=espnet-camvid-smoke",
                 "input_size=[240, 180]", "augment.crop=[160, 120]", "augment.scales=[0.75, 1.0, 1.25]",
                 "train.device=cpu", "train.workers=%d" % args.workers, "train.seed=%d" % args.seed,
                 "train.checkpoint_every=50", "train.progress=%s" % str(args.progress).lower()]
    if args.val_limit:
        overrides.append("dataset.val_limit=%d" % args.val_limit)
    for i in range(2):
        overrides += ["stages.%d.epochs=%d" % (i, args.epochs),
                      "stages.%d.batch_size=%d" % (i, args.batch_size)]
    return load_config(CONFIG, overrides)


def untrained_miou(config, prep, out, stage_index):
    """Validation mIoU of the randomly initialised model of a stage (what training starts from)."""
    trainer = StageTrainer(config, stage_index, prep, out, setup("cpu", environ={}), log=lambda *_: None)
    return evaluate(Segmenter(trainer.model, trainer.entry), prep.val).miou


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True, type=Path, help="the CamVid folder")
    parser.add_argument("--out", type=Path, default=Path("out/smoke"))
    parser.add_argument("--epochs", type=int, default=4, help="epochs per stage")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--val-limit", type=int, help="validate on the first N val frames")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    config = smoke_config(args)
    args.out.mkdir(parents=True, exist_ok=True)
    prep = prepare_data(config, args.out)
    before = {i: untrained_miou(config, prep, args.out, i) for i in range(len(config["stages"]))}
    start = time.perf_counter()
    results = train(config, args.out, resume=(args.out / "encoder" / "last.pth").exists())
    seconds = time.perf_counter() - start
    print("\n| stage | iterations | train loss, first epoch -> last | val mIoU untrained -> best |")
    print("| --- | --- | --- | --- |")
    for i, result in enumerate(results):
        with open(str(args.out / result.stage / "log.csv")) as f:
            rows = list(csv.DictReader(f))
        print("| %s | %s | %.3f -> %.3f | %.2f %% -> %.2f %% |" % (
            result.stage, rows[-1]["step"], float(rows[0]["train_loss"]), float(rows[-1]["train_loss"]),
            100 * before[i], 100 * (result.best_miou or float("nan"))))
    print("training wall time %.0f s; %d training frames, %d validation frames at 480x360"
          % (seconds, len(prep.train), len(prep.val)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
