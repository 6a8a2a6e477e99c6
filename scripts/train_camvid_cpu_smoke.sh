#!/usr/bin/env bash
# A short real ESPNet training run on CamVid on the CPU (two-stage recipe, half resolution,
# 2 x 364 iterations, ~4 min on 2 cores): prints the loss and validation mIoU before and
# after. A benchmark for the README, not a CI test. Extra arguments go to
# espnet_ros.training.smoke (e.g. --epochs 3).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"
cd "$REPO"
exec python -m espnet_ros.training.smoke --data-root "$ESPNET_ROS_DATA/camvid" \
    --out "${SMOKE_OUT:-out/smoke}" "$@"
