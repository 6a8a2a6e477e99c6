#!/usr/bin/env bash
# The test command on a fresh machine: set up the environment, lint, check Python 3.8
# compatibility of the runtime modules, run the test suite. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"
cd "$REPO"
echo "[test] ruff"
ruff check .
echo "[test] vermin (runtime modules must import on Python 3.8)"
vermin -q -t=3.8- --no-tips --violations --exclude-regex 'espnet_ros/(training|bag)/' espnet_ros
echo "[test] pytest (data: $ESPNET_ROS_DATA)"
python -m pytest "$@"
