"""The ``espnet-ros`` command. Each subcommand lives in its own module of this package.

A module listed in SUBCOMMANDS provides ``add_parser(subparsers)``, which registers its parser
and sets ``func`` to a callable taking the parsed arguments and returning an exit code.
"""
import argparse
import importlib
import sys

SUBCOMMANDS = ("predict", "models", "info", "node", "camera", "demo", "train", "eval", "calibrate",
               "bag", "bench")


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="espnet-ros", description="ESPNet semantic segmentation: models, inference and tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        importlib.import_module("%s.%s" % (__name__, name)).add_parser(sub)
    return parser


def register_user_models():
    """Checkpoints listed in $ESPNET_ROS_MODELS become zoo names for every subcommand."""
    from ..models.registry import MODELS_ENV
    from ..models.registry import register_user_models as register

    try:
        register()
    except (OSError, ValueError) as exc:
        print("espnet-ros: warning: %s: %s" % (MODELS_ENV, exc), file=sys.stderr)


def main(argv=None):
    register_user_models()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["node"] and argv[1:2] != ["-h"] and argv[1:2] != ["--help"]:
        # Everything after "node" belongs to ROS (--ros-args -p ...), which argparse would
        # take for options of its own.
        from .node import run_ros
        return run_ros(argv[1:]) or 0
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except CommandError as exc:
        print("espnet-ros %s: error: %s" % (args.command, exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
