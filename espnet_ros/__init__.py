"""ESPNet semantic segmentation for ROS 2 robots.

The models and the inference core import without ROS; ``espnet_ros.ros`` holds the ROS 2 shell.
"""
# A colcon build generates ``espnet_ros.msg`` into its own install tree while the library may
# come from pip: extend_path lets both halves of the package be found on sys.path.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
__version__ = "0.1.0"
