"""Launch the ESPNet segmentation node (and optionally rviz).

    ros2 launch espnet_ros segment.launch.py image:=/camera/image_raw model:=espnet-p2q5-cityscapes
    ros2 launch espnet_ros segment.launch.py namespace:=front image:=/front/image_raw rviz:=true

Several cameras: one launch per camera, each with its own namespace.

DDS: by default the node inherits the user's discovery range, RMW and Fast DDS profile, so it
is reachable from other machines as any other node is. Only Fast DDS users who set no profile
of their own get config/fastdds_large_images.xml (a shared-memory segment that holds large
images; normal UDP). ``discovery_range`` and ``fastdds_profile`` override both, e.g. to keep a
test on one machine.
"""
import os

from ament_index_python.packages import PackageNotFoundError, get_package_prefix, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "espnet_ros"
LARGE_IMAGE_PROFILE = "fastdds_large_images.xml"


def _environment(context):
    """The launch-time environment (SetEnvironmentVariable of an enclosing launch included)."""
    return getattr(context, "environment", os.environ)


def dds_settings(context, share):
    """SetEnvironmentVariable actions for the discovery range and the Fast DDS profile."""
    env = _environment(context)
    actions = []
    discovery_range = LaunchConfiguration("discovery_range").perform(context)
    if discovery_range:
        actions.append(SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", discovery_range))
    profile = LaunchConfiguration("fastdds_profile").perform(context)
    fast_dds = env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp").startswith("rmw_fastrtps")
    if not profile and fast_dds and not env.get("FASTDDS_DEFAULT_PROFILES_FILE"):
        profile = os.path.join(share, "config", LARGE_IMAGE_PROFILE)
    if profile:
        actions.append(SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile))
    return actions


def rviz(context, share):
    """rviz2 with the overlay and colour mask, or one line saying why not."""
    if not IfCondition(LaunchConfiguration("rviz")).evaluate(context):
        return []
    try:
        get_package_prefix("rviz2")
    except PackageNotFoundError:
        return [LogInfo(msg="rviz:=true, but rviz2 is not installed here (apt install "
                            "ros-$ROS_DISTRO-rviz2); the node runs without it")]
    return [Node(
        package="rviz2",
        executable="rviz2",
        name="espnet_rviz",
        namespace=LaunchConfiguration("namespace"),
        arguments=["-d", os.path.join(share, "config", "espnet.rviz")],
        parameters=[{"use_sim_time": LaunchConfiguration("use_sim_time")}],
    )]


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    arg = LaunchConfiguration
    arguments = [
        DeclareLaunchArgument("namespace", default_value="", description="namespace of this camera"),
        DeclareLaunchArgument("image", default_value="image", description="input image topic"),
        DeclareLaunchArgument("camera_info", default_value="camera_info",
                              description="input camera_info topic"),
        DeclareLaunchArgument("model", default_value="espnet-p2q8-cityscapes",
                              description="zoo model name (espnet-ros models) or checkpoint "
                                          "file of espnet-ros train"),
        DeclareLaunchArgument("backend", default_value="torch",
                              description="auto, torch, onnxruntime or torch2trt"),
        DeclareLaunchArgument("device", default_value="cpu", description="cpu, cuda, cuda:N"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "segment.yaml"),
                              description="node parameters (YAML)"),
        DeclareLaunchArgument("use_sim_time", default_value="false"),
        DeclareLaunchArgument("rviz", default_value="false", description="start rviz2"),
        DeclareLaunchArgument("discovery_range", default_value="",
                              description="ROS_AUTOMATIC_DISCOVERY_RANGE for these processes "
                                          "(LOCALHOST, SUBNET, OFF); empty: inherited"),
        DeclareLaunchArgument("fastdds_profile", default_value="",
                              description="FASTDDS_DEFAULT_PROFILES_FILE for these processes; "
                                          "empty: the user's own, else (Fast DDS) "
                                          "config/" + LARGE_IMAGE_PROFILE),
    ]
    node = Node(
        package=PACKAGE,
        executable="segment_node",
        name="espnet_segmentation",
        namespace=arg("namespace"),
        output="screen",
        parameters=[arg("params_file"),
                    {"model": arg("model"), "backend": arg("backend"), "device": arg("device"),
                     "use_sim_time": arg("use_sim_time")}],
        remappings=[("image", arg("image")), ("image/compressed", [arg("image"), "/compressed"]),
                    ("camera_info", arg("camera_info"))],
    )
    return LaunchDescription(arguments + [
        OpaqueFunction(function=dds_settings, args=[share]),
        node,
        OpaqueFunction(function=rviz, args=[share]),
    ])
