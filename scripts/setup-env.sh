#!/usr/bin/env bash
# Creates or refreshes the project's virtual environment with pinned dependencies.
# Sourced by scripts/main.sh and scripts/test.sh; after it, $VENV, $REPO and $ESPNET_ROS_DATA
# are set and the environment's bin/ is first on PATH.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${ESPNET_ROS_VENV:-$REPO/.venv}
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  # Jetson/CUDA users keep their own torch: ESPNET_ROS_SYSTEM_SITE=1 lets the venv see it.
  "$PYTHON" -m venv ${ESPNET_ROS_SYSTEM_SITE:+--system-site-packages} "$VENV"
fi
pip_install() { "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@"; }

reqs=(requirements/base.txt requirements/dev.txt requirements/ros.txt requirements/extras.txt)
[ -f "$REPO/requirements/interfaces.txt" ] && reqs+=(requirements/interfaces.txt)
stamp="$VENV/.espnet_ros_stamp"
digest=$(cd "$REPO" && cat setup.py requirements/*.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  echo "[setup] installing pinned dependencies into $VENV"
  # Only a machine without any torch gets the pinned CPU build; an existing one is kept.
  "$VENV/bin/python" -c "import torch" 2>/dev/null || pip_install -r "$REPO/requirements/torch-cpu.txt"
  (cd "$REPO" && pip_install "${reqs[@]/#/-r}")
  pip_install --no-deps -e "$REPO"
  echo "$digest" > "$stamp"
fi

export PATH="$VENV/bin:$PATH"
export ESPNET_ROS_DATA=${ESPNET_ROS_DATA:-$(cd "$REPO/.." && pwd)/shared/data}
# Every process that starts ROS stays on this machine.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$REPO/config/fastdds_localhost.xml}
