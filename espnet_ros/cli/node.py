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
    return run_ros(args.ros_args)


def run_ros(ros_args):
    """Like ``ros2 run``: the user's DDS settings apply (the project's tests and demo pass
    loopback-only ones explicitly)."""
    from ..ros.node_main import main
    return main(["espnet-ros-node"] + list(ros_args))
