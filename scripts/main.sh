#!/usr/bin/env bash
# The main job on a fresh machine: set up the environment, build the custom messages, segment
# the sample frames offline (out/predict/), then run the live demo: a camera source publishes the sample frames, the segmentation node (its own
# process) segments them, and the demo prints FPS, latency and power and writes overlays and a
# summary to out/demo/. Extra arguments go to `espnet-ros demo`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"
cd "$REPO"
if [ -z "${ESPNET_ROS_WEIGHTS_MIRROR:-}" ] && [ -d "$ESPNET_ROS_DATA/espnet_pretrained" ]; then
  # The shared data holds a copy of the publication folder: fetch from it instead of GitHub.
  export ESPNET_ROS_WEIGHTS_MIRROR="$ESPNET_ROS_DATA/espnet_pretrained"
fi
if bash scripts/build_interfaces.sh "$REPO/build/ros_ws" > "$REPO/build/interfaces.log" 2>&1; then
  export ESPNET_ROS_INTERFACES_PREFIX="$REPO/build/ros_ws/install"
else
  echo "[main] building msg/ failed (see build/interfaces.log): the node runs without ~/info"
fi
espnet-ros info
# Offline first: label, colour mask and overlay of the sample frames in out/predict/.
espnet-ros predict "$ESPNET_ROS_DATA/cityscapes_samples" --model espnet-p2q8-cityscapes --out out/predict
espnet-ros demo --out out/demo "$@"
