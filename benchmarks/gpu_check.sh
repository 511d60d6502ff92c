#!/usr/bin/env bash
# The GPU check in one command (about 8 minutes on an H100/H200): the device-relevant tests on the GPU, the f32 and
# bf16 model benchmarks with torch side by side (ResNet-50 images/s and MFU are in the model table), and the op
# timings (depthwise and grouped convs included). Everything lands in benchmarks/results/gpu-<device>.{md,json,log}.
# Usage, from the repository root on the GPU machine: bash benchmarks/gpu_check.sh [OUT_DIR]
set -uo pipefail
out="${1:-benchmarks/results}"
mkdir -p "$out"
device="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr ' ' '-' | tr -cd 'A-Za-z0-9_-')"
device="${device:-gpu}"
log="$out/gpu-$device.log"
{
  echo "== $(date -u) on $device"
  python -c "import jax; print(jax.devices())"
  echo "== tests on the GPU: functional, nn, zoo shapes, train step, equivariance"
  timeout 240 python -m pytest -q -x -p no:cacheprovider tests/functional tests/nn tests/train/test_step.py \
    tests/equivariance tests/models -k "not torch_port" 2>&1 | tail -15
  echo "== benchmarks float32"
  timeout 150 python -m benchmarks --only models ops --repeats 5 --out "$out" --tag "gpu-$device-fp32" 2>&1 | tail -40
  echo "== benchmarks bfloat16"
  timeout 120 python -m benchmarks --only models --compute-dtype bfloat16 --repeats 5 --out "$out" \
    --tag "gpu-$device-bf16" 2>&1 | tail -25
} 2>&1 | tee "$log"
