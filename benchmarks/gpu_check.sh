#!/usr/bin/env bash
# The GPU check, on the GPU machine (no network): install the travelling wheels, then run the check.
#   benchmarks/gpu_check.sh OUT_DIR      (after benchmarks/gpu_wheels.sh on a machine with network)
set -euo pipefail
out=${1:?usage: benchmarks/gpu_check.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
python3 -m pip install --no-index --no-deps --quiet "$here"/wheels/*.whl
exec timeout 480 python3 "$here/gpu_check.py" "$out" --device cuda
