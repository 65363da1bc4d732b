#!/usr/bin/env bash
# On a machine with an NVIDIA GPU (the lent H100): configure and build Release with CUDA, run
# `moekit check --device cuda`, the CUDA tests and the timings, write logs under $OUT, and print a
# short table last. Needs .deps/ from scripts/stage-gpu-deps.sh where CLI11, nlohmann-json or
# GoogleTest are not installed.
#
#   OUT=/some/dir scripts/gpu-validate.sh            (device tool: carry .deps; OUT is set there)
#   env: CUDA_ARCHS (default 90a-real: this machine only), JOBS (16), TOKENS, BACKENDS, BENCH_ARGS
#   (default --wgmma-variants 0: grouped_mm also timed with the wgmma kernel off), WGMMA_VARIANTS
#   (default: the built-in choice only; e.g. "1 2 3": the BM=128 tests run once per variant).
#   The check and the CUDA tests run twice: as chosen by the heuristic, and with
#   MOEKIT_CUDA_TILE_M=128, which sends every tensor-core case with [N, K] weights through the
#   128-row kernel (wgmma on compute capability 9.0).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
BUILD=${BUILD:-build-gpu}
JOBS=${JOBS:-16}
DEPS=$PWD/.deps
start=$(date +%s)
note() { echo "[$(($(date +%s) - start))s] $*"; }

{ nvidia-smi; nvcc --version; cmake --version | head -1; g++ --version | head -1; } > "$OUT/env.txt" 2>&1
note "$(nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader 2>&1 | head -1)"

note "configure"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMOEKIT_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90a-real}" \
  -DMOEKIT_EXTRA_INCLUDE_DIR="$DEPS" -DMOEKIT_GTEST_SOURCE_DIR="$DEPS/googletest" > "$OUT/build.log" 2>&1 \
  || { tail -30 "$OUT/build.log"; exit 1; }
note "build (tests and bench first, then the CLI)"
cmake --build "$BUILD" -j "$JOBS" --target moekit_cuda_tests moekit_cuda_bench >> "$OUT/build.log" 2>&1
build_tests=$?
cmake --build "$BUILD" -j "$JOBS" --target moekit_cli >> "$OUT/build.log" 2>&1
build_cli=$?
grep -E "error" "$OUT/build.log" | head -20
# Resources and instructions of the GEMM kernels: HMMA must be there, and no local memory in loops.
obj="$BUILD/CMakeFiles/moekit_objects.dir/src/cuda/gemm_bf16.cu.o"
if [ -f "$obj" ] && command -v cuobjdump >/dev/null; then
  { cuobjdump -res-usage "$obj"; echo; echo "HMMA: $(cuobjdump -sass "$obj" | grep -c HMMA)";
    echo "HGMMA: $(cuobjdump -sass "$obj" | grep -c HGMMA)";
    echo "LDL/STL: $(cuobjdump -sass "$obj" | grep -cE 'LDL|STL')"; } > "$OUT/sass.txt" 2>&1
  note "SASS: $(grep -E '^HMMA|^HGMMA|^LDL' "$OUT/sass.txt" | tr '\n' ' ')"
fi

check="not run"
check128="not run"
tests128="not run"
if [ $build_cli -eq 0 ]; then
  note "moekit check --device cuda"
  "$BUILD/moekit" check --device cuda > "$OUT/check.log" 2>&1
  rc=$?
  check="rc=$rc, $(tail -1 "$OUT/check.log")"
  grep -E "FAIL" "$OUT/check.log" | head -20
  MOEKIT_CUDA_TILE_M=128 "$BUILD/moekit" check --device cuda > "$OUT/check-bm128.log" 2>&1
  rc=$?
  check128="rc=$rc, $(tail -1 "$OUT/check-bm128.log")"
  grep -E "FAIL" "$OUT/check-bm128.log" | head -20
else
  check="CLI build failed"
fi

tests="not run"
if [ $build_tests -eq 0 ]; then
  note "CUDA tests"
  "$BUILD/tests/moekit_cuda_tests" --gtest_brief=1 > "$OUT/cuda-tests.log" 2>&1
  rc=$?
  tests="rc=$rc, $(grep -E '^\[  PASSED|^\[  FAILED|^\[  SKIPPED' "$OUT/cuda-tests.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED|Failure|error" "$OUT/cuda-tests.log" | head -20
  tests128=""
  for v in ${WGMMA_VARIANTS:-default}; do
    note "CUDA tests, MOEKIT_CUDA_TILE_M=128, wgmma variant $v"
    log="$OUT/cuda-tests-bm128.log"
    if [ "$v" = default ]; then unset MOEKIT_CUDA_WGMMA; else export MOEKIT_CUDA_WGMMA=$v; fi
    MOEKIT_CUDA_TILE_M=128 "$BUILD/tests/moekit_cuda_tests" --gtest_brief=1 > "$log" 2>&1
    rc=$?
    tests128="$tests128 [$v] rc=$rc, $(grep -E '^\[  PASSED|^\[  FAILED|^\[  SKIPPED' "$log" | tr '\n' ' ')"
    grep -E "^\[  FAILED|Failure|error" "$log" | head -10
  done
  unset MOEKIT_CUDA_WGMMA
  note "timings"
  "$BUILD/tests/moekit_cuda_bench" --tokens "${TOKENS:-1,16,64,128,512,2048,8192}" \
    --backends "${BACKENDS:-grouped_mm,batched_mm}" ${BENCH_ARGS:---wgmma-variants 0} \
    --csv "$OUT/bench.csv" > "$OUT/bench.log" 2>&1
  tail -30 "$OUT/bench.log"
fi
note "done"
echo
echo "| step | result |"
echo "|---|---|"
echo "| build tests+bench | rc=$build_tests |"
echo "| build CLI | rc=$build_cli |"
echo "| moekit check --device cuda | $check |"
echo "| moekit check, MOEKIT_CUDA_TILE_M=128 | $check128 |"
echo "| moekit_cuda_tests | $tests |"
echo "| moekit_cuda_tests, MOEKIT_CUDA_TILE_M=128 | $tests128 |"
echo "| SASS gemm_bf16 | $(grep -E '^HMMA|^HGMMA|^LDL' "$OUT/sass.txt" 2>/dev/null | tr '\n' ' ') |"
