"""The training loop: stages, validation, checkpoints and exact resume.

Output folder::

    OUT/config.yaml          the resolved configuration
    OUT/stats.json           training-split statistics (normalization, class histogram), cached
    OUT/STAGE/last.pth       written every ``checkpoint_every`` iterations and every epoch end
    OUT/STAGE/best.pth       best validation mIoU (the final model when never validated)
    OUT/STAGE/log.csv        one row per epoch
    OUT/STAGE/curves.png     training loss and validation mIoU per epoch
    OUT/STAGE/tb/            TensorBoard events

Exact resume: the data order of an epoch's passes is drawn from (seed, epoch, pass)
(``training.schedule``), each sample's augmentation is seeded by (seed, epoch, pass, index)
(``data.transforms.Augmented``), and ``last.pth`` holds the model, optimizer, AMP scaler, torch
RNG states (dropout; one per process), the epoch, the position within it and the running
loss. A run killed at any point and resumed from its last checkpoint therefore ends with the
same weights as an uninterrupted run (bit-exact on CPU; on CUDA up to the determinism of its
kernels, see ``train.deterministic``).

Distributed (``torchrun``, see ``training.distributed``): every process trains on its share of
each batch (DistributedDataParallel averages the gradients, and the loss is normalised by the
weight of all processes' pixels, so W processes at batch b compute the one-process gradient
at batch W*b), validates its share of the validation split (the confusion matrices are
summed), and only rank 0 writes files or prints.
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
from ..data.transforms import Augmented, ResizePass, TrainTransform
from ..models import build, load_state_dict, registry, resolve, zoo
from ..models.espnet import ABLATION_DEFAULTS
from ..models.zoo import ModelEntry, Normalization
from . import checkpoint, distributed
from .config import DEFAULTS, dump
from .evaluate import evaluate
from .losses import SegmentationLoss, class_weights
from .report import plot_curves
from .schedule import epoch_batches, passes_of

HANG_ENV = "ESPNET_ROS_FAULT_HANG_AT"  # "STAGE:STEP": fault injection for the resume-after-kill tests
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


def _quiet(message):
    pass


def train(config, out_dir, resume=False, log=log_line, world=None):
    """Runs every stage of ``config`` (see ``training.config``); returns their StageResults.

    ``world``: the process group (``training.distributed.setup``); by default joined here
    when started by torchrun, else one process.
    """
    out_dir = Path(out_dir)
    world = world or distributed.setup(config["train"]["device"])
    if not world.main:
        log = _quiet
    stages = config["stages"]
    existing = [s["name"] for s in stages if (out_dir / s["name"] / "last.pth").exists()]
    existing = distributed.broadcast_object(existing, world)  # rank 0's disk decides
    if existing and not resume:
        raise FileExistsError("%s already holds checkpoints (%s): pass --resume to continue, or "
                              "choose another output folder" % (out_dir, ", ".join(existing)))
    if world.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(dump(config))
        if world.distributed:
            log("distributed: %d processes (%s), this is rank 0; batch sizes are per process"
                % (world.size, "nccl" if world.device.type == "cuda" else "gloo"))
    prep = prepare_data(config, out_dir, log, world)
    results = []
    for index in range(len(stages)):
        trainer = StageTrainer(config, index, prep, out_dir, world, log)
        results.append(trainer.run(resume=resume, earlier=results))
    return results


def init_source(ref):
    """(entry, state dict, path) of a zoo name or checkpoint file that initialises a model."""
    entry, weights = registry.lookup(ref)
    path = resolve(entry, weights)
    return entry, load_state_dict(path), path


def prepare_data(config, out_dir, log=log_line, world=None) -> Prepared:
    ds = config["dataset"]
    options = dict(ds.get("options") or {})
    train_set = build_dataset(ds["kind"], ds["root"], ds["train_split"], limit=ds["limit"], **options)
    val_set = None
    if ds.get("val_split") and config["train"]["val_every"]:
        val_set = build_dataset(ds["kind"], ds["root"], ds["val_split"], limit=ds["val_limit"],
                                **options)
    void_id = train_set.num_classes if config["void_as_class"] else None
    world = world or distributed.setup("cpu", environ={})
    stats = cached_statistics(train_set, void_id, out_dir / "stats.json", log) if world.main else None
    stats = distributed.broadcast_object(stats, world)
    spec = config["normalization"]
    if spec == "init":
        if not config.get("init_from"):
            raise ValueError("normalization 'init' needs init_from")
        spec = registry.lookup(config["init_from"])[0].normalization
    norm = normalization(spec, stats)
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
    if isinstance(spec, Normalization):
        return spec
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
    arch, m = stage["arch"], model_options(config)
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


def model_options(config) -> dict:
    """The ``model`` section; "init" means the architecture options of init_from's model."""
    if config["model"] != "init":
        return config["model"]
    if not config.get("init_from"):
        raise ValueError("model 'init' needs init_from")
    options = dict(DEFAULTS["model"])
    source = registry.lookup(config["init_from"])[0].arch_args
    options.update((k, v) for k, v in source.items() if k in options)
    return options


class StageTrainer:
    def __init__(self, config, index, prep: Prepared, out_dir: Path, world, log=log_line):
        self.config, self.prep, self.world, self.log = config, prep, world, log
        self.device = world.device
        self.index = index
        self.stage = config["stages"][index]
        self.opts = config["train"]
        self.seed = int(self.opts["seed"])
        self.dir = out_dir / self.stage["name"]
        self.entry = stage_entry(config, self.stage, prep, final=index == len(config["stages"]) - 1)
        if self.opts["deterministic"]:
            torch.use_deterministic_algorithms(True, warn_only=True)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not self.opts["deterministic"]
        torch.manual_seed(self.seed + index)  # model initialisation: the same on every rank
        self.model = build(self.entry)
        if self.opts["sync_bn"] and world.distributed:
            if self.device.type != "cuda":
                raise ValueError("train.sync_bn needs CUDA: PyTorch's SyncBatchNorm runs on GPUs "
                                 "only (on the CPU each process normalises its own batch)")
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.model.to(self.device)
        if world.rank:  # dropout draws differ between ranks, as their frames do
            torch.manual_seed(self.seed + index + 1000003 * world.rank)
        self.net, self.frozen, self._wrapped = self.model, frozenset(), False
        optim = config["optim"]
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=optim["lr"],
                                          weight_decay=optim["weight_decay"])
        self.amp = bool(self.opts["amp"]) and self.device.type == "cuda"
        self.scaler = _grad_scaler(self.amp)
        self.criterion = SegmentationLoss(prep.weights).to(self.device)
        aug = config["augment"]
        stride = self.stage.get("label_stride") or self.entry.output_stride
        self.passes = passes_of(aug, self.stage["batch_size"])
        transforms = [
            ResizePass(prep.normalization, p.size, p.crop_resize, aug["flip"], stride, prep.void_id)
            if p.size else
            TrainTransform(prep.normalization, config["input_size"], aug["crop"], aug["scales"],
                           aug["flip"], stride, prep.void_id)
            for p in self.passes]
        self.data = Augmented(prep.train, transforms, self.seed)

    # -- the loop ---------------------------------------------------------------------------
    def run(self, resume=False, earlier=()) -> StageResult:
        last = self.dir / "last.pth"
        state = self._fresh_state()
        saved = checkpoint.load(last) if resume and self.world.main and last.exists() else None
        saved = distributed.broadcast_object(saved, self.world) if resume else None
        if saved is not None:
            state = self._restore(saved)
            self.log("%s: resuming at epoch %d, batch %d (step %d)"
                     % (self.stage["name"], state["epoch"] + 1, state["batch"], state["global_step"]))
        else:
            state["transferred"] = self._initialise(earlier)
        if state["finished"]:
            self.log("%s: already finished" % self.stage["name"])
            return self._finish(state)
        if self.world.main:
            self.dir.mkdir(parents=True, exist_ok=True)
        csv_log = CsvLog(self.dir / "log.csv", keep_epochs=state["epoch"]) if self.world.main else None
        board = _board(self.dir / "tb", state["global_step"], self.log) if self.world.main else None
        epochs = int(self.stage["epochs"])
        for epoch in range(state["epoch"], epochs):
            started = time.perf_counter()
            lr = self._set_lr(epoch, epochs)
            self._freeze(state["transferred"] if epoch < self.config["freeze_encoder_epochs"] else ())
            batches = self._batches(epoch)
            desc = "%s %d/%d" % (self.stage["name"], epoch + 1, epochs)
            bar = _progress(len(batches), state["batch"], desc, self.opts["progress"] and self.world.main)
            self._train_mode()
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
            if csv_log:
                csv_log.write(row)
                plot_curves(csv_log.path, self.dir / "curves.png", "%s (%s)" % (self.entry.name,
                                                                                self.stage["name"]))
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
            logits = self.net(images)
        total, weight = self.criterion.sum_and_weight(logits, targets)
        # The weight of every process's labelled pixels: each process's loss is scaled so that
        # DDP's average of the gradients is the gradient of the mean over all of them.
        sums = distributed.all_reduce_sum(torch.stack([total.detach(), weight]).double(), self.world)
        loss = total * (self.world.size / sums[1]) if sums[1] > 0 else total * 0.0
        self.optimizer.zero_grad(set_to_none=True)
        with distributed.lost_worker_guard() if self.world.distributed else _nothing():
            self.scaler.scale(loss.float()).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        value = float(sums[0] / sums[1]) if sums[1] > 0 else 0.0
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
            return evaluate(segmenter, self.prep.val, progress=self.opts["progress"] and self.world.main,
                            world=self.world).scores
        finally:
            self._train_mode()

    # -- data order and what trains ----------------------------------------------------------
    def _batches(self, epoch):
        return epoch_batches(len(self.data), self.passes, self.seed, epoch, self.world.rank,
                             self.world.size)

    def _loader(self, epoch, batches):
        keys = [[(epoch, batch.pass_index, i) for i in batch.indices] for batch in batches]
        # Its own generator: creating a loader must not draw from the global RNG.
        return torch.utils.data.DataLoader(
            self.data, batch_sampler=keys, num_workers=int(self.opts["workers"]),
            pin_memory=self.device.type == "cuda", generator=torch.Generator())

    def _set_lr(self, epoch, epochs):
        optim = self.config["optim"]
        if optim["schedule"] == "poly":
            lr = optim["lr"] * (1.0 - epoch / float(epochs)) ** 0.9
        else:
            lr = optim["lr"] * optim["lr_gamma"] ** (epoch // int(optim["lr_step_epochs"]))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _freeze(self, names):
        """Freezes the parameters ``names`` (those of the encoder taken from init_from, during
        freeze_encoder_epochs) and wraps the model for DDP over what trains."""
        names = frozenset(names)
        if names == self.frozen and self._wrapped:
            return
        for name, param in self.model.named_parameters():
            param.requires_grad_(name not in names)
        if names and not self.frozen:
            count = sum(p.numel() for n, p in self.model.named_parameters() if n in names)
            self.log("%s: the encoder's %d parameters taken from init_from stay frozen for the "
                     "first %d epoch(s)" % (self.stage["name"], count,
                                            self.config["freeze_encoder_epochs"]))
        self.frozen, self._wrapped = names, True
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        else:
            self.net = self.model

    def _train_mode(self):
        """Training mode, except batch norm whose parameters are frozen or with freeze_bn: it
        keeps (and uses) its running statistics."""
        self.model.train()
        for module in self.model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                weight = module.weight
                if self.opts["freeze_bn"] or (weight is not None and not weight.requires_grad):
                    module.eval()

    # -- state -------------------------------------------------------------------------------
    def _fresh_state(self):
        return {"epoch": 0, "batch": 0, "global_step": 0, "loss_sum": 0.0, "loss_count": 0,
                "best_miou": None, "best_epoch": None, "finished": False, "transferred": []}

    def _initialise(self, earlier):
        """Loads the stage's init_from (an earlier stage, a file, or for the first stage the
        config's init_from: a zoo name or file); returns the encoder tensors it supplied."""
        source = self.stage.get("init_from") or (self.config.get("init_from") if self.index == 0
                                                 else None)
        if not source:
            return []
        done = {r.stage: r for r in earlier}
        if source in done:
            path = done[source].best
            state = checkpoint.load(path)["model"] if self.world.main else None
            state = distributed.broadcast_object(state, self.world)
        else:
            _, state, path = init_source(source)
        report = transfer(self.model, state)
        self.log("%s: initialised %d of %d tensors from %s (%s)%s"
                 % (self.stage["name"], len(report.loaded), report.total, source, path,
                    report.details()))
        return [k for k in report.loaded if _is_encoder(k, self.entry.arch)]

    def _train_state(self, state):
        rng = distributed.all_gather_object(torch.get_rng_state(), self.world)
        return dict(state, stage=self.stage["name"], optimizer=self.optimizer.state_dict(),
                    scaler=self.scaler.state_dict(), rng_torch=rng[0], rng_torch_ranks=rng,
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
        ranks = ts.get("rng_torch_ranks") or [ts["rng_torch"]]
        torch.set_rng_state(ranks[self.world.rank] if len(ranks) == self.world.size
                            else ts["rng_torch"])
        if ts.get("rng_cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ts["rng_cuda"])
        return {k: ts.get(k, v) for k, v in self._fresh_state().items()}

    def _save_last(self, state):
        train_state = self._train_state(state)  # every rank: it gathers their RNG states
        if self.world.main:
            metrics = {"epoch": state["epoch"], "step": state["global_step"],
                       "best_val_miou": state["best_miou"]}
            checkpoint.save_atomic(checkpoint.checkpoint_dict(
                _cpu_state(self.model), self.entry, metrics, train_state), self.dir / "last.pth")
        distributed.barrier(self.world)  # nobody runs ahead of a checkpoint that may be resumed
        if os.environ.get(HANG_ENV) == "%s:%d" % (self.stage["name"], state["global_step"]):
            print("%s: rank %d (pid %d) hanging after the checkpoint, waiting to be killed"
                  % (HANG_ENV, self.world.rank, os.getpid()), flush=True)
            while True:
                time.sleep(1)

    def _save_best(self, state, scores):
        if not self.world.main:
            return
        metrics = {"epoch": state["epoch"], "step": state["global_step"],
                   "val_miou": scores.miou if scores else None}
        checkpoint.save_atomic(checkpoint.checkpoint_dict(_cpu_state(self.model), self.entry,
                                                          metrics), self.dir / "best.pth")

    def _finish(self, state):
        if self.world.main and not (self.dir / "best.pth").exists():
            self._save_best(state, None)  # never validated: the final model is the best
        distributed.barrier(self.world)
        return self._result(state)

    def _result(self, state):
        return StageResult(self.stage["name"], self.dir / "last.pth", self.dir / "best.pth",
                           state["best_miou"], self.entry)


class Transfer(NamedTuple):
    loaded: list       # names taken from the source
    reinitialised: list  # present in both, of another shape (the classes): left initialised
    missing: list      # not in the source: left initialised
    unused: list       # in the source only
    total: int

    def details(self):
        parts = []
        for label, names in (("re-initialised (shape differs)", self.reinitialised),
                             ("not in the source", self.missing), ("unused", self.unused)):
            if names:
                shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
                parts.append("%s %d: %s" % (label, len(names), shown))
        return "; " + "; ".join(parts) if parts else ""


def transfer(model, source: dict) -> Transfer:
    """Copies the tensors of ``source`` that fit ``model``: by name, the source's keys taken as
    they are, without an ``encoder.`` prefix (ESPNet -> ESPNet-C) or with one (ESPNet-C ->
    ESPNet), whichever matches most names."""
    own = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    source = {k: v for k, v in source.items() if not k.endswith("num_batches_tracked")}
    views = [source,
             {k[len("encoder."):]: v for k, v in source.items() if k.startswith("encoder.")},
             {"encoder." + k: v for k, v in source.items()}]
    view = max(views, key=lambda v: sum(k in own for k in v))
    loaded = [k for k in own if k in view and tuple(view[k].shape) == tuple(own[k].shape)]
    reinit = [k for k in own if k in view and k not in loaded]
    missing = [k for k in own if k not in view]
    unused = [k for k in view if k not in own]
    model.load_state_dict({k: view[k] for k in loaded}, strict=False)
    return Transfer(loaded, reinit, missing, unused, len(own))


def _is_encoder(name, arch):
    # ESPNet-C, ESPNet-A/B and ERFNet's encoder are all encoder; the others hold it as .encoder
    return arch in zoo.ENCODER_ARCHS or name.startswith("encoder.")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


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
