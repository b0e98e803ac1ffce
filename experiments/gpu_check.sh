#!/usr/bin/env bash
# The accelerator check of issue 19, for a session that has a GPU (about 6-10 minutes on one H100 / H200):
# the `gpu` test subset, then `bench kde`, `bench samplers` and `bench training` on JAX's default backend,
# every result under $OUT (benchmark sections in $OUT/BENCHMARKS.md, to be copied into BENCHMARKS.md by hand).
#
#   OUT=/path/to/results bash experiments/gpu_check.sh            # on the GPU machine (jax[cuda12] installed)
#   OUT=/tmp/gpu_check QUICK=1 TESTS=tests/diffusion/test_kde1d.py bash experiments/gpu_check.sh   # CPU dry run
#
# Each step has its own time limit and a failing step does not stop the others; $OUT/summary.txt lists the
# exit status of each.
set -u
OUT=${OUT:-results/gpu_check}
PY=${PYTHON:-.venv/bin/python}
TESTS=${TESTS:-}
QUICK=${QUICK:-}
mkdir -p "$OUT"
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export XLA_FLAGS="--xla_gpu_autotune_level=0 ${XLA_FLAGS:-}"
export CI=true  # no progress bars in the logs

{
  date -u
  uptime
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "nvidia-smi: none"
  $PY -c "import jax; print('jax', jax.__version__, jax.default_backend(), jax.devices())"
} > "$OUT/device.txt" 2>&1

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log, record the exit status
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "$name: exit $? in $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
}

: > "$OUT/summary.txt"
# shellcheck disable=SC2086
step test-gpu 240 $PY -m pytest -n 4 -m gpu -q --durations=15 $TESTS
for name in kde samplers training; do
  step "bench-$name" 150 $PY -m experiments bench "$name" ${QUICK:+--quick} --file "$OUT/BENCHMARKS.md"
done
cat "$OUT/device.txt" "$OUT/summary.txt"
