"""Training: configuration, recipes, any class count, checkpoints that load like published
ones, and exact resume after a real SIGKILL."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic_datasets import make_folder

from espnet_ros.cli import main
from espnet_ros.inference import Segmenter
from espnet_ros.models import build, create_model, zoo
from espnet_ros.training import checkpoint
from espnet_ros.training.config import ConfigError, load_config
from espnet_ros.training.distributed import setup
from espnet_ros.training.train import HANG_ENV, Prepared, StageTrainer, stage_entry, train

REPO = Path(__file__).resolve().parents[1]
CAMVID_CONFIG = REPO / "config" / "train_espnet_camvid.yaml"
# 4 CamVid frames, 2 per batch, 2 epochs per stage; an epoch is two passes, as the recipe's
# five: the frames resized to 96x72 (crop-resize margin 4), then to 64x48 at batch 3.
TINY = ["--limit", "4", "--val-limit", "2", "--epochs", "2", "--batch-size", "2", "--workers", "0",
        "--no-progress", "--set", "input_size=[96, 72]",
        "--set", "augment.passes=[{size: [96, 72], crop_resize: 4}, {size: [64, 48], batch_offset: 1}]",
        "--set", "train.checkpoint_every=1"]


# -- configuration ---------------------------------------------------------------------------

def test_recipes():
    espnet = load_config(CAMVID_CONFIG)
    assert [s["arch"] for s in espnet["stages"]] == ["espnet-c", "espnet"]
    assert espnet["stages"][0]["label_stride"] == 8 and espnet["stages"][1]["init_from"] == "encoder"
    assert espnet["optim"] == {"lr": 5e-4, "weight_decay": 5e-4, "lr_step_epochs": 100, "lr_gamma": 0.5,
                               "schedule": "step"}
    assert espnet["class_weight_c"] == 1.10 and all(s["epochs"] == 300 for s in espnet["stages"])
    assert espnet["augment"]["flip"] is True
    enet = load_config(REPO / "config" / "train_enet_camvid.yaml")
    assert enet["optim"]["weight_decay"] == 2e-4 and enet["optim"]["lr"] == 5e-4
    assert enet["class_weight_c"] == 1.02 and [s["arch"] for s in enet["stages"]] == ["enet"]
    erfnet = load_config(REPO / "config" / "train_erfnet_camvid.yaml")
    assert [s["arch"] for s in erfnet["stages"]] == ["erfnet-encoder", "erfnet"]
    assert erfnet["stages"][0]["label_stride"] == 8 and erfnet["stages"][1]["init_from"] == "encoder"
    assert erfnet["optim"]["weight_decay"] == 2e-4 and erfnet["optim"]["lr"] == 5e-4
    assert all(s["epochs"] == 150 and s["batch_size"] == 6 for s in erfnet["stages"])
    city = load_config(REPO / "config" / "train_espnet_cityscapes.yaml", ["dataset.root=/data/cs"])
    assert city["dataset"]["kind"] == "cityscapes" and city["input_size"] == [1024, 512]


def test_overrides_and_unknown_keys(monkeypatch):
    monkeypatch.setenv("ESPNET_ROS_DATA", "/somewhere")
    config = load_config(CAMVID_CONFIG, ["optim.lr=1e-3", "stages.1.epochs=7", "augment.crop=[64, 48]"])
    assert config["optim"]["lr"] == 1e-3 and config["stages"][1]["epochs"] == 7
    assert config["augment"]["crop"] == [64, 48] and config["dataset"]["root"] == "/somewhere/camvid"
    with pytest.raises(ConfigError, match="optim.lrr"):
        load_config(CAMVID_CONFIG, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="not an index"):
        load_config(CAMVID_CONFIG, ["stages.5.epochs=1"])
    with pytest.raises(ValueError, match="unknown recipe"):
        load_config(CAMVID_CONFIG, ["recipe=segnet"])


def test_cityscapes_recipe_epoch_is_the_originals_five_passes():
    """The original train/main.py: five passes over the 2,975 training frames, whole frames
    resized, batches of 12/12/16/16/14 for ESPNet-C and 6/6/10/10/8 for ESPNet."""
    config = load_config(REPO / "config" / "train_espnet_cityscapes.yaml", ["dataset.root=/cs"])
    frames = type("Index", (), {"kind": "cityscapes", "split": "train", "__len__": lambda s: 2975})()
    prep = _tiny_prep(20)._replace(train=frames, normalization=zoo.CITYSCAPES_NORM)
    expected = {0: ([12, 12, 16, 16, 14], 1081), 1: ([6, 6, 10, 10, 8], 1960)}
    sizes = [(1536, 768), (1280, 720), (512, 256), (768, 384), (1024, 512)]
    for index, (batches, steps) in expected.items():
        trainer = StageTrainer(config, index, prep, Path("/unused"), setup("cpu", environ={}))
        assert [p.batch_size for p in trainer.passes] == batches
        assert [p.size for p in trainer.passes] == sizes
        plan = trainer._batches(epoch=0)
        assert len(plan) == steps
        for p in range(5):  # every frame once per pass, in an order reshuffled every epoch
            frames_of_pass = sorted(i for b in plan if b.pass_index == p for i in b.indices)
            assert frames_of_pass == list(range(2975))
        assert [b.indices for b in plan[:3]] != [b.indices for b in trainer._batches(epoch=1)[:3]]
        stride = 8 if index == 0 else 1
        rng = np.random.default_rng(0)
        for transform, (width, height) in zip(trainer.data.transforms, sizes):
            image = np.zeros((1024, 2048, 3), np.uint8)
            data, target = transform(image, np.zeros((1024, 2048), np.uint8), rng)
            assert data.shape == (3, height, width)
            assert target.shape == (height // stride, width // stride)


def test_crop_flag_is_refused_for_a_passes_recipe(capsys):
    assert main(["train", "--config", str(CAMVID_CONFIG), "--crop", "64x48", "--print-config"]) == 2
    assert "augment.passes=null" in capsys.readouterr().err


# -- any class count ------------------------------------------------------------------------------

@pytest.mark.parametrize("classes", [2, 3, 4])
@pytest.mark.parametrize("arch", ["espnet", "espnet-c", "espnet-a", "enet", "erfnet",
                                  "erfnet-encoder"])
def test_models_build_and_train_for_few_classes(arch, classes):
    config = load_config(CAMVID_CONFIG, ["dataset.root=/unused"])
    prep = Prepared(None, None, zoo.CAMVID_NORM, None, tuple("c%d" % i for i in range(classes)),
                    ((0, 0, 0),) * classes, None, None)
    prep = prep._replace(train=type("DS", (), {"kind": "folder", "split": "train"})())
    entry = stage_entry(config, {"name": "s", "arch": arch}, prep, final=True)
    model = build(entry)
    out = model(torch.randn(2, 3, 48, 64))
    stride = entry.output_stride
    assert out.shape == (2, classes, 48 // stride, 64 // stride)
    out.mean().backward()


def _tiny_prep(classes=3):
    return Prepared(type("DS", (), {"kind": "folder", "split": "train"})(), None, zoo.CAMVID_NORM,
                    None, tuple("c%d" % i for i in range(classes)), ((0, 0, 0),) * classes, None,
                    None)


def test_ablation_switches_go_into_the_entry_and_only_for_espnet():
    config = load_config(CAMVID_CONFIG, ["dataset.root=/unused", "model.residual=false",
                                         "model.act=relu", "model.downsample=conv"])
    entry = stage_entry(config, {"name": "s", "arch": "espnet"}, _tiny_prep(), final=True)
    assert entry.arch_args["residual"] is False and entry.arch_args["hff"] is True
    assert entry.arch_args["act"] == "relu" and entry.arch_args["downsample"] == "conv"
    model = build(entry)
    assert not any(isinstance(m, torch.nn.PReLU) for m in model.modules())
    for arch in ("enet", "erfnet"):
        with pytest.raises(ValueError, match="ablation switches"):
            stage_entry(config, {"name": "s", "arch": arch}, _tiny_prep(), final=True)
    plain = load_config(CAMVID_CONFIG, ["dataset.root=/unused"])
    entry = stage_entry(plain, {"name": "s", "arch": "erfnet"}, _tiny_prep(), final=True)
    assert entry.arch_args == {"classes": 3}


def test_one_output_is_refused_with_advice():
    config = load_config(CAMVID_CONFIG, ["dataset.root=/unused"])
    prep = Prepared(type("DS", (), {"kind": "folder", "split": "train"})(), None, zoo.CAMVID_NORM,
                    None, ("only",), ((0, 0, 0),), None, None)
    with pytest.raises(ValueError, match="void_as_class"):
        stage_entry(config, {"name": "s", "arch": "espnet"}, prep, final=True)


def test_folder_dataset_with_two_classes_trains_and_loads_through_the_zoo(tmp_path):
    root = make_folder(tmp_path / "data", ("ground", "obstacle"), count=4, size=(64, 48))
    config = load_config(None, ["dataset.kind=folder", "dataset.root=%s" % root, "recipe=espnet-c",
                                "name=tiny-two", "void_as_class=false", "input_size=[64, 48]",
                                "stages.0.epochs=1", "stages.0.batch_size=2", "train.workers=0",
                                "train.progress=false", "train.device=cpu"])
    result = train(config, tmp_path / "run", log=lambda *_: None)[-1]
    entry = checkpoint.register_checkpoint(result.best)
    assert entry.name == "tiny-two" and entry.classes == ("ground", "obstacle") and entry.void_id is None
    model, _ = create_model("tiny-two", weights=result.best)
    assert sum(p.numel() for p in model.parameters()) > 0
    labels = Segmenter.from_zoo("tiny-two", weights=result.best).segment(
        torch.randint(0, 255, (48, 64, 3), dtype=torch.uint8).numpy())
    assert labels.shape == (48, 64) and labels.max() <= 1


# -- resume after a real kill ---------------------------------------------------------------------

def run_train(out, *extra, env=None, hang=None):
    cmd = [sys.executable, "-m", "espnet_ros.cli", "train", "--config", str(CAMVID_CONFIG),
           "--out", str(out)] + TINY + list(extra)
    env = dict(os.environ, **(env or {}))
    if hang:
        env[HANG_ENV] = hang
    return subprocess.Popen(cmd, cwd=str(REPO), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for_line(proc, text, timeout=120):
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    proc.kill()
    raise AssertionError("never saw %r:\n%s" % (text, "".join(lines)))


def assert_same_weights(a, b):
    sa, sb = checkpoint.load(a)["model"], checkpoint.load(b)["model"]
    assert sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, different[:5]


def csv_rows(path):
    with open(str(path)) as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def test_resume_after_sigkill_gives_the_uninterrupted_weights(data_dir, tmp_path, monkeypatch):
    reference = run_train(tmp_path / "reference")
    out, _ = reference.communicate(timeout=300)
    assert reference.returncode == 0, out

    killed = run_train(tmp_path / "killed", hang="decoder:5")  # mid-epoch 2 of stage 2
    wait_for_line(killed, "hanging after the checkpoint")
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    assert killed.returncode == -signal.SIGKILL
    saved = checkpoint.load(tmp_path / "killed" / "decoder" / "last.pth")["train_state"]
    assert (saved["epoch"], saved["batch"], saved["global_step"]) == (1, 1, 5)  # 4 steps an epoch
    assert not list((tmp_path / "killed" / "decoder").glob("*.tmp"))

    resumed = subprocess.run([sys.executable, "-m", "espnet_ros.cli", "train", "--out",
                              str(tmp_path / "killed"), "--resume"], cwd=str(REPO),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout
    assert "encoder: already finished" in resumed.stdout
    assert "decoder: resuming at epoch 2, batch 1 (step 5)" in resumed.stdout
    for stage in ("encoder", "decoder"):
        for name in ("last.pth", "best.pth"):
            assert_same_weights(tmp_path / "reference" / stage / name, tmp_path / "killed" / stage / name)
        assert csv_rows(tmp_path / "reference" / stage / "log.csv") == \
            csv_rows(tmp_path / "killed" / stage / "log.csv")

    # The trained model is usable like a published one: zoo registration, predict, node path.
    best = tmp_path / "reference" / "decoder" / "best.pth"
    entry = checkpoint.entry_from_checkpoint(best)
    assert entry.name == "espnet-camvid" and entry.arch == "espnet" and entry.num_classes == 12
    assert entry.arch_args["decoder_skip"] == "l1_rgb" and entry.void_id == 11
    frame = str(data_dir / "camvid" / "test" / "0001TP_008550.png")
    monkeypatch.setenv(checkpoint.MODELS_ENV, str(best))  # every espnet-ros command registers it
    assert main(["predict", "--model", "espnet-camvid", "--weights", str(best), frame,
                 "--out", str(tmp_path / "pred")]) == 0
    assert (tmp_path / "pred" / "0001TP_008550_label.png").is_file()
    assert Segmenter.from_zoo("espnet-camvid", weights=best).input_size == (96, 72)
    assert main(["eval", "--weights", str(best), "--dataset", "camvid", "--data-root",
                 str(data_dir / "camvid"), "--limit", "1", "--out", str(tmp_path / "eval"),
                 "--no-plot", "--no-progress"]) == 0  # the entry comes from the checkpoint


def test_resume_restores_the_dropout_rng(data_dir, tmp_path, monkeypatch):
    """ENet has dropout: a crash after a mid-epoch checkpoint, then resume, in-process."""
    overrides = ["dataset.root=%s" % (data_dir / "camvid"), "recipe=enet", "name=enet-tiny",
                 "dataset.limit=4", "dataset.val_limit=1", "stages.0.epochs=2",
                 "stages.0.batch_size=2", "augment.crop=[64, 48]", "input_size=[96, 72]",
                 "train.workers=0", "train.progress=false", "train.checkpoint_every=1"]
    config = load_config(None, overrides)
    quiet = lambda *_: None  # noqa: E731
    train(config, tmp_path / "reference", log=quiet)

    original = StageTrainer._save_last

    def crash_after_step_3(self, state):
        original(self, state)
        if state["global_step"] == 3:
            raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(StageTrainer, "_save_last", crash_after_step_3)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "crashed", log=quiet)
    monkeypatch.setattr(StageTrainer, "_save_last", original)
    with pytest.raises(FileExistsError, match="--resume"):
        train(config, tmp_path / "crashed", log=quiet)
    train(config, tmp_path / "crashed", resume=True, log=quiet)
    assert_same_weights(tmp_path / "reference" / "enet" / "last.pth",
                        tmp_path / "crashed" / "enet" / "last.pth")
    assert (tmp_path / "reference" / "enet" / "tb").is_dir()


# -- ERFNet and the ablation switches, trained for real ------------------------------------------

def test_erfnet_trains_in_two_stages_and_loads_through_the_zoo(data_dir, tmp_path, capsys):
    out = tmp_path / "erfnet"
    args = ["train", "--config", str(REPO / "config" / "train_erfnet_camvid.yaml"), "--out",
            str(out)] + TINY
    assert main(args) == 0
    log = capsys.readouterr().out
    assert "decoder: initialised" in log and "from encoder (%s)" % (out / "encoder" / "best.pth") in log
    encoder = checkpoint.load(out / "encoder" / "best.pth")
    assert checkpoint.entry_from_dict(encoder["entry"]).arch == "erfnet-encoder"
    assert "classifier.weight" in encoder["model"]
    best = out / "decoder" / "best.pth"
    entry = checkpoint.entry_from_checkpoint(best)
    assert (entry.name, entry.arch, entry.num_classes) == ("erfnet-camvid", "erfnet", 12)
    assert entry.output_stride == 1
    rows = list(csv.DictReader(open(str(out / "decoder" / "log.csv"))))
    assert (out / "decoder" / "curves.png").stat().st_size > 0  # loss and mIoU per epoch
    assert len(rows) == 2 and all(float(r["train_loss"]) > 0 for r in rows)
    checkpoint.register_checkpoint(best)
    model, _ = create_model("erfnet-camvid", weights=best)
    assert sum(p.numel() for p in model.parameters()) == \
        sum(v.numel() for k, v in checkpoint.load(best)["model"].items()
            if "running" not in k and "num_batches" not in k)
    labels = Segmenter.from_zoo("erfnet-camvid", weights=best).segment(
        torch.randint(0, 255, (72, 96, 3), dtype=torch.uint8).numpy())
    assert labels.shape == (72, 96) and labels.max() <= 11


def test_ablation_checkpoint_records_its_switches(data_dir, tmp_path):
    out = tmp_path / "ablation"
    args = ["train", "--config", str(CAMVID_CONFIG), "--recipe", "espnet-c", "--name", "ablation-tiny",
            "--out", str(out),
            "--set", "model.hff=false", "--set", "model.act=relu", "--set", "model.alpha3=2"] + TINY
    assert main(args) == 0
    best = out / "encoder" / "best.pth"
    entry = checkpoint.entry_from_checkpoint(best)
    assert entry.arch == "espnet-c"
    assert {k: entry.arch_args[k] for k in ("residual", "hff", "act", "downsample")} == \
        {"residual": True, "hff": False, "act": "relu", "downsample": "esp"}
    checkpoint.register_checkpoint(best)
    model, _ = create_model(entry.name, weights=best)  # strict: the graph has the switches
    assert not any(isinstance(m, torch.nn.PReLU) for m in model.modules())
    assert not any(m.hff for m in model.modules() if hasattr(m, "hff"))
