"""``espnet-ros node``: the segmentation node, without a ROS install (arguments go to ROS)."""
import argparse


def add_parser(sub):
    p = sub.add_parser(
        "node", help="run the segmentation node (same as ros2 run espnet_ros segment_node)",
        description="Arguments are passed to ROS, e.g. --ros-args -p model:=espnet-p2q3-cityscapes "
                    "-r image:=/camera/image_raw --params-file config/segment.yaml")
    p.add_argument("ros_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=run)


def run(args):
    from ..ros.env import apply_localhost_env
    apply_localhost_env()
    from ..ros.node_main import main
    return main(["espnet-ros-node"] + list(args.ros_args))
