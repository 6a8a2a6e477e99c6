"""Launch the ESPNet segmentation node (and optionally rviz).

    ros2 launch espnet_ros segment.launch.py image:=/camera/image_raw model:=espnet-p2q5-cityscapes
    ros2 launch espnet_ros segment.launch.py namespace:=front image:=/front/image_raw rviz:=true

    ros2 launch espnet_ros segment.launch.py cameras:="[front, rear]"
    ros2 launch espnet_ros segment.launch.py lifecycle:=true autostart:=true

Several cameras: ``cameras`` names them and one node serves them all through one model
(camera C reads ``C/image`` and publishes ``C/espnet_segmentation/label`` ...; ``image`` and
``camera_info`` given as relative names apply under each camera: ``image:=image_raw`` reads
``C/image_raw``). ``lifecycle:=true`` starts a managed node (unconfigured: no model loaded);
``autostart:=true`` then configures and activates it from this launch file.

DDS: by default the node inherits the user's discovery range, RMW and Fast DDS profile, so it
is reachable from other machines as any other node is. Only Fast DDS users who set no profile
of their own get config/fastdds_large_images.xml (a shared-memory segment that holds large
images; normal UDP). ``discovery_range`` and ``fastdds_profile`` override both, e.g. to keep a
test on one machine.
"""
import os

import yaml
from ament_index_python.packages import PackageNotFoundError, get_package_prefix, get_package_share_directory
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

PACKAGE = "espnet_ros"
LARGE_IMAGE_PROFILE = "fastdds_large_images.xml"
# Our profiles' reader and writer settings, which rmw applies only from XML.
ENTITY_PROFILE = 'profile_name="espnet_ros_writer"'
# Distributions without ROS_AUTOMATIC_DISCOVERY_RANGE (it arrived in Iron).
LEGACY_DISTROS = ("foxy", "galactic", "humble")
# Launch arguments that are node parameters: empty (the default) means "as params_file says".
FROM_PARAMS_FILE = ("model", "backend", "device", "use_sim_time")


def _environment(context):
    """The launch-time environment (SetEnvironmentVariable of an enclosing launch included)."""
    return getattr(context, "environment", os.environ)


def _declares(path, text):
    try:
        with open(path) as f:
            return text in f.read()
    except OSError:
        return False


def dds_settings(context, share):
    """SetEnvironmentVariable actions for the discovery range and the Fast DDS profile."""
    env = _environment(context)
    actions = []
    discovery_range = LaunchConfiguration("discovery_range").perform(context)
    if discovery_range:
        actions.append(SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", discovery_range))
        if discovery_range.upper() == "LOCALHOST" and env.get("ROS_DISTRO") in LEGACY_DISTROS:
            actions.append(SetEnvironmentVariable("ROS_LOCALHOST_ONLY", "1"))  # Humble's form
    profile = LaunchConfiguration("fastdds_profile").perform(context)
    fast_dds = env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp").startswith("rmw_fastrtps")
    if not profile and fast_dds and not env.get("FASTDDS_DEFAULT_PROFILES_FILE"):
        profile = os.path.join(share, "config", LARGE_IMAGE_PROFILE)
    if profile:
        actions.append(SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile))
        # Our profiles free each image's payload after use; rmw reads that only from XML.
        if _declares(profile, ENTITY_PROFILE) and not env.get("RMW_FASTRTPS_USE_QOS_FROM_XML"):
            actions.append(SetEnvironmentVariable("RMW_FASTRTPS_USE_QOS_FROM_XML", "1"))
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
        parameters=[{"use_sim_time": LaunchConfiguration("use_sim_time")}]
        if LaunchConfiguration("use_sim_time").perform(context) else [],
    )]


def _cameras(context):
    """The ``cameras`` argument ("[front, rear]", "front,rear" or "") as a list of names."""
    text = LaunchConfiguration("cameras").perform(context).strip()
    value = yaml.safe_load(text) if text.startswith("[") else text.split(",")
    return [str(name).strip() for name in value or [] if str(name).strip()]


def _remappings(cameras, image, camera_info):
    """Input remaps: the single camera's topics, or each named camera's (relative names)."""
    if not cameras:
        return [("image", image), ("image/compressed", image + "/compressed"),
                ("camera_info", camera_info)]
    remaps = []
    for camera in cameras:
        for topic, target in (("image", image), ("camera_info", camera_info)):
            if target != topic and not target.startswith("/"):
                remaps.append(("%s/%s" % (camera, topic), "%s/%s" % (camera, target)))
                if topic == "image":
                    remaps.append(("%s/image/compressed" % camera,
                                   "%s/%s/compressed" % (camera, target)))
    return remaps


def segment_node(context, share):
    """The node (a launch_ros LifecycleNode with lifecycle:=true), and with autostart:=true
    the configure and activate transitions."""
    arg = LaunchConfiguration
    cameras = _cameras(context)
    lifecycle = IfCondition(arg("lifecycle")).evaluate(context)
    # Only the arguments the user gave override params_file: an empty one leaves the YAML's
    # value (or the node's default) in place.
    # use_sim_time is a bool parameter: "false" is read as YAML, as ``-p`` would.
    overrides = {name: yaml.safe_load(value) if name == "use_sim_time" else value
                 for name in FROM_PARAMS_FILE for value in [arg(name).perform(context)] if value}
    overrides["lifecycle"] = lifecycle
    if cameras:
        overrides["cameras"] = cameras
    kind = LifecycleNode if lifecycle else Node
    node = kind(
        package=PACKAGE,
        executable="segment_node",
        name="espnet_segmentation",
        namespace=arg("namespace").perform(context),
        output="screen",
        parameters=[arg("params_file"), overrides],
        remappings=_remappings(cameras, arg("image").perform(context),
                               arg("camera_info").perform(context)),
    )
    actions = [node]
    if lifecycle and IfCondition(arg("autostart")).evaluate(context):
        actions += [
            RegisterEventHandler(OnStateTransition(
                target_lifecycle_node=node, goal_state="inactive",
                entities=[EmitEvent(event=ChangeState(
                    lifecycle_node_matcher=matches_action(node),
                    transition_id=Transition.TRANSITION_ACTIVATE))])),
            EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                        transition_id=Transition.TRANSITION_CONFIGURE)),
        ]
    return actions


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    arguments = [
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("cameras", default_value="",
                              description="camera names served by one node, e.g. "
                                          "\"[front, rear]\"; empty: one camera on 'image'"),
        DeclareLaunchArgument("lifecycle", default_value="false",
                              description="a managed (lifecycle) node, unconfigured at start"),
        DeclareLaunchArgument("autostart", default_value="false",
                              description="with lifecycle:=true: configure and activate it "
                                          "from this launch file"),
        DeclareLaunchArgument("image", default_value="image", description="input image topic"),
        DeclareLaunchArgument("camera_info", default_value="camera_info",
                              description="input camera_info topic"),
        DeclareLaunchArgument("model", default_value="",
                              description="zoo model name (espnet-ros models) or checkpoint "
                                          "file of espnet-ros train; empty: params_file's"),
        DeclareLaunchArgument("backend", default_value="",
                              description="auto, torch, onnxruntime, openvino or torch2trt; "
                                          "empty: params_file's"),
        DeclareLaunchArgument("device", default_value="",
                              description="cpu, cuda, cuda:N; empty: params_file's"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "segment.yaml"),
                              description="node parameters (YAML)"),
        DeclareLaunchArgument("use_sim_time", default_value="",
                              description="true or false; empty: params_file's"),
        DeclareLaunchArgument("rviz", default_value="false", description="start rviz2"),
        DeclareLaunchArgument("discovery_range", default_value="",
                              description="ROS_AUTOMATIC_DISCOVERY_RANGE for these processes "
                                          "(LOCALHOST, SUBNET, OFF; on Humble LOCALHOST sets "
                                          "ROS_LOCALHOST_ONLY=1); empty: inherited"),
        DeclareLaunchArgument("fastdds_profile", default_value="",
                              description="FASTDDS_DEFAULT_PROFILES_FILE for these processes; "
                                          "empty: the user's own, else (Fast DDS) "
                                          "config/" + LARGE_IMAGE_PROFILE),
    ]
    return LaunchDescription(arguments + [
        OpaqueFunction(function=dds_settings, args=[share]),
        OpaqueFunction(function=segment_node, args=[share]),
        OpaqueFunction(function=rviz, args=[share]),
    ])
