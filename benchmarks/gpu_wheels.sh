#!/usr/bin/env bash
# Download, on a machine WITH network, the wheels the GPU check machine lacks (Python 3.12, x86-64,
# Linux; torch, timm, onnxruntime, numpy, pyarrow, click, opencv are already there: REFERENCE.md).
# imagecodecs (28 MB) does not fit: the check encodes its HTJ2K files with nvImageCodec on the GPU.
# They land in benchmarks/wheels/ (gitignored), which travels with the check: < 64 MiB in all.
# DALI (~500 MB) and TensorRT (NVIDIA's index only) cannot travel; the check does not need them.
# PYTHON: an interpreter with pip and setuptools (the project wheel is built without isolation).
set -euo pipefail
cd "$(dirname "$0")"
py=${PYTHON:-python3}
dest=wheels
rm -rf "$dest" && mkdir -p "$dest"
"$py" -m pip download --dest "$dest" --no-deps --python-version 3.12 --platform manylinux_2_28_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --implementation cp --only-binary=:all: \
    "pydicom>=3.0" "pylibjpeg>=2.0" "pylibjpeg-openjpeg>=2.3" "pylibjpeg-libjpeg>=2.1" "pyjpegls>=1.4" \
    "nvidia-nvimgcodec-cu13>=0.9,<0.10" nvidia-nvjpeg2k-cu13 nvidia-nvjpeg tqdm
# the project itself, as a wheel (no build isolation, no network on the other side)
"$py" -m pip wheel --no-deps --no-build-isolation --wheel-dir "$dest" ..
size=$(du -sm "$dest" | cut -f1)
echo "wheels: ${size} MiB in benchmarks/$dest"
if [ "$size" -ge 64 ]; then echo "over the 64 MiB that may travel" >&2; exit 1; fi
