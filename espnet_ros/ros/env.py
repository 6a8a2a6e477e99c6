"""DDS settings for the processes this project starts (tests, demo, benchmarks, CI).

They stay on this machine: loopback discovery and config/fastdds_localhost.xml (UDP on
127.0.0.1, a shared-memory segment large enough for images). The product itself, the launch
file, keeps the user's settings; it gets these through ``localhost_launch_arguments()``.
"""
import os
from pathlib import Path

FASTDDS_PROFILE = Path(__file__).resolve().parents[2] / "config" / "fastdds_localhost.xml"
# The project's profiles set the history memory policy of every reader and writer, which rmw
# applies only with RMW_FASTRTPS_USE_QOS_FROM_XML=1 (see the profiles' comments).
ENTITY_PROFILE = 'profile_name="espnet_ros_writer"'


def qos_from_xml(profile):
    """Whether ``profile`` is one of ours, whose reader and writer settings rmw must read."""
    try:
        with open(profile) as f:
            return ENTITY_PROFILE in f.read()
    except (OSError, TypeError):
        return False


def profile_path():
    """The project's Fast DDS profile: the source tree's, else the installed share copy."""
    if FASTDDS_PROFILE.is_file():
        return str(FASTDDS_PROFILE)
    try:
        from ament_index_python.packages import get_package_share_directory
        return os.path.join(get_package_share_directory("espnet_ros"), "config",
                            "fastdds_localhost.xml")
    except Exception:  # no ament index: pip install without the config folder
        return ""


def localhost_env(base=None):
    """A copy of ``base`` (default os.environ) with loopback-only discovery and our profile.

    Values the user set explicitly are kept.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    profile = profile_path()
    if profile:
        env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", profile)
    if qos_from_xml(env.get("FASTDDS_DEFAULT_PROFILES_FILE")):
        env.setdefault("RMW_FASTRTPS_USE_QOS_FROM_XML", "1")
    return env


def localhost_launch_arguments():
    """The segment.launch.py arguments that confine the launched processes to loopback."""
    arguments = ["discovery_range:=LOCALHOST"]
    profile = profile_path()
    if profile:
        arguments.append("fastdds_profile:=" + profile)
    return arguments


def apply_localhost_env():
    """Sets the same defaults on this process before rclpy.init()."""
    os.environ.update(localhost_env())
