"""Training configuration: defaults < recipe < YAML file < command-line overrides.

Overrides are ``dotted.key=value`` strings, the value parsed as YAML (``train.seed=3``,
``augment.crop=[64,48]``, ``stages.0.epochs=2``). Unknown keys are errors, so a typo does
not silently train with a default. ``dataset.root`` may use environment variables
(``${ESPNET_ROS_DATA}/camvid``).
"""
import copy
import os

import yaml

from .recipes import recipe

DEFAULTS = {
    "name": "espnet-custom",          # zoo name of the trained model (earlier stages get -STAGE)
    "recipe": "espnet",
    # Fine-tuning: a zoo name or checkpoint file that initialises the first stage (and with
    # model: init gives its architecture options); tensors whose
    # shape differs (the classes) are re-initialised. The encoder tensors taken from it can stay
    # frozen for the first epochs.
    "init_from": None,
    "freeze_encoder_epochs": 0,
    "dataset": {"kind": "camvid", "root": None, "train_split": "train", "val_split": "val",
                "limit": None, "val_limit": None, "options": {}},
    # ESPNet family; residual/hff/act/downsample are the paper's ablation switches (defaults:
    # its design), recorded in the checkpoint's zoo entry.
    "model": {"alpha2": 2, "alpha3": 8, "k": 5, "decoder_skip": "l1", "residual": True,
              "hff": True, "act": "prelu", "downsample": "esp"},
    "void_as_class": True,            # learn ignored pixels as an extra class, as the original
    "input_size": [1024, 512],        # native model input (width, height); scales are relative
    # "dataset" | "cityscapes" | "camvid" | "init" (that of init_from) | {order, mean, std, scale}
    "normalization": "dataset",
    # passes: the original code's epoch, one pass per entry {size, batch_offset, crop_resize};
    # without passes, one pass of a random scale (of input_size) and a random crop.
    "augment": {"passes": None, "scales": [0.5, 0.75, 1.0, 1.25, 1.5], "crop": None, "flip": True},
    # schedule "step": lr * lr_gamma ** (epoch // lr_step_epochs); "poly": lr * (1 - epoch /
    # epochs) ** 0.9, for short fine-tunes
    "optim": {"lr": 5e-4, "weight_decay": 5e-4, "lr_step_epochs": 100, "lr_gamma": 0.5,
              "schedule": "step"},
    "class_weight_c": 1.10,           # class weights 1 / ln(c + p_class)
    "stages": None,
    # sync_bn: SyncBatchNorm across the GPUs of a distributed run (CUDA only); freeze_bn: batch
    # norm uses its running statistics and does not update them (small batches, fine-tuning).
    "train": {"device": "auto", "amp": True, "workers": 2, "seed": 0, "val_every": 1,
              "checkpoint_every": 500, "log_every": 10, "progress": True, "deterministic": False,
              "sync_bn": False, "freeze_bn": False},
}
STAGE_KEYS = {"name", "arch", "label_stride", "epochs", "batch_size", "init_from"}


class ConfigError(ValueError):
    pass


def load_config(path=None, overrides=()) -> dict:
    """The resolved configuration from an optional YAML file and override strings."""
    user = {}
    if path:
        with open(str(path)) as f:
            user = yaml.safe_load(f) or {}
        if not isinstance(user, dict):
            raise ConfigError("%s must hold a mapping" % path)
    for item in overrides:
        _apply_override(user, item)
    config = copy.deepcopy(DEFAULTS)
    _merge(config, recipe(user.get("recipe", config["recipe"])), "recipe")
    _merge(config, user, "config")
    if isinstance(config["model"], dict):  # a mapping over a recipe's "init" is completed
        config["model"] = dict(DEFAULTS["model"], **config["model"])
    elif config["model"] != "init":
        raise ConfigError("model must be a mapping or 'init', got %r" % (config["model"],))
    _validate(config)
    root = config["dataset"]["root"]
    if root:
        config["dataset"]["root"] = os.path.expanduser(os.path.expandvars(str(root)))
    if not config["augment"]["crop"]:
        config["augment"]["crop"] = list(config["input_size"])
    return config


def dump(config) -> str:
    return yaml.safe_dump(config, sort_keys=False)


def _apply_override(tree, item):
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError("override %r must look like key.sub=value" % item)
    value = _number(yaml.safe_load(text))
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[_index(node, part, key)]
            continue
        if part == "stages" and node.get(part) is None:
            node[part] = recipe(tree.get("recipe", DEFAULTS["recipe"]))["stages"]
        node = node.setdefault(part, {})
    if isinstance(node, list):
        node[_index(node, parts[-1], key)] = value
    else:
        node[parts[-1]] = value


def _number(value):
    """YAML 1.1 reads 1e-3 (no dot) as a string; numbers are what such values mean here."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def _index(items, part, key):
    try:
        index = int(part)
        items[index]
    except (ValueError, IndexError):
        raise ConfigError("%s: %r is not an index of a %d-item list" % (key, part, len(items))) from None
    return index


def _merge(base, extra, where, prefix=""):
    for key, value in extra.items():
        if key not in base:
            raise ConfigError("unknown %s key %r" % (where, prefix + key))
        if isinstance(value, dict) and isinstance(base[key], dict) and key != "options":
            _merge(base[key], value, where, prefix + key + ".")
        else:  # lists (stages), scalars and free-form reader options are replaced whole
            base[key] = copy.deepcopy(value)


def _validate(config):
    try:
        config["optim"] = {k: v if k == "schedule" else float(v) for k, v in config["optim"].items()}
        config["class_weight_c"] = float(config["class_weight_c"])
        config["freeze_encoder_epochs"] = int(config["freeze_encoder_epochs"] or 0)
    except (TypeError, ValueError) as exc:
        raise ConfigError("optim values, class_weight_c and freeze_encoder_epochs must be numbers: "
                          "%s" % exc) from None
    if config["optim"]["schedule"] not in ("step", "poly"):
        raise ConfigError("optim.schedule must be step or poly, got %r" % config["optim"]["schedule"])
    stages = config["stages"]
    if not stages:
        raise ConfigError("no training stages")
    names = []
    for stage in stages:
        unknown = set(stage) - STAGE_KEYS
        if unknown:
            raise ConfigError("unknown stage keys %s (known: %s)" % (sorted(unknown), sorted(STAGE_KEYS)))
        if stage.get("init_from") and stage["init_from"] not in names \
                and not os.path.isfile(str(stage["init_from"])):
            raise ConfigError("stage %r: init_from %r is neither an earlier stage nor a file"
                              % (stage["name"], stage["init_from"]))
        names.append(stage["name"])
    if len(set(names)) != len(names):
        raise ConfigError("stage names must be unique: %s" % names)
    if config["dataset"]["kind"] is None or config["dataset"]["root"] is None:
        raise ConfigError("dataset.kind and dataset.root are required")
