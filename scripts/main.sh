#!/usr/bin/env bash
# The main job on a fresh machine: set up the environment, then segment the sample frames.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"
cd "$REPO"
if [ -z "${ESPNET_ROS_WEIGHTS_MIRROR:-}" ] && [ -d "$ESPNET_ROS_DATA/espnet_pretrained" ]; then
  # The shared data holds a copy of the publication folder: fetch from it instead of GitHub.
  export ESPNET_ROS_WEIGHTS_MIRROR="$ESPNET_ROS_DATA/espnet_pretrained"
fi
espnet-ros info
espnet-ros predict "$ESPNET_ROS_DATA/cityscapes_samples" --model espnet-p2q8-cityscapes \
  --out out/predict "$@"
