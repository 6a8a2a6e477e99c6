"""DDS settings for the processes this project starts (tests, demo, benchmarks, CI).

They stay on this machine: loopback discovery and config/fastdds_localhost.xml (UDP on
127.0.0.1, a shared-memory segment large enough for images). The product itself, the launch
file, keeps the user's settings; it gets these through ``localhost_launch_arguments()``.

Humble (and older) has no ROS_AUTOMATIC_DISCOVERY_RANGE (it arrived in Iron) and ships Fast
DDS 2.6, which does not parse the ``<interfaces><allowlist>`` of fastdds_localhost.xml (Fast
DDS 2.14, Jazzy): there ROS_LOCALHOST_ONLY=1 and config/fastdds_localhost_legacy.xml
(``<interfaceWhiteList>``) do the same.
"""
import os
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[2] / "config"
PROFILE = "fastdds_localhost.xml"
LEGACY_PROFILE = "fastdds_localhost_legacy.xml"
FASTDDS_PROFILE = CONFIG / PROFILE
# Distributions without ROS_AUTOMATIC_DISCOVERY_RANGE and with a Fast DDS before 2.14.
LEGACY_DISTROS = ("foxy", "galactic", "humble")
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


def _distro(env):
    if env.get("ROS_DISTRO"):
        return env["ROS_DISTRO"]
    from .interfaces import ros_distro
    return ros_distro()


def is_legacy(distro):
    return (distro or "").lower() in LEGACY_DISTROS


def profile_path(distro=None):
    """The project's Fast DDS profile for ``distro`` (default: this one): the source tree's,
    else the installed share copy."""
    name = LEGACY_PROFILE if is_legacy(distro or _distro(os.environ)) else PROFILE
    if (CONFIG / name).is_file():
        return str(CONFIG / name)
    try:
        from ament_index_python.packages import get_package_share_directory
        return os.path.join(get_package_share_directory("espnet_ros"), "config", name)
    except Exception:  # no ament index: pip install without the config folder
        return ""


def localhost_env(base=None, distro=None):
    """A copy of ``base`` (default os.environ) with loopback-only discovery and our profile,
    in the form ``distro`` (default: the one ``base`` or this Python runs) understands.

    Values the user set explicitly are kept.
    """
    env = dict(os.environ if base is None else base)
    distro = distro or _distro(env)
    if is_legacy(distro):
        env.setdefault("ROS_LOCALHOST_ONLY", "1")
    else:
        env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    profile = profile_path(distro)
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
