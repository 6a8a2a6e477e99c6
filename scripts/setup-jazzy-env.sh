#!/usr/bin/env bash
# Creates or refreshes a ROS 2 Jazzy environment for the node: Jazzy's rclpy, rmw and message
# wheels (requirements/jazzy.txt), the pinned CPU torch, and this package (editable, no deps).
# Usage: scripts/setup-jazzy-env.sh [VENV]   (default: $ESPNET_ROS_JAZZY_VENV or .venv-jazzy)
# Prints nothing but progress; re-installs only when the requirements or setup.py change.
# Afterwards `VENV/bin/espnet-ros node --ros-args ...` runs the node on Jazzy.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JAZZY_VENV=${1:-${ESPNET_ROS_JAZZY_VENV:-$REPO/.venv-jazzy}}
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "[jazzy] skipped: the Jazzy wheels are built for CPython 3.11, $PYTHON is $("$PYTHON" -V 2>&1)"
  exit 3
fi
[ -x "$JAZZY_VENV/bin/python" ] || { echo "[jazzy] creating $JAZZY_VENV"; "$PYTHON" -m venv "$JAZZY_VENV"; }
stamp="$JAZZY_VENV/.espnet_ros_stamp"
digest=$(cd "$REPO" && cat setup.py requirements/jazzy.txt requirements/torch-cpu.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  echo "[jazzy] installing the Jazzy wheels and torch into $JAZZY_VENV"
  pip_install() { "$JAZZY_VENV/bin/python" -m pip install --disable-pip-version-check -q "$@"; }
  pip_install -r "$REPO/requirements/jazzy.txt" -r "$REPO/requirements/torch-cpu.txt"
  pip_install --no-deps -e "$REPO"
  echo "$digest" > "$stamp"
fi
