#!/usr/bin/env bash
# Metric regression check, as the project's CI runs it: generate -> run -> bench check.
#   jpeg + DnCNN-3 (real weights) on Classic5, QF 10-40;
#   jpeg + the authors' published FBCNN outputs (external) on their 5 LIVE1 images, QF 10;
#   jpeg on the embedded sample under the CODiff protocol, QF 5/10/20.
# Usage: scripts/ci_regression.sh [--update]   (needs ../shared or BENCH_SHARED)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${BENCH_SHARED:-../shared}"
DATA="$SHARED/data"
BENCH=.venv/bin/bench
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export BENCH_WORKSPACE="$WORK/ws" BENCH_WEIGHTS_DIR="$SHARED/weights/dncnn3"
PUB="$DATA/published/FBCNN/LIVE1_color_fbcnn_color"
mkdir -p "$WORK/LIVE1-fbcnn5"
for f in "$PUB"/10/*.png; do ln -s "$(cd "$DATA/LIVE1" && pwd)/$(basename "$f")" "$WORK/LIVE1-fbcnn5/"; done
M=psnr,ssim,psnrb
$BENCH run --methods jpeg,dncnn3 -d Classic5 -p fbcnn -g jpeg:q=10,20,30,40 --metrics $M \
  --data-root "$DATA" --no-progress
$BENCH run --methods "jpeg,external:FBCNN=$(cd "$PUB" && pwd)/{qf}" -d "$WORK/LIVE1-fbcnn5" \
  -p fbcnn -g jpeg-q10 --metrics $M --no-progress
$BENCH run --methods jpeg -d sample -p codiff -g jpeg:q=5,10,20 --metrics $M --no-progress
if [ "${1:-}" = "--update" ]; then
  $BENCH check --baseline baselines/ci.csv --update
else
  $BENCH check --baseline baselines/ci.csv
fi
