"""The training loop: stages, validation, checkpoints and exact resume.

Output folder::

    OUT/config.yaml          the resolved configuration
    OUT/stats.json           training-split statistics (normalization, class histogram), cached
    OUT/STAGE/last.pth       written every ``checkpoint_every`` iterations and every epoch end
    OUT/STAGE/best.pth       best validation mIoU (the final model when never validated)
    OUT/STAGE/log.csv        one row per epoch
    OUT/STAGE/tb/            TensorBoard events

Exact resume: the data order of an epoch is a permutation seeded by (seed, epoch), each
sample's augmentation is seeded by (seed, epoch, index) (``data.transforms.Augmented``), and
``last.pth`` holds the model, optimizer, AMP scaler, torch RNG states (dropout), the epoch,
the position within it and the running loss. A run killed at any point and resumed from its
last checkpoint therefore ends with the same weights as an uninterrupted run (bit-exact on
CPU; on CUDA up to the determinism of its kernels, see ``train.deterministic``).
"""
import csv
import json
import os
import time
from pathlib import Path
from typing import NamedTuple, Optional

import torch

from ..data import build_dataset
from ..data.stats import split_statistics
from ..data.transforms import Augmented, TrainTransform
from ..models import build, zoo
from ..models.espnet import ABLATION_DEFAULTS
from ..models.zoo import ModelEntry, Normalization
from . import checkpoint
from .config import dump
from .evaluate import evaluate
from .losses import SegmentationLoss, class_weights

HANG_ENV = "ESPNET_ROS_FAULT_HANG_AT"  # "STAGE:STEP": fault injection for the resume-after-kill test
CSV_FIELDS = ("epoch", "step", "lr", "train_loss", "val_miou", "val_pixel_accuracy", "seconds")


class Prepared(NamedTuple):
    train: object
    val: Optional[object]
    normalization: Normalization
    weights: torch.Tensor
    classes: tuple
    palette: tuple
    void_id: Optional[int]
    label_ids: Optional[tuple]


class StageResult(NamedTuple):
    stage: str
    last: Path
    best: Path
    best_miou: Optional[float]
    entry: ModelEntry


def log_line(message):
    print(message, flush=True)  # flushed: a supervisor reading the pipe sees it at once


def train(config, out_dir, resume=False, log=log_line):
    """Runs every stage of ``config`` (see ``training.config``); returns their StageResults."""
    out_dir = Path(out_dir)
    stages = config["stages"]
    existing = [s["name"] for s in stages if (out_dir / s["name"] / "last.pth").exists()]
    if existing and not resume:
        raise FileExistsError("%s already holds checkpoints (%s): pass --resume to continue, or "
                              "choose another output folder" % (out_dir, ", ".join(existing)))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(dump(config))
    prep = prepare_data(config, out_dir, log)
    device = resolve_device(config["train"]["device"])
    results = []
    for index in range(len(stages)):
        trainer = StageTrainer(config, index, prep, out_dir, device, log)
        results.append(trainer.run(resume=resume, earlier=results))
    return results


def resolve_device(name):
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def prepare_data(config, out_dir, log=log_line) -> Prepared:
    ds = config["dataset"]
    options = dict(ds.get("options") or {})
    train_set = build_dataset(ds["kind"], ds["root"], ds["train_split"], limit=ds["limit"], **options)
    val_set = None
    if ds.get("val_split") and config["train"]["val_every"]:
        val_set = build_dataset(ds["kind"], ds["root"], ds["val_split"], limit=ds["val_limit"],
                                **options)
    void_id = train_set.num_classes if config["void_as_class"] else None
    stats = cached_statistics(train_set, void_id, out_dir / "stats.json", log)
    norm = normalization(config["normalization"], stats)
    classes, palette = train_set.classes, train_set.palette
    if void_id is not None:
        classes, palette = classes + ("void",), palette + ((0, 0, 0),)
    return Prepared(train_set, val_set, norm, class_weights(stats["histogram"], config["class_weight_c"]),
                    classes, palette, void_id, _label_ids(train_set, void_id))


def cached_statistics(dataset, void_id, path: Path, log=log_line) -> dict:
    key = {"kind": dataset.kind, "root": str(dataset.root), "split": dataset.split,
           "images": len(dataset), "void_id": void_id}
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached
    log("computing statistics of %s %s (%d images)" % (dataset.kind, dataset.split, len(dataset)))
    stats = split_statistics(dataset, void_id)
    result = {"key": key, "mean_bgr": stats.mean_bgr, "std_bgr": stats.std_bgr,
              "histogram": stats.histogram}
    path.write_text(json.dumps(result, indent=1))
    return result


def normalization(spec, stats) -> Normalization:
    """"dataset" (statistics of the training split, as the original loader), a dataset name
    with published statistics ("cityscapes", "camvid"), or an explicit mapping."""
    if spec == "dataset":
        return Normalization("bgr", tuple(stats["mean_bgr"]), tuple(stats["std_bgr"]), 1 / 255.0)
    if spec in ("cityscapes", "camvid"):
        return zoo.CITYSCAPES_NORM if spec == "cityscapes" else zoo.CAMVID_NORM
    if isinstance(spec, dict):
        return Normalization(spec.get("order", "bgr"), tuple(spec["mean"]), tuple(spec["std"]),
                             float(spec.get("scale", 1 / 255.0)))
    raise ValueError("normalization must be 'dataset', 'cityscapes', 'camvid' or a mapping, got %r"
                     % (spec,))


def _label_ids(dataset, void_id):
    if dataset.kind == "cityscapes" or getattr(dataset, "target", None) == "cityscapes":
        from ..data.cityscapes import trainid_to_labelid
        return trainid_to_labelid() + ((0,) if void_id is not None else ())  # void -> unlabeled
    return None


def stage_entry(config, stage, prep: Prepared, final: bool) -> ModelEntry:
    arch, m = stage["arch"], config["model"]
    classes = len(prep.classes)
    if classes < 2:  # argmax over one output is constant
        raise ValueError("a segmentation model needs at least 2 outputs, the dataset gives %d: "
                         "set void_as_class to learn the unlabeled pixels as a class" % classes)
    ablation = {key: m[key] for key in ABLATION_DEFAULTS}
    if arch in ("enet", "erfnet", "erfnet-encoder"):
        if ablation != ABLATION_DEFAULTS:
            raise ValueError("stage %r: the ablation switches (model.%s) are ESPNet's; %s has "
                             "none" % (stage["name"], ", model.".join(ABLATION_DEFAULTS), arch))
        args = {"classes": classes}
    elif arch in ("espnet", "espnet-a", "espnet-b", "espnet-c"):
        args = {"classes": classes, "alpha2": m["alpha2"], "alpha3": m["alpha3"], "k": m["k"]}
        if arch == "espnet":
            args["decoder_skip"] = m["decoder_skip"]
        args.update(ablation)
    else:
        raise ValueError("stage %r: unknown arch %r" % (stage["name"], arch))
    name = config["name"] if final else "%s-%s" % (config["name"], stage["name"])
    return ModelEntry(
        name=name, arch=arch, arch_args=args, classes=prep.classes, palette=prep.palette,
        normalization=prep.normalization, input_size=tuple(config["input_size"]),
        void_id=prep.void_id, dataset=prep.train.kind, label_ids=prep.label_ids,
        description="%s trained with espnet-ros train (recipe %s, stage %s) on %s %s"
                    % (arch, config["recipe"], stage["name"], prep.train.kind, prep.train.split))


class StageTrainer:
    def __init__(self, config, index, prep: Prepared, out_dir: Path, device, log=log_line):
        self.config, self.prep, self.device, self.log = config, prep, device, log
        self.stage = config["stages"][index]
        self.opts = config["train"]
        self.seed = int(self.opts["seed"])
        self.dir = out_dir / self.stage["name"]
        self.entry = stage_entry(config, self.stage, prep, final=index == len(config["stages"]) - 1)
        if self.opts["deterministic"]:
            torch.use_deterministic_algorithms(True, warn_only=True)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = not self.opts["deterministic"]
        torch.manual_seed(self.seed + index)  # model initialisation
        self.model = build(self.entry).to(device)
        optim = config["optim"]
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=optim["lr"],
                                          weight_decay=optim["weight_decay"])
        self.amp = bool(self.opts["amp"]) and device.type == "cuda"
        self.scaler = _grad_scaler(self.amp)
        self.criterion = SegmentationLoss(prep.weights).to(device)
        aug = config["augment"]
        stride = self.stage.get("label_stride") or self.entry.output_stride
        transform = TrainTransform(prep.normalization, config["input_size"], aug["crop"],
                                   aug["scales"], aug["flip"], stride, prep.void_id)
        self.data = Augmented(prep.train, transform, self.seed)

    # -- the loop ---------------------------------------------------------------------------
    def run(self, resume=False, earlier=()) -> StageResult:
        last = self.dir / "last.pth"
        state = self._fresh_state()
        if resume and last.exists():
            state = self._restore(checkpoint.load(last))
            self.log("%s: resuming at epoch %d, batch %d (step %d)"
                     % (self.stage["name"], state["epoch"] + 1, state["batch"], state["global_step"]))
        else:
            self._initialise(earlier)
        if state["finished"]:
            self.log("%s: already finished" % self.stage["name"])
            return self._finish(state)
        self.dir.mkdir(parents=True, exist_ok=True)
        csv_log = CsvLog(self.dir / "log.csv", keep_epochs=state["epoch"])
        board = _board(self.dir / "tb", state["global_step"], self.log)
        epochs = int(self.stage["epochs"])
        for epoch in range(state["epoch"], epochs):
            started = time.perf_counter()
            lr = self._set_lr(epoch)
            batches = self._batches(epoch)
            desc = "%s %d/%d" % (self.stage["name"], epoch + 1, epochs)
            bar = _progress(len(batches), state["batch"], desc, self.opts["progress"])
            self.model.train()
            for b, (images, targets) in enumerate(self._loader(epoch, batches[state["batch"]:]),
                                                  start=state["batch"]):
                loss = self._step(images, targets)
                state["loss_sum"] += loss
                state["loss_count"] += 1
                state["global_step"] += 1
                bar.update(1)
                bar.set_postfix(loss="%.4f" % loss, lr="%.2e" % lr)
                if board and state["global_step"] % max(1, int(self.opts["log_every"])) == 0:
                    board.add_scalar("train/loss", loss, state["global_step"])
                every = int(self.opts["checkpoint_every"] or 0)
                if every and state["global_step"] % every == 0 and b + 1 < len(batches):
                    state["batch"] = b + 1
                    self._save_last(state)
            bar.close()
            train_loss = state["loss_sum"] / max(state["loss_count"], 1)
            scores = self._validate(epoch, epochs)
            state.update(epoch=epoch + 1, batch=0, loss_sum=0.0, loss_count=0,
                         finished=epoch + 1 == epochs)
            if scores is not None and (state["best_miou"] is None or scores.miou > state["best_miou"]):
                state["best_miou"], state["best_epoch"] = scores.miou, epoch + 1
                self._save_best(state, scores)
            row = {"epoch": epoch + 1, "step": state["global_step"], "lr": lr,
                   "train_loss": train_loss, "val_miou": scores.miou if scores else "",
                   "val_pixel_accuracy": scores.pixel_accuracy if scores else "",
                   "seconds": round(time.perf_counter() - started, 3)}
            csv_log.write(row)
            if board:
                board.add_scalar("train/epoch_loss", train_loss, state["global_step"])
                board.add_scalar("train/lr", lr, state["global_step"])
                if scores:
                    board.add_scalar("val/miou", scores.miou, state["global_step"])
                board.flush()
            self.log("%s epoch %d/%d: loss %.4f%s" % (self.stage["name"], epoch + 1, epochs, train_loss,
                                                      ", val mIoU %.4f" % scores.miou if scores else ""))
            self._save_last(state)
        if board:
            board.close()
        return self._finish(state)

    def _step(self, images, targets):
        images = images.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp):
            logits = self.model(images)
        loss = self.criterion(logits, targets)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        value = float(loss.detach())
        if value != value:
            raise FloatingPointError("loss is NaN at %s step: lower the learning rate or check "
                                     "the labels" % self.stage["name"])
        return value

    def _validate(self, epoch, epochs):
        every = int(self.opts["val_every"] or 0)
        if self.prep.val is None or not every or ((epoch + 1) % every and epoch + 1 != epochs):
            return None
        from ..inference import Segmenter

        segmenter = Segmenter(self.model, self.entry, self.device)
        try:
            return evaluate(segmenter, self.prep.val, progress=self.opts["progress"]).scores
        finally:
            self.model.train()

    # -- data order --------------------------------------------------------------------------
    def _batches(self, epoch):
        """The epoch's batches: a permutation seeded by (seed, epoch); an incomplete last batch
        is dropped (batch norm), unless the split is smaller than one batch."""
        n, size = len(self.data), int(self.stage["batch_size"])
        generator = torch.Generator().manual_seed(self.seed * 1000003 + epoch)
        order = torch.randperm(n, generator=generator).tolist()
        if n < size:
            return [order]
        return [order[i:i + size] for i in range(0, n - size + 1, size)]

    def _loader(self, epoch, batches):
        keys = [[(epoch, i) for i in batch] for batch in batches]
        # Its own generator: creating a loader must not draw from the global RNG.
        return torch.utils.data.DataLoader(
            self.data, batch_sampler=keys, num_workers=int(self.opts["workers"]),
            pin_memory=self.device.type == "cuda", generator=torch.Generator())

    def _set_lr(self, epoch):
        optim = self.config["optim"]
        lr = optim["lr"] * optim["lr_gamma"] ** (epoch // int(optim["lr_step_epochs"]))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    # -- state -------------------------------------------------------------------------------
    def _fresh_state(self):
        return {"epoch": 0, "batch": 0, "global_step": 0, "loss_sum": 0.0, "loss_count": 0,
                "best_miou": None, "best_epoch": None, "finished": False}

    def _initialise(self, earlier):
        source = self.stage.get("init_from")
        if not source:
            return
        done = {r.stage: r for r in earlier}
        path = done[source].best if source in done else Path(source)
        state = checkpoint.load(path)["model"] if source in done else _plain_state(path)
        target = self.model
        if hasattr(self.model, "encoder") and not any(k.startswith("encoder.") for k in state):
            target = self.model.encoder  # an ESPNet-C checkpoint initialises ESPNet's encoder
            # ERFNet's decoder does not use the first stage's classifier: that one is dropped.
            own = target.state_dict()
            state = {k: v for k, v in state.items()
                     if k in own or not k.startswith("classifier.")}
        target.load_state_dict(state, strict=True)
        self.log("%s: initialised %s from %s" % (self.stage["name"],
                                                  "encoder" if target is not self.model else "model", path))

    def _train_state(self, state):
        return dict(state, stage=self.stage["name"], optimizer=self.optimizer.state_dict(),
                    scaler=self.scaler.state_dict(), rng_torch=torch.get_rng_state(),
                    rng_cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                    config=self.config)

    def _restore(self, saved):
        if saved["train_state"]["stage"] != self.stage["name"]:
            raise ValueError("checkpoint belongs to stage %r" % saved["train_state"]["stage"])
        self.model.load_state_dict(saved["model"])
        ts = saved["train_state"]
        self.optimizer.load_state_dict(ts["optimizer"])
        if ts.get("scaler"):
            self.scaler.load_state_dict(ts["scaler"])
        torch.set_rng_state(ts["rng_torch"])
        if ts.get("rng_cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ts["rng_cuda"])
        return {k: ts[k] for k in self._fresh_state()}

    def _save_last(self, state):
        checkpoint.save_atomic({
            "format": checkpoint.FORMAT, "model": _cpu_state(self.model),
            "entry": checkpoint.entry_to_dict(self.entry),
            "metrics": {"epoch": state["epoch"], "step": state["global_step"],
                        "best_val_miou": state["best_miou"]},
            "train_state": self._train_state(state)}, self.dir / "last.pth")
        if os.environ.get(HANG_ENV) == "%s:%d" % (self.stage["name"], state["global_step"]):
            self.log("%s: hanging after the checkpoint, waiting to be killed" % HANG_ENV)
            while True:
                time.sleep(1)

    def _save_best(self, state, scores):
        metrics = {"epoch": state["epoch"], "step": state["global_step"],
                   "val_miou": scores.miou if scores else None}
        checkpoint.save_atomic({"format": checkpoint.FORMAT, "model": _cpu_state(self.model),
                                "entry": checkpoint.entry_to_dict(self.entry), "metrics": metrics},
                               self.dir / "best.pth")

    def _finish(self, state):
        if not (self.dir / "best.pth").exists():  # never validated: the final model is the best
            self._save_best(state, None)
        return self._result(state)

    def _result(self, state):
        return StageResult(self.stage["name"], self.dir / "last.pth", self.dir / "best.pth",
                           state["best_miou"], self.entry)


class CsvLog:
    """Per-epoch rows; on resume, rows of epochs the checkpoint has not completed are dropped
    (they are recomputed identically)."""

    def __init__(self, path: Path, keep_epochs: int):
        self.path = path
        rows = []
        if path.exists():
            with open(str(path), newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= keep_epochs]
        with open(str(path), "w", newline="") as f:
            writer = csv.DictWriter(f, CSV_FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row):
        with open(str(self.path), "a", newline="") as f:
            csv.DictWriter(f, CSV_FIELDS).writerow(row)
            f.flush()
            os.fsync(f.fileno())


def _board(folder, purge_step, log):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
        return None
    # purge_step drops the events a killed run wrote after its last checkpoint (at step S)
    return SummaryWriter(str(folder), purge_step=purge_step + 1 if purge_step else None)


def _progress(total, initial, desc, enabled):
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit="it", disable=not enabled,
                dynamic_ncols=True, leave=False)


def _grad_scaler(enabled):
    amp = getattr(torch, "amp", None)
    if amp is not None and hasattr(amp, "GradScaler"):
        return amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def _cpu_state(model):
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _plain_state(path):
    from ..models.weights import load_state_dict
    return load_state_dict(path)
