"""scripts/setup-env.sh beside a ROS 2 install leaves the install's Python packages alone, and
says plainly when a Python is too old for the pinned environment (its plan mode prints what it
would install, and how, without installing anything)."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROS2_WHEELS = Path(os.environ.get("ESPNET_ROS_ROS2", REPO.parent / "shared" / "ros2"))


def plan(tmp_path, python=sys.executable, **env):
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ESPNET_ROS_SETUP_PLAN": "1",
            "ESPNET_ROS_VENV": str(tmp_path / "venv"), "PYTHON": str(python),
            "ESPNET_ROS_DATA": os.environ.get("ESPNET_ROS_DATA", str(tmp_path))}
    base["ESPNET_ROS_ROS2"] = str(ROS2_WHEELS)
    result = subprocess.run(["bash", str(REPO / "scripts" / "setup-env.sh")], env=dict(base, **env),
                            capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr


def test_beside_a_ros_install_nothing_of_it_is_replaced(tmp_path):
    code, out = plan(tmp_path, ROS_DISTRO="humble")
    assert code == 0, out
    assert "ROS 2 humble found" in out
    assert "[plan] venv: %s --system-site-packages" % (tmp_path / "venv") in out, out
    installs = [line for line in out.splitlines() if line.startswith("[plan] pip install")]
    assert any("requirements/dev.txt" in line for line in installs), out
    for line in installs:
        assert "ros-" not in line and "ros.txt" not in line and "base.txt" not in line, line
        assert "interfaces.txt" not in line and "ros-tools.txt" not in line, line
        assert ".whl" not in line and " numpy" not in line, line
        if "opencv" in line or "pillow" in line or "pyyaml" in line:
            assert " -c " in line, line  # constrained to the system's numpy
    assert not (tmp_path / "venv").exists()  # a plan installs nothing


def test_without_ros_the_pinned_environment_and_wheels(tmp_path):
    code, out = plan(tmp_path)
    assert code == 0, out
    assert "[plan] venv: %s\n" % (tmp_path / "venv") in out + "\n", out
    assert "requirements/base.txt" in out and "requirements/ros.txt" in out
    if list((ROS2_WHEELS / "wheels").glob("*.whl")):
        assert "--no-deps --no-index" in out and ".whl" in out, out


def test_a_python_older_than_3_11_without_ros_is_refused_in_one_message(tmp_path):
    fake = tmp_path / "python3.10"
    fake.write_text('#!/bin/sh\n[ "$1" = -V ] && { echo "Python 3.10.12"; exit 0; }\nexit 1\n')
    fake.chmod(0o755)
    code, out = plan(tmp_path, python=fake)
    assert code == 1, out
    assert "needs Python >= 3.11" in out and "Python 3.10.12" in out, out
    assert "source /opt/ros/humble/setup.bash first" in out, out
