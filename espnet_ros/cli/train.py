"""``espnet-ros train``: the ESPNet and ERFNet (two-stage), ENet and fine-tuning recipes from a YAML
config and flags; one process, or one per GPU / CPU worker under ``torchrun``."""
import signal
from pathlib import Path

from ..training.recipes import RECIPES
from . import CommandError

# Training settings that may differ when resuming: they do not change the result.
RESUME_FREE = ("device", "workers", "progress", "log_every")


def add_parser(sub):
    p = sub.add_parser("train", help="train ESPNet / ENet / ERFNet (config file + flags); resumable")
    p.add_argument("--config", type=Path, help="YAML config (see config/train_*.yaml)")
    p.add_argument("--out", type=Path, help="output folder (default: out/train/NAME)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoints")
    p.add_argument("--recipe", choices=sorted(RECIPES))
    p.add_argument("--dataset", help="dataset kind: cityscapes, mapillary, camvid, folder")
    p.add_argument("--data-root", help="dataset folder")
    p.add_argument("--name", help="zoo name of the trained model")
    p.add_argument("--epochs", type=int, help="epochs of every stage")
    p.add_argument("--batch-size", type=int, help="batch size of every stage")
    p.add_argument("--crop", help="training crop WIDTHxHEIGHT (configurations without augment.passes)")
    p.add_argument("--init-from", metavar="MODEL",
                   help="fine-tune: zoo name (e.g. espnet-p2q8-cityscapes) or checkpoint file "
                        "that initialises the first stage; tensors of another shape (the "
                        "classes) are re-initialised")
    p.add_argument("--freeze-encoder-epochs", type=int, metavar="K",
                   help="keep the encoder tensors taken from --init-from frozen for K epochs")
    p.add_argument("--limit", type=int, help="use the first N training frames")
    p.add_argument("--val-limit", type=int, help="validate on the first N validation frames")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--workers", type=int, help="data-loading processes")
    p.add_argument("--seed", type=int)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set optim.lr=1e-3 --set stages.0.epochs=2")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=run)


def flag_overrides(args):
    """The dedicated flags as config overrides (--set strings)."""
    pairs = [("recipe", args.recipe), ("dataset.kind", args.dataset), ("dataset.root", args.data_root),
             ("name", args.name), ("dataset.limit", args.limit), ("dataset.val_limit", args.val_limit),
             ("train.device", args.device), ("train.workers", args.workers), ("train.seed", args.seed),
             ("init_from", args.init_from), ("freeze_encoder_epochs", args.freeze_encoder_epochs)]
    items = ["%s=%s" % (k, v) for k, v in pairs if v is not None]
    if args.crop:
        width, height = _size(args.crop)
        items.append("augment.crop=[%d, %d]" % (width, height))
    if args.no_progress:
        items.append("train.progress=false")
    return items


def resolve_config(args):
    from ..training.config import ConfigError, load_config

    overrides = flag_overrides(args) + list(args.overrides)
    try:
        config = load_config(args.config, overrides)
        if args.crop and config["augment"].get("passes"):
            raise ConfigError("--crop applies to the scale-and-crop epoch; this configuration's "
                              "epoch is made of resize passes (augment.passes): add --set "
                              "augment.passes=null to crop instead")
        for stage in config["stages"]:
            if args.epochs is not None:
                stage["epochs"] = args.epochs
            if args.batch_size is not None:
                stage["batch_size"] = args.batch_size
    except (ConfigError, OSError) as exc:
        raise CommandError(str(exc)) from exc
    return config


class Stopped(Exception):
    """SIGTERM: under torchrun, the agent ends every worker when one of them fails."""


def _stop(signum, frame):
    raise Stopped()


def run(args):
    import yaml

    from ..training import distributed
    from ..training.train import train

    saved = args.out / "config.yaml" if args.out else None
    if args.resume and saved and saved.is_file() and args.config is None:
        args.config = saved  # resuming needs nothing but the output folder
    config = resolve_config(args)
    if args.print_config:
        print(yaml.safe_dump(config, sort_keys=False), end="")
        return 0
    out = args.out or Path("out") / "train" / config["name"]
    if args.resume and (out / "config.yaml").is_file():
        _check_same_run(yaml.safe_load((out / "config.yaml").read_text()), config)
    world = distributed.setup(config["train"]["device"])
    signal.signal(signal.SIGTERM, _stop)
    try:
        results = train(config, out, resume=args.resume, world=world)
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    except (distributed.WorkerLost, Stopped) as exc:
        why = ("stopped by SIGTERM (torchrun ends every worker when one fails: see its report)"
               if isinstance(exc, Stopped) else str(exc))
        raise CommandError("rank %d: %s; %s" % (world.rank, why, _last_checkpoint(out, config))) \
            from None
    distributed.teardown(world)
    if not world.main:
        return 0
    for result in results:
        best = "%.4f" % result.best_miou if result.best_miou is not None else "not validated"
        print("%s: best val mIoU %s -> %s (last: %s)" % (result.stage, best, result.best, result.last))
    final = results[-1].best
    print("use it: espnet-ros eval --model %s --dataset ... | espnet-ros predict --model %s IMAGES "
          "--out DIR | ros2 launch espnet_ros segment.launch.py model:=%s"
          % (final, final, final.resolve()))
    return 0


def _last_checkpoint(out, config):
    """Where the run can continue from (checkpoints are written atomically: never half a file)."""
    from ..training import checkpoint

    for stage in reversed(config["stages"]):
        path = out / stage["name"] / "last.pth"
        if path.is_file():
            try:
                ts = checkpoint.load(path)["train_state"]
            except (ValueError, KeyError) as exc:
                return "%s cannot be read: %s" % (path, exc)
            return ("the last checkpoint %s (epoch %d, batch %d, step %d) is intact: run the "
                    "same command with --resume to continue"
                    % (path, ts["epoch"] + 1, ts["batch"], ts["global_step"]))
    return "no checkpoint was written yet"


def _check_same_run(saved, config):
    def strip(c):
        return dict(c, train={k: v for k, v in c["train"].items() if k not in RESUME_FREE})
    saved, current = strip(saved), strip(config)
    changed = sorted(k for k in current if saved.get(k) != current.get(k))
    if changed:
        raise CommandError("the configuration differs from the one this run started with (%s); "
                           "resume without --config/--set changes, or train into a new --out"
                           % ", ".join(changed))


def _size(text):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise CommandError("size must look like 480x360, got %r" % text) from None
    return width, height
