#!/usr/bin/env bash
# The main job on a fresh machine: set up the environment and build the package (setup-env.sh),
# segment the sample frames offline (out/predict/), then run the live demo: `ros2 launch
# espnet_ros segment.launch.py` starts the segmentation node (directly where ros2 launch is not
# available), a camera source publishes the sample frames, and the demo prints the time to the
# first label, then FPS, latency and power, and writes overlays and a summary to out/demo/.
# Ctrl-C stops everything cleanly. Extra arguments go to `espnet-ros demo`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"
cd "$REPO"
if [ -z "${ESPNET_ROS_WEIGHTS_MIRROR:-}" ] && [ -d "$ESPNET_ROS_DATA/espnet_pretrained" ]; then
  # The shared data holds a copy of the publication folder: fetch from it instead of GitHub.
  export ESPNET_ROS_WEIGHTS_MIRROR="$ESPNET_ROS_DATA/espnet_pretrained"
fi
espnet-ros info
# Offline first: label, colour mask and overlay of the sample frames in out/predict/ (this also
# puts the weights into the cache, so the live part below starts without downloading).
espnet-ros predict "$ESPNET_ROS_DATA/cityscapes_samples" --model espnet-p2q8-cityscapes --out out/predict
exec espnet-ros demo --out out/demo "$@"
