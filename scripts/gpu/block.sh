#!/usr/bin/env bash
# The MoE block on a GPU: builds the CUDA tests and the CLI in an already configured CUDA build
# folder, runs the block, router and graph tests, the `moekit run --device cuda` round trips of
# tests/model/run_cli_test.cpp, and one hand-made `moekit run` on a tiny checkpoint compared with
# the CPU; writes logs to OUTDIR and prints a summary. About 2 minutes on 16 cores.
#
#   scripts/gpu/block.sh BUILD_DIR OUTDIR
#   (BUILD_DIR as scripts/gpu-validate.sh configures it: -DMOEKIT_CUDA=ON, .deps/ where needed)
set -uo pipefail
if [ $# -ne 2 ]; then echo "usage: $0 BUILD_DIR OUTDIR" >&2; exit 2; fi
build=$(cd "$1" && pwd) || exit 2
mkdir -p "$2" && out=$(cd "$2" && pwd) || exit 2
cd "$(dirname "$0")/../.."
JOBS=${JOBS:-16}
start=$(date +%s)
note() { echo "[$(($(date +%s) - start))s] $*"; }
counts() {  # gtest --gtest_brief log -> "P passed, F failed, S skipped"
  local p f s
  p=$(grep -oE '^\[  PASSED  \] [0-9]+' "$1" | grep -oE '[0-9]+$' || true)
  # gtest's brief output names each failed test on a "[  FAILED  ] Suite.Test" line (twice).
  f=$(grep -E '^\[  FAILED  \] [A-Za-z]' "$1" | sed 's/ (.*//; s/, where.*//' | sort -u | wc -l)
  s=$(grep -oE '^\[  SKIPPED \] [0-9]+ test' "$1" | grep -oE '[0-9]+' || true)
  echo "${p:-0} passed, ${f:-0} failed, ${s:-0} skipped"
}

note "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -1)"
note "build"
cmake --build "$build" -j "$JOBS" --target moekit_cuda_tests moekit_model_tests moekit_run_cli_tests moekit_tests \
  moekit_cli > "$out/build.log" 2>&1
build_rc=$?
grep -E "error" "$out/build.log" | head -20
[ $build_rc -eq 0 ] || { echo "| build | FAILED rc=$build_rc (see $out/build.log) |"; exit 1; }

note "CUDA block, router and graph tests"
"$build/tests/moekit_cuda_tests" --gtest_brief=1 \
  --gtest_filter='*MoeBlock*:*CudaRouter*:*CudaGraph*' > "$out/cuda-block-tests.log" 2>&1
cuda_rc=$?
grep -E "^\[  FAILED|Failure" -A3 "$out/cuda-block-tests.log" | head -40

note "moekit run --device cuda round trips (every model_type, every CUDA backend)"
"$build/tests/moekit_run_cli_tests" --gtest_brief=1 > "$out/run-cli-tests.log" 2>&1
cli_rc=$?
grep -E "^\[  FAILED|Failure" -A3 "$out/run-cli-tests.log" | head -40

note "CPU router and block tests (the host side of the same changes)"
"$build/tests/moekit_model_tests" --gtest_brief=1 > "$out/model-tests.log" 2>&1
model_rc=$?
"$build/tests/moekit_tests" --gtest_brief=1 --gtest_filter='Router*' > "$out/router-tests.log" 2>&1
router_rc=$?

note "moekit run: cpu vs cuda on one tiny checkpoint"
# The run_cli tests remove their folders; keep one OUT pair here for inspection.
"$build/tests/moekit_model_tests" --gtest_filter='AllModelTypes/MoeBlockTest.MatchesReferenceOnBothPaths/deepseek_v3_bf16*' \
  > /dev/null 2>&1
tiny=$(ls -d "${TMPDIR:-/tmp}"/moekit_model_test_deepseek_v3_bf16_sharded 2>/dev/null | head -1)
manual="skipped (no tiny checkpoint)"
if [ -n "$tiny" ]; then
  python3 - "$out/IN.safetensors" <<'PY' 2>/dev/null || true
import json, struct, sys, random
random.seed(1)
T, H = 5, 16
vals = [random.uniform(-1, 1) for _ in range(T * H)]
def bf16(v):
    b = struct.unpack('<I', struct.pack('<f', v))[0]
    b = (b + 0x7fff + ((b >> 16) & 1)) >> 16
    return struct.pack('<H', b)
data = b''.join(bf16(v) for v in vals)
hdr = json.dumps({"hidden_states": {"dtype": "BF16", "shape": [T, H], "data_offsets": [0, len(data)]}}).encode()
hdr += b' ' * ((8 - len(hdr) % 8) % 8)
open(sys.argv[1], 'wb').write(struct.pack('<Q', len(hdr)) + hdr + data)
PY
  if [ -f "$out/IN.safetensors" ]; then
    "$build/moekit" run --model "$tiny" --input "$out/IN.safetensors" --output "$out/OUT_cpu.safetensors" \
      --device cpu > "$out/run-cpu.log" 2>&1
    r1=$?
    "$build/moekit" run --model "$tiny" --input "$out/IN.safetensors" --output "$out/OUT_cuda.safetensors" \
      --device cuda > "$out/run-cuda.log" 2>&1
    r2=$?
    same_routing="not compared (see run-cpu.log, run-cuda.log)"
    [ $r1 -eq 0 ] && [ $r2 -eq 0 ] && same_routing=$(python3 - "$out/OUT_cpu.safetensors" "$out/OUT_cuda.safetensors" <<'PY' 2>&1
import json, struct, sys
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v['data_offsets'][0]: 8 + n + v['data_offsets'][1]] for k, v in h.items() if k != '__metadata__'}
a, c = load(sys.argv[1]), load(sys.argv[2])
print("routing ids equal" if a['top_k_index'] == c['top_k_index'] else "routing ids DIFFER")
PY
)
    manual="cpu rc=$r1, cuda rc=$r2, $same_routing"
  fi
fi
note "done"
echo
echo "| step | result |"
echo "|---|---|"
echo "| CUDA block/router/graph tests | rc=$cuda_rc, $(counts "$out/cuda-block-tests.log") |"
echo "| moekit run --device cuda tests | rc=$cli_rc, $(counts "$out/run-cli-tests.log") |"
echo "| CPU block tests | rc=$model_rc, $(counts "$out/model-tests.log") |"
echo "| CPU router tests | rc=$router_rc, $(counts "$out/router-tests.log") |"
echo "| moekit run cpu vs cuda | $manual |"
[ $cuda_rc -eq 0 ] && [ $cli_rc -eq 0 ] && [ $model_rc -eq 0 ] && [ $router_rc -eq 0 ]
