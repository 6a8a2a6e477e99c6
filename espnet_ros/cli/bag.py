"""``espnet-ros bag make | replay | eval``: rosbag2 files for judging the node (see espnet_ros/bag)."""
import argparse
import json
from pathlib import Path

from . import CommandError
from .predict import parse_size

DATASET_KINDS = ("camvid", "cityscapes", "folder", "mapillary")


def _assignment(text):
    if ":=" not in text:
        raise argparse.ArgumentTypeError("expected NAME:=VALUE, got %r" % text)
    name, value = text.split(":=", 1)
    return name.strip(), value.strip()


def _model_options(p):
    p.add_argument("--model", default="espnet-p2q8-cityscapes",
                   help="zoo name (espnet-ros models) or checkpoint file of espnet-ros train")
    p.add_argument("--weights", default="", help="checkpoint file (default: the published weights)")
    p.add_argument("--size", type=parse_size, help="model input WIDTHxHEIGHT (default: native)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--image-topic", help="image topic in the bag (default: /camera/image[/compressed], "
                                         "else the bag's only raw or compressed image topic)")
    p.add_argument("--label-topic", help="ground-truth topic (default: /camera/label_gt)")


def add_parser(sub):
    p = sub.add_parser("bag", help="make rosbags from datasets, replay them through the node, evaluate")
    bag_sub = p.add_subparsers(dest="bag_command", metavar="make|replay|eval")
    bag_sub.required = True

    m = bag_sub.add_parser("make", help="image folder, video or dataset split -> rosbag2")
    m.add_argument("source", help="image folder, video file, or dataset root with --dataset")
    m.add_argument("--out", type=Path, required=True, help="bag to write (a folder)")
    m.add_argument("--dataset", choices=DATASET_KINDS, help="read SOURCE as this dataset (with labels)")
    m.add_argument("--split", default="test", help="dataset split (default: test)")
    m.add_argument("--limit", type=int, help="first N frames only")
    m.add_argument("--rate", type=float, default=10.0, help="frames per second of bag time (default 10)")
    m.add_argument("--encoding", default="bgr8", help="bgr8, rgb8, mono8, or jpeg/png (CompressedImage)")
    m.add_argument("--size", type=parse_size, help="resize images (area) and labels (nearest) to WxH")
    m.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    m.add_argument("--bag-version", type=int, choices=(8, 9), default=8,
                   help="rosbag2 metadata version: 8 opens in Humble and later, 9 in Jazzy and later")
    m.add_argument("--start-time", type=float, help="stamp of the first frame, seconds (default: now)")
    m.add_argument("--frame-id", default="camera")
    m.add_argument("--no-camera-info", action="store_true")
    m.add_argument("--no-labels", action="store_true", help="leave out the ground-truth topic")
    m.add_argument("--overwrite", action="store_true", help="replace an existing bag")
    m.set_defaults(func=run_make)

    r = bag_sub.add_parser("replay", help="play a bag through segment_node; throughput, latency, mIoU")
    r.add_argument("bag", type=Path)
    _model_options(r)
    pace = r.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, default=1.0, help="open loop: factor on bag time (1 = real time)")
    pace.add_argument("--closed-loop", action="store_true",
                      help="as fast as the node keeps up: next frame when the previous output arrived")
    r.add_argument("--loop", type=int, default=1, metavar="N", help="passes over the bag (0: until Ctrl-C)")
    r.add_argument("--limit", type=int, help="first N images of each pass")
    r.add_argument("--remap", type=_assignment, action="append", default=[], metavar="FROM:=TO",
                   help="publish bag topic FROM as TO (repeatable)")
    r.add_argument("--use-sim-time", action="store_true", help="publish /clock from bag time; node uses it")
    r.add_argument("--no-eval", action="store_true", help="skip the mIoU even if the bag has labels")
    r.add_argument("--outputs", default="label,color_mask,info", help="node outputs to record (label needed)")
    r.add_argument("--with-inputs", action="store_true", help="also copy the sent images to the output bag")
    r.add_argument("--attach", metavar="NODE", help="use a running node (e.g. /espnet_segmentation) "
                                                   "instead of starting one; --model must match it")
    r.add_argument("--namespace", default="/espnet_replay", help="namespace of the started node")
    r.add_argument("--param", type=_assignment, action="append", default=[], metavar="NAME:=VALUE",
                   help="extra node parameter (repeatable)")
    r.add_argument("--frame-timeout", type=float, default=10.0,
                   help="closed loop: give up on a frame after S s")
    r.add_argument("--startup-timeout", type=float, default=300.0)
    r.add_argument("--out", type=Path, default=Path("out/replay"), help="report and output bag folder")
    r.add_argument("--out-storage", choices=("mcap", "sqlite3"), default="mcap")
    r.add_argument("--bag-version", type=int, choices=(8, 9), default=8, help="output bag metadata version")
    r.set_defaults(func=run_replay)

    e = bag_sub.add_parser("eval", help="offline: the model over the bag's frames, accuracy only (no ROS)")
    e.add_argument("bag", type=Path)
    _model_options(e)
    e.add_argument("--limit", type=int, help="first N labelled frames only")
    e.add_argument("--out", type=Path, help="also write eval.json and eval.md into this folder")
    e.set_defaults(func=run_eval)


def run_make(args):
    from ..bag import BagError
    from ..bag.make import dataset_source, make_bag, media_source
    try:
        source = (dataset_source(args.dataset, args.source, args.split, args.limit) if args.dataset
                  else media_source(args.source, args.limit))
        summary = make_bag(args.out, source, rate=args.rate, encoding=args.encoding, size=args.size,
                           storage=args.storage, version=args.bag_version, start_time=args.start_time,
                           frame_id=args.frame_id, overwrite=args.overwrite,
                           camera_info=not args.no_camera_info, labels=not args.no_labels,
                           source_name=str(args.source))
    except BagError as exc:
        raise CommandError(str(exc)) from exc
    print("wrote %s: %d frames (%d labelled) at %g Hz, %s, metadata version %d; topics: %s" % (
        summary["bag"], summary["frames"], summary["labelled"], summary["rate"], summary["storage"],
        summary["version"], ", ".join("%s (%d)" % kv for kv in summary["topics"].items())))
    return 0


def run_replay(args):
    from ..bag import BagError
    from ..tools.bag_replay import OUTPUTS, ReplayOptions
    from ..tools.bag_replay import run_replay as replay
    outputs = tuple(o.strip() for o in args.outputs.split(",") if o.strip())
    unknown = sorted(set(outputs) - set(OUTPUTS))
    if unknown:
        raise CommandError("unknown outputs %s; known: %s" % (", ".join(unknown), ", ".join(OUTPUTS)))
    options = ReplayOptions(
        model=args.model, weights=args.weights, size=args.size, device=args.device, rate=args.rate,
        closed_loop=args.closed_loop, loops=args.loop, limit=args.limit, remaps=tuple(args.remap),
        use_sim_time=args.use_sim_time, image_topic=args.image_topic, label_topic=args.label_topic,
        evaluate=not args.no_eval, namespace=args.namespace, attach=args.attach, outputs=outputs,
        record_inputs=args.with_inputs, out_dir=args.out, out_storage=args.out_storage,
        out_version=args.bag_version, frame_timeout=args.frame_timeout,
        startup_timeout=args.startup_timeout, node_params=dict(args.param))
    try:
        report = replay(args.bag, options)
    except BagError as exc:
        raise CommandError(str(exc)) from exc
    print(Path(report["files"]["markdown"]).read_text(), end="")
    print("written: %s" % ", ".join(report["files"].values()))
    return 0


def run_eval(args):
    from ..bag import BagError
    from ..bag.evaluate import evaluate_bag, node_config
    from ..bag.report import eval_markdown, write_report
    config = node_config(args.model, args.weights, args.size, args.device)
    try:
        report = evaluate_bag(args.bag, config, args.image_topic, args.label_topic, args.limit)
    except BagError as exc:
        raise CommandError(str(exc)) from exc
    print(eval_markdown(report), end="")
    if args.out:
        files = write_report(report, args.out, "eval", eval_markdown)
        print("written: %s" % ", ".join(str(p) for p in files.values()))
    else:
        print(json.dumps({"miou": report["accuracy"]["miou"], "frames": report["accuracy"]["frames"]}))
    return 0
