#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build, check and time the fused and auto backends in one go;
# logs in OUTDIR (default ./gpu-out), a short summary last. Needs .deps/ (scripts/stage-gpu-deps.sh)
# where CLI11, nlohmann-json or GoogleTest are not installed.
#
#   scripts/gpu-fused.sh [OUTDIR]
#   env: BUILD (build dir, default build-gpu), JOBS (16), PRESETS (bench presets, default
#        "solar-open-100b qwen3-30b-a3b mixtral-8x7b"), TOKENS, BACKENDS, REPEAT, TUNE (preset to
#        tune, empty: none), TESTS (gtest filter of moekit_cuda_tests)
set -uo pipefail
cd "$(dirname "$0")/.."
outdir=${1:-$PWD/gpu-out}
mkdir -p "$outdir"
BUILD=${BUILD:-build-gpu}
JOBS=${JOBS:-16}
DEPS=$PWD/.deps
PRESETS=${PRESETS:-"solar-open-100b qwen3-30b-a3b mixtral-8x7b"}
TOKENS=${TOKENS:-1,4,16,64,128,512,2048,8192}
BACKENDS=${BACKENDS:-batched_mm,grouped_mm,fused,auto}
REPEAT=${REPEAT:-20}
TESTS=${TESTS:-"*fused*:*Fused*:*auto*:*Auto*:*TuneTable*"}
start=$(date +%s)
note() { echo "[$(($(date +%s) - start))s] $*"; }

note "$(nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader 2>&1 | head -1)"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMOEKIT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a-real \
  -DMOEKIT_EXTRA_INCLUDE_DIR="$DEPS" -DMOEKIT_GTEST_SOURCE_DIR="$DEPS/googletest" > "$outdir/build.log" 2>&1 \
  || { tail -30 "$outdir/build.log"; exit 1; }
cmake --build "$BUILD" -j "$JOBS" --target moekit_cli moekit_cuda_tests >> "$outdir/build.log" 2>&1 \
  || { grep -E "error" "$outdir/build.log" | head -20; exit 1; }
note "built"
obj="$BUILD/CMakeFiles/moekit_objects.dir/src/cuda/fused.cu.o"
if command -v cuobjdump >/dev/null; then
  { cuobjdump -res-usage "$obj" | grep -A1 fused_gemv; cuobjdump -sass "$obj" > "$outdir/fused.sass";
    echo "HMMA $(grep -c HMMA "$outdir/fused.sass") LDG.128 $(grep -cE 'LDG.*128' "$outdir/fused.sass")" \
         "LDL/STL $(grep -cE 'LDL|STL' "$outdir/fused.sass")"; } > "$outdir/sass.txt" 2>&1
  note "SASS: $(tail -1 "$outdir/sass.txt")"
fi

"$BUILD/tests/moekit_cuda_tests" --gtest_filter="$TESTS" > "$outdir/tests.log" 2>&1
note "tests ($TESTS): rc=$? $(grep -E '^\[  (PASSED|FAILED)' "$outdir/tests.log" | tr '\n' ' ')"
grep -E '^\[  FAILED' "$outdir/tests.log" | head -20
"$BUILD/moekit" check --device cuda --backends fused,auto > "$outdir/check.log" 2>&1
note "check fused,auto: rc=$? $(tail -1 "$outdir/check.log")"
grep FAIL "$outdir/check.log" | head -10

for preset in $PRESETS; do
  "$BUILD/moekit" bench --device cuda --preset "$preset" --tokens "$TOKENS" --graph on --backends "$BACKENDS" \
    --repeat "$REPEAT" --quiet --json "$outdir/bench-$preset.json" > "$outdir/bench-$preset.log" 2>&1
  note "bench $preset: rc=$?"
done
if [ -n "${TUNE:-}" ]; then
  "$BUILD/moekit" tune --preset "$TUNE" --tokens "$TOKENS" --out "$outdir/tune.json" > "$outdir/tune.txt" 2>"$outdir/tune.err"
  note "tune $TUNE: rc=$?"
  cat "$outdir/tune.txt"
  for preset in $TUNE; do
    MOEKIT_TUNE_FILE="$outdir/tune.json" "$BUILD/moekit" bench --device cuda --preset "$preset" --tokens "$TOKENS" \
      --graph on --backends auto,fused --repeat "$REPEAT" --quiet --json "$outdir/bench-tuned-$preset.json" > "$outdir/bench-tuned-$preset.log" 2>&1
    note "bench with the table $preset: rc=$?"
  done
fi
# The summary: x floor per T and backend, from each bench's JSON.
python3 - "$outdir" <<'PY'
import glob, json, sys
for f in sorted(glob.glob(sys.argv[1] + "/bench-*.json")):
    j = json.load(open(f))
    rows = j["rows"]
    print("==", f.split("/")[-1], "copy %.3f TB/s" % (j["ceilings"]["copy_bytes_per_s"] / 1e12))
    by = {}
    for r in rows:
        by.setdefault(r["tokens"], {})[r["backend"]] = r
    names = sorted({r["backend"] for r in rows})
    print("T".rjust(6), "floor".rjust(7), *[n.rjust(16) for n in names])
    for t in sorted(by):
        cells = []
        for n in names:
            r = by[t].get(n)
            cells.append(("%.3f %.2fx" % (r["median_ms"], r["median_ms"] / r["floor_ms"])) if r and "median_ms" in r
                         else (r["status"] if r else "-"))
        print(str(t).rjust(6), ("%.3f" % next(iter(by[t].values()))["floor_ms"]).rjust(7), *[c.rjust(16) for c in cells])
        for n in names:
            r = by[t].get(n)
            if n == "auto" and r and "detail" in r: print("       auto:", r["detail"][:110])
PY
