"""Launch the ESPNet segmentation node (and optionally rviz).

    ros2 launch espnet_ros segment.launch.py image:=/camera/image_raw model:=espnet-p2q5-cityscapes
    ros2 launch espnet_ros segment.launch.py namespace:=front image:=/front/image_raw
    ros2 launch espnet_ros segment.launch.py namespace:=rear image:=/rear/image_raw rviz:=false

Several cameras: one launch per camera, each with its own namespace.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "espnet_ros"


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    arg = LaunchConfiguration
    arguments = [
        DeclareLaunchArgument("namespace", default_value="", description="namespace of this camera"),
        DeclareLaunchArgument("image", default_value="image", description="input image topic"),
        DeclareLaunchArgument("camera_info", default_value="camera_info",
                              description="input camera_info topic"),
        DeclareLaunchArgument("model", default_value="espnet-p2q8-cityscapes",
                              description="zoo model name (espnet-ros models)"),
        DeclareLaunchArgument("backend", default_value="torch",
                              description="auto, torch, onnxruntime or torch2trt"),
        DeclareLaunchArgument("device", default_value="cpu", description="cpu, cuda, cuda:N"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "segment.yaml"),
                              description="node parameters (YAML)"),
        DeclareLaunchArgument("use_sim_time", default_value="false"),
        DeclareLaunchArgument("rviz", default_value="false", description="start rviz2"),
        DeclareLaunchArgument("localhost_only", default_value="LOCALHOST",
                              description="ROS_AUTOMATIC_DISCOVERY_RANGE for these processes "
                                          "(SUBNET to reach other machines)"),
        DeclareLaunchArgument("fastdds_profile",
                              default_value=os.path.join(share, "config", "fastdds_localhost.xml"),
                              description="Fast DDS profile (large-image shared memory)"),
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
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="espnet_rviz",
        namespace=arg("namespace"),
        arguments=["-d", os.path.join(share, "config", "espnet.rviz")],
        parameters=[{"use_sim_time": arg("use_sim_time")}],
        condition=IfCondition(arg("rviz")),
    )
    return LaunchDescription(arguments + [
        SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", arg("localhost_only")),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", arg("fastdds_profile")),
        node,
        rviz,
    ])
