#!/usr/bin/env bash
# Local-training throughput of the Swift trainer vs the NumPy peer (shared/peers/numpy_moe.py), one
# thread each, on the two shapes of issue 3; prints every run, the medians and the ratios.
#   Benchmarks/train_vs_numpy.sh [runs]        (env: PEER=path/to/numpy_moe.py, TARGET_CPU=haswell)
# On x86 with AVX2+FMA the benchmark is built for that CPU with fused multiply-add (-DFLEX_FMA): NumPy's
# OpenBLAS picks its AVX2/AVX-512 kernels at run time, so a baseline x86-64 (SSE2) build would compare
# unlike with unlike. aarch64 builds always use NEON FMA.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
PEER=${PEER:-/work/shared/peers/numpy_moe.py}
[ -f "$PEER" ] || PEER=../shared/peers/numpy_moe.py
FLAGS=()
SCRATCH=Benchmarks/.build-model
if [ "$(uname -m)" = x86_64 ] && grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
  CPU=${TARGET_CPU:-haswell}
  FLAGS=(-Xswiftc -target-cpu -Xswiftc "$CPU" -Xswiftc -DFLEX_FMA)
  SCRATCH=Benchmarks/.build-model-$CPU
fi
swift build --package-path Benchmarks -c release --scratch-path "$SCRATCH" "${FLAGS[@]}" >/dev/null
BENCH=$SCRATCH/release/flexmoe-bench
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
rate() { python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["samples_per_s"])'; }
run_shape() {
  local name=$1; shift
  local swift=() numpy=()
  for _ in $(seq "$RUNS"); do
    swift+=("$("$BENCH" train "$@" | rate)")
    numpy+=("$(OPENBLAS_NUM_THREADS=1 python3 "$PEER" "$@" | rate)")
  done
  local ms mn
  ms=$(printf '%s\n' "${swift[@]}" | median); mn=$(printf '%s\n' "${numpy[@]}" | median)
  echo "$name: swift ${swift[*]}"
  echo "$name: numpy ${numpy[*]}"
  printf '%s: median swift %.0f, numpy %.0f samples/s, ratio %.2f\n' "$name" "$ms" "$mn" \
    "$(python3 -c "print($ms/$mn)")"
}
run_shape "(a) d=60 K=10 B=32" --d 60 --classes 10 --batch 32 --steps 2000
run_shape "(b) d=784 K=47 h=128 f=256 B=64" --d 784 --classes 47 --h 128 --f 256 --batch 64 --steps 500
