"""``espnet-ros camera``: publish real frames from a folder, video or rosbag as a camera."""
from .predict import parse_size


def add_parser(sub):
    p = sub.add_parser("camera", help="publish frames from an image folder, video or rosbag")
    p.add_argument("source", help="image folder, image file, video file or rosbag2 folder/file")
    p.add_argument("--rate", type=float, default=10.0, help="frames per second (0: flat out)")
    p.add_argument("--encoding", default="bgr8",
                   help="rgb8, bgr8, rgba8, bgra8, mono8, or jpeg/png for CompressedImage")
    p.add_argument("--topic", default="image", help="image topic (compressed: <topic>/compressed)")
    p.add_argument("--frame-id", default="camera")
    p.add_argument("--count", type=int, default=0, help="stop after N frames (0: never)")
    p.add_argument("--once", action="store_true", help="play the source once instead of looping")
    p.add_argument("--size", type=parse_size, help="resize frames to WIDTHxHEIGHT")
    p.add_argument("--reliable", action="store_true", help="reliable QoS (default: best effort)")
    p.add_argument("--bag-topic", help="image topic to read from a bag (default: the first)")
    p.set_defaults(func=run)


def run(args):
    from ..tools.camera_source import run_camera
    sent = run_camera(args.source, args.rate, args.encoding, args.topic, args.frame_id,
                      loop=not args.once, count=args.count, size=args.size,
                      reliable=args.reliable, bag_topic=args.bag_topic)
    print("published %d frame(s)" % sent)
    # Python resets the signal handlers while it tears down: a second Ctrl-C (a terminal plus
    # ros2 launch, or a supervisor) arriving then would kill the process with -2.
    from ..ros.shutdown import exit_now
    exit_now(0)
