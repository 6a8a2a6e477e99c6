"""pip packaging of the ROS-free library and the ``espnet-ros`` command.

colcon builds this repository as an ament_cmake package (see package.xml and CMakeLists.txt,
which also generate the messages in msg/); pip uses this file and needs no ROS.
"""
from setuptools import find_packages, setup

setup(
    name="espnet_ros",
    version="0.1.0",
    description="ESPNet semantic segmentation for ROS 2 robots: models, inference, node, tools",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    # Written for 3.8+ (vermin checks the syntax in scripts/test.sh); only 3.11 is tested.
    python_requires=">=3.8",
    packages=find_packages(include=["espnet_ros", "espnet_ros.*"]),
    # Unpinned on purpose: CUDA and Jetson users bring their own torch build.
    install_requires=["torch>=1.10", "numpy", "opencv-python-headless", "pyyaml", "tqdm", "pillow"],
    extras_require={
        "onnx": ["onnx", "onnxruntime"],
        "openvino": ["openvino", "nncf", "onnx"],
        "train": ["matplotlib", "tensorboard", "cityscapesscripts"],
        "bag": ["rosbags"],
        "bench": ["psutil"],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/espnet_ros"]),
        ("share/espnet_ros", ["package.xml"]),
    ],
    entry_points={"console_scripts": ["espnet-ros = espnet_ros.cli:main"]},
)
