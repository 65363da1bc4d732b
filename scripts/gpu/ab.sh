#!/usr/bin/env bash
# A kernel change against a base in one run on one GPU, the way docs/perf-notes.md measures every
# kernel version: builds this tree and the base side by side (Release, CUDA), runs the wgmma tests
# and then the whole CUDA suite on this tree, times `moekit bench` for the two alternately (base,
# new, base, new: a drift of the machine shows as a spread, not as a gain) and, unless NCU=0, times
# each GEMM of both with ncu. Logs in OUTDIR; one line per measurement on stdout. Needs .deps/
# (scripts/stage-gpu-deps.sh) where CLI11, nlohmann-json or GoogleTest are not installed.
#
#   scripts/gpu/ab.sh --export REV DIR   # where git is: the base's sources (git archive) into DIR
#   scripts/gpu/ab.sh BASE_DIR OUTDIR    # on the GPU machine, BASE_DIR from --export
#   env: POINTS (preset:tokens ..., default "solar-open-100b:2048,8192 qwen3-30b-a3b:2048,8192
#        mixtral-8x7b:512,2048,8192"), ROUNDS (2), BACKENDS (fused), REPEAT (20), NCU (1),
#        NCU_POINTS (preset:T ..., default "solar-open-100b:8192 mixtral-8x7b:2048
#        qwen3-30b-a3b:2048"), TESTS (wgmma: the wgmma tests; all: then the whole suite; none),
#        CUDA_ARCHS (90a-real), JOBS (16)
set -uo pipefail
if [ "${1:-}" = "--export" ]; then
  [ $# -eq 3 ] || { echo "usage: $0 --export REV DIR" >&2; exit 2; }
  rm -rf "$3" && mkdir -p "$3" && dest=$(cd "$3" && pwd) || exit 2
  cd "$(dirname "$0")/../.." || exit 2
  git archive "$2" CMakeLists.txt README.md src include tools tests python bench fuzz | tar x -C "$dest" || exit 1
  echo "ab.sh: $(git rev-parse --short "$2") exported to $dest"
  exit 0
fi
if [ $# -ne 2 ]; then echo "usage: $0 BASE_DIR OUTDIR (or --export REV DIR)" >&2; exit 2; fi
base_src=$(cd "$1" && pwd) || exit 2
[ -f "$base_src/CMakeLists.txt" ] || { echo "ab.sh: $base_src holds no source tree" >&2; exit 2; }
mkdir -p "$2" && out=$(cd "$2" && pwd) || exit 2
cd "$(dirname "$0")/../.." || exit 2
POINTS=${POINTS:-"solar-open-100b:2048,8192 qwen3-30b-a3b:2048,8192 mixtral-8x7b:512,2048,8192"}
NCU_POINTS=${NCU_POINTS:-"solar-open-100b:8192 mixtral-8x7b:2048 qwen3-30b-a3b:2048"}
ROUNDS=${ROUNDS:-2}
BACKENDS=${BACKENDS:-fused}
REPEAT=${REPEAT:-20}
TESTS=${TESTS:-all}
JOBS=${JOBS:-16}
start=$(date +%s)
note() { echo "[$(($(date +%s) - start))s] $*"; }

build() {  # source dir, build dir, tag, targets...
  local src=$1 dir=$2 tag=$3
  shift 3
  cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOEKIT_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90a-real}" -DMOEKIT_EXTRA_INCLUDE_DIR="$PWD/.deps" \
    -DMOEKIT_GTEST_SOURCE_DIR="$PWD/.deps/googletest" > "$out/build-$tag.log" 2>&1 &&
    cmake --build "$dir" -j "$((JOBS / 2))" --target "$@" >> "$out/build-$tag.log" 2>&1
}
note "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -1)"
build . build-ab-new new moekit_cli moekit_cuda_tests &
pid_new=$!
build "$base_src" build-ab-base base moekit_cli &
pid_base=$!
wait $pid_new || { note "build of this tree failed"; grep -E "error" "$out/build-new.log" | head -20; exit 1; }
wait $pid_base || { note "build of the base failed"; grep -E "error" "$out/build-base.log" | head -20; exit 1; }
note "built"
new=build-ab-new/moekit
base=build-ab-base/moekit
tests=$(find build-ab-new -name moekit_cuda_tests -type f | head -1)

if [ "$TESTS" != none ]; then
  "$tests" --gtest_brief=1 --gtest_filter='*Wgmma*:*wgmma*' > "$out/tests-wgmma.log" 2>&1
  note "wgmma tests: rc=$?, $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/tests-wgmma.log" | head -2 | tr '\n' ' ')"
fi

bench() {  # binary, tag, preset, tokens
  "$1" bench --device cuda --preset "$3" --scope experts --tokens "$4" --graph on --backends "$BACKENDS" \
    --repeat "$REPEAT" > "$out/bench-$2-$3.log" 2>&1
  # the table rows: "- T backend scope graph hit ms p90 floor x ..."
  echo "$2 $3: $(grep -E '^ +- ' "$out/bench-$2-$3.log" | awk '{printf "T=%s %s %s ms (%sx)  ", $2, $3, $7, $10}')"
}
for r in $(seq 1 "$ROUNDS"); do
  for point in $POINTS; do
    bench "$base" "base$r" "${point%%:*}" "${point#*:}"
    bench "$new" "new$r" "${point%%:*}" "${point#*:}"
  done
done
note "timed"

if [ "${NCU:-1}" != 0 ] && command -v ncu > /dev/null; then
  metrics=gpu__time_duration.sum,dram__bytes_read.sum,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active
  for point in $NCU_POINTS; do
    for tag in base new; do
      bin=$base
      [ $tag = new ] && bin=$new
      log=$out/ncu-$tag-${point%%:*}-${point#*:}.log
      ncu --clock-control none --metrics "$metrics" -k regex:gemm "$bin" bench --device cuda --preset "${point%%:*}" \
        --scope experts --tokens "${point#*:}" --backends "$BACKENDS" --graph off --warmup 0 --repeat 1 > "$log" 2>&1
      echo "ncu $tag $point: $(awk '/gpu__time_duration/{printf "%s %s  ", $(NF-1), $NF} /dram__bytes_read/{printf "DRAM %s %s  ", $(NF-1), $NF} /hmma/{printf "tensor %s%%  ", $NF}' "$log")"
    done
  done
  note "ncu done"
fi

if [ "$TESTS" = all ]; then
  "$tests" --gtest_brief=1 > "$out/tests-all.log" 2>&1
  note "whole CUDA suite: rc=$?, $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/tests-all.log" | head -2 | tr '\n' ' ')"
fi
