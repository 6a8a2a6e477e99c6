"""``espnet-ros predict``: label PNG, colour mask and overlay for image files."""
import argparse
import sys
from pathlib import Path

import cv2

from ..inference import Pipeline, map_ids
from ..models import WeightsError, registry
from . import CommandError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


def add_parser(sub):
    p = sub.add_parser("predict", help="segment image files: label PNG, colour mask, overlay")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    p.add_argument("--model", default="espnet-p2q8-cityscapes",
                   help="zoo name (espnet-ros models) or a checkpoint file of espnet-ros train")
    p.add_argument("--weights", help="checkpoint file instead of the published weights")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--size", type=parse_size, help="model input WIDTHxHEIGHT (default: native)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (0..1)")
    p.add_argument("--model-resolution", action="store_true",
                   help="write labels at the model's resolution instead of the image's")
    p.add_argument("--label-ids", action="store_true",
                   help="also write dataset label ids (Cityscapes: <name>_labelIds.png)")
    p.set_defaults(func=run)


def parse_size(text):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("size must look like 1024x512") from None
    if width < 8 or height < 8:
        raise argparse.ArgumentTypeError("size must be at least 8x8")
    return width, height


def expand(paths):
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            files.append(path)
    return files


def run(args):
    try:
        entry, _ = registry.lookup(args.model, args.weights)
        pipeline = Pipeline.build(args.model, weights=args.weights, device=args.device,
                                  input_size=args.size or "native", alpha=args.alpha)
    except (KeyError, ValueError, WeightsError) as exc:
        raise CommandError(str(exc).strip('"')) from exc
    if entry.label_ids is None and args.label_ids:
        raise CommandError("model %s has no label-id mapping" % entry.name)
    args.out.mkdir(parents=True, exist_ok=True)
    files = expand(args.images)
    if not files:
        raise CommandError("no images found in %s" % " ".join(args.images))
    failed, total_ms = [], 0.0
    output = "model" if args.model_resolution else "input"
    for start in range(0, len(files), max(1, args.batch_size)):
        chunk, images = [], []
        for path in files[start:start + max(1, args.batch_size)]:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                print("skipping %s: not a readable image" % path, file=sys.stderr)
                failed.append(path)
                continue
            chunk.append(path)
            images.append(image)
        if not images:
            continue
        results = pipeline.run_batch(images, "bgr", output, color=True, overlay=True)
        total_ms += sum(r.timing.total_ms for r in results)
        for path, result in zip(chunk, results):
            write_outputs(args, entry, path, result)
        print("%s: %d image(s), %.1f ms inference" % (
            ", ".join(p.name for p in chunk), len(chunk), results[0].timing.inference_ms))
    done = len(files) - len(failed)
    print("wrote %d result(s) to %s (%.1f ms per image)" % (done, args.out, total_ms / max(done, 1)))
    return 1 if failed else 0


def write_outputs(args, entry, path, result):
    stem = args.out / path.stem
    cv2.imwrite(str(stem) + "_label.png", result.labels)
    cv2.imwrite(str(stem) + "_color.png", cv2.cvtColor(result.color, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(stem) + "_overlay.png", result.overlay)
    if args.label_ids:
        cv2.imwrite(str(stem) + "_labelIds.png", map_ids(result.labels, entry.label_ids))
