"""Synthetic datasets written to disk in the exact layouts of Cityscapes, Mapillary Vistas v1.2
and the folder dataset (the real Cityscapes and Vistas need a registration to download)."""
import json
from pathlib import Path

import cv2
import numpy as np
import yaml
from PIL import Image

from espnet_ros.data.mapillary import VISTAS_TO_CITYSCAPES


def blocky(rng, values, size, cells=(16, 8)):
    """A label map (H, W) of rectangular regions drawn from ``values``: like real labels,
    large uniform areas with boundaries."""
    width, height = size
    grid = rng.choice(np.asarray(values, np.uint8), size=(cells[1], cells[0]))
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_NEAREST)


def smooth_image(rng, size):
    width, height = size
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def make_cityscapes(root, split="val", frames=(("aachen", 0, 19), ("bochum", 0, 313)),
                    size=(64, 32), seed=0, labels=True, label_values=range(34)):
    """leftImg8bit/SPLIT/CITY/CITY_SEQ_FRAME_leftImg8bit.png + gtFine/.../*_gtFine_labelIds.png."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    written = []
    for city, seq, frame in frames:
        name = "%s_%06d_%06d" % (city, seq, frame)
        image_dir = root / "leftImg8bit" / split / city
        image_dir.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image_dir / (name + "_leftImg8bit.png")), smooth_image(rng, size))
        if labels:
            label_dir = root / "gtFine" / split / city
            label_dir.mkdir(parents=True, exist_ok=True)
            path = label_dir / (name + "_gtFine_labelIds.png")
            cv2.imwrite(str(path), blocky(rng, list(label_values), size))
            written.append(path)
    return written


def vistas_config(colors_seed=1):
    rng = np.random.default_rng(colors_seed)
    return {"labels": [{"name": name, "readable": name.split("--")[-1].replace("-", " ").title(),
                        "color": [int(v) for v in rng.integers(0, 256, 3)],
                        "instances": False, "evaluate": name != "void--unlabeled"}
                       for name in VISTAS_TO_CITYSCAPES],
            "version": "1.2", "mapping": "public"}


def make_mapillary(root, split="validation", count=2, size=(80, 60), seed=0, layout="v1.2"):
    """v1.2: config.json, SPLIT/images/KEY.jpg, SPLIT/labels/KEY.png (palette PNG, value = class).
    v2.0: config_v1.2.json and SPLIT/v1.2/labels/."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    config = vistas_config()
    (root / ("config.json" if layout == "v1.2" else "config_v1.2.json")).write_text(json.dumps(config))
    palette = [v for lab in config["labels"] for v in lab["color"]]
    image_dir = root / split / "images"
    label_dir = root / split / ("labels" if layout == "v1.2" else "v1.2/labels")
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    keys = []
    for i in range(count):
        key = "k%021d" % i  # Vistas keys are 22 characters
        cv2.imwrite(str(image_dir / (key + ".jpg")), smooth_image(rng, size))
        label = Image.fromarray(blocky(rng, range(len(config["labels"])), size), mode="P")
        label.putpalette(palette)
        label.save(str(label_dir / (key + ".png")))
        keys.append(key)
    return keys


def make_folder(root, classes=("background", "thing"), count=3, size=(64, 48), seed=0,
                splits=("train", "val"), ignore_index=255):
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.yaml").write_text(yaml.safe_dump(
        {"classes": list(classes), "ignore_index": ignore_index}))
    for split in splits:
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            label = blocky(rng, list(range(len(classes))) + [ignore_index], size, cells=(4, 3))
            image = smooth_image(rng, size)
            # make the classes learnable: each class has its own brightness
            image = np.clip(image // 4 + (label[:, :, None].astype(np.int64) % 7) * 30, 0, 255)
            cv2.imwrite(str(root / "images" / split / ("f%03d.png" % i)), image.astype(np.uint8))
            cv2.imwrite(str(root / "labels" / split / ("f%03d.png" % i)), label)
    return root
