#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: configure and build Release with CUDA, run
# `moekit check --device cuda`, the CUDA tests, `moekit bench --device cuda` on the solar-open-100b
# preset and the kernel timings; write logs to OUTDIR (default ./gpu-out) and print a short table
# last. Needs .deps/ from scripts/stage-gpu-deps.sh where CLI11, nlohmann-json or GoogleTest are
# not installed.
#
#   scripts/gpu-validate.sh [OUTDIR]
#   env: CUDA_ARCHS (default 90a-real: this machine only), JOBS (16), TOKENS, BACKENDS, BENCH_ARGS
#   (default --wgmma-variants 0: grouped_mm also timed with the wgmma kernel off), WGMMA_VARIANTS
#   (default: the built-in choice only; e.g. "1 2 3": the BM=128 tests run once per variant),
#   CLI_TOKENS (the T list of `moekit bench`; empty skips it).
#   The check and the CUDA tests run twice: as chosen by the heuristic, and with
#   MOEKIT_CUDA_TILE_M=128, which sends every tensor-core case with [N, K] weights through the
#   128-row kernel (wgmma on compute capability 9.0).
set -uo pipefail
cd "$(dirname "$0")/.."
outdir=${1:-$PWD/gpu-out}
mkdir -p "$outdir"
BUILD=${BUILD:-build-gpu}
JOBS=${JOBS:-16}
DEPS=$PWD/.deps
start=$(date +%s)
note() { echo "[$(($(date +%s) - start))s] $*"; }

{ nvidia-smi; nvcc --version; cmake --version | head -1; g++ --version | head -1; } > "$outdir/env.txt" 2>&1
note "$(nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader 2>&1 | head -1)"

note "configure"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMOEKIT_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90a-real}" \
  -DMOEKIT_EXTRA_INCLUDE_DIR="$DEPS" -DMOEKIT_GTEST_SOURCE_DIR="$DEPS/googletest" > "$outdir/build.log" 2>&1 \
  || { tail -30 "$outdir/build.log"; exit 1; }
note "build (tests and bench first, then the CLI)"
cmake --build "$BUILD" -j "$JOBS" --target moekit_cuda_tests moekit_cuda_bench >> "$outdir/build.log" 2>&1
build_tests=$?
cmake --build "$BUILD" -j "$JOBS" --target moekit_cli >> "$outdir/build.log" 2>&1
build_cli=$?
grep -E "error" "$outdir/build.log" | head -20
# Resources and instructions of the GEMM kernels: HMMA must be there, and no local memory in loops.
obj="$BUILD/CMakeFiles/moekit_objects.dir/src/cuda/gemm_bf16.cu.o"
if [ -f "$obj" ] && command -v cuobjdump >/dev/null; then
  { cuobjdump -res-usage "$obj"; echo; echo "HMMA: $(cuobjdump -sass "$obj" | grep -c HMMA)";
    echo "HGMMA: $(cuobjdump -sass "$obj" | grep -c HGMMA)";
    echo "LDL/STL: $(cuobjdump -sass "$obj" | grep -cE 'LDL|STL')"; } > "$outdir/sass.txt" 2>&1
  note "SASS: $(grep -E '^HMMA|^HGMMA|^LDL' "$outdir/sass.txt" | tr '\n' ' ')"
fi

check="not run"
check128="not run"
tests128="not run"
if [ $build_cli -eq 0 ]; then
  note "moekit check --device cuda"
  "$BUILD/moekit" check --device cuda > "$outdir/check.log" 2>&1
  rc=$?
  check="rc=$rc, $(tail -1 "$outdir/check.log")"
  grep -E "FAIL" "$outdir/check.log" | head -20
  MOEKIT_CUDA_TILE_M=128 "$BUILD/moekit" check --device cuda > "$outdir/check-bm128.log" 2>&1
  rc=$?
  check128="rc=$rc, $(tail -1 "$outdir/check-bm128.log")"
  grep -E "FAIL" "$outdir/check-bm128.log" | head -20
else
  check="CLI build failed"
fi

tests="not run"
if [ $build_tests -eq 0 ]; then
  note "CUDA tests"
  "$BUILD/tests/moekit_cuda_tests" --gtest_brief=1 > "$outdir/cuda-tests.log" 2>&1
  rc=$?
  tests="rc=$rc, $(grep -E '^\[  PASSED|^\[  FAILED|^\[  SKIPPED' "$outdir/cuda-tests.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED|Failure|error" "$outdir/cuda-tests.log" | head -20
  tests128=""
  for v in ${WGMMA_VARIANTS:-default}; do
    note "CUDA tests, MOEKIT_CUDA_TILE_M=128, wgmma variant $v"
    log="$outdir/cuda-tests-bm128.log"
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
    --csv "$outdir/bench.csv" > "$outdir/bench.log" 2>&1
  tail -30 "$outdir/bench.log"
fi
cli_bench="not run"
if [ $build_cli -eq 0 ] && [ -n "${CLI_TOKENS-1,4,16,64,128,512,2048,8192}" ]; then
  note "moekit bench --device cuda"
  "$BUILD/moekit" bench --device cuda --preset solar-open-100b --tokens "${CLI_TOKENS-1,4,16,64,128,512,2048,8192}" \
    --graph on --quiet --json "$outdir/moekit-bench.json" --csv "$outdir/moekit-bench.csv" > "$outdir/moekit-bench.txt" 2>&1
  cli_bench="rc=$?"
  cat "$outdir/moekit-bench.txt"
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
echo "| moekit bench --device cuda | $cli_bench |"
echo "| SASS gemm_bf16 | $(grep -E '^HMMA|^HGMMA|^LDL' "$outdir/sass.txt" 2>/dev/null | tr '\n' ' ') |"
