#!/usr/bin/env bash
# On a GPU machine with torch and transformers: the Python package's tests (tests/python, the
# transformers ones included) against the libmoekit.so of BUILD_DIR, logs into OUTDIR, a short
# summary last. BUILD_DIR must hold a CUDA build of the shared library:
#
#   cmake --build BUILD_DIR --target moekit_shared
#   scripts/gpu/python.sh BUILD_DIR OUTDIR
#   env: PYTHON (default python3), PYTEST_ARGS (extra pytest arguments, e.g. "-k gpu")
set -uo pipefail
if [ $# -ne 2 ]; then
  echo "usage: scripts/gpu/python.sh BUILD_DIR OUTDIR" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" 2>/dev/null && pwd) || { echo "python.sh: no build folder $1" >&2; exit 2; }
outdir=$2
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
lib=$build/libmoekit.so
if [ ! -f "$lib" ]; then
  echo "python.sh: $lib is missing: cmake --build $build --target moekit_shared" >&2
  exit 2
fi
PYTHON=${PYTHON:-python3}
export MOEKIT_LIBRARY=$lib PYTHONPATH=$root/python${PYTHONPATH:+:$PYTHONPATH} PYTHONDONTWRITEBYTECODE=1

{
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -1
  "$PYTHON" -c 'import sys, numpy, torch, transformers, moekit
print("python", sys.version.split()[0], "numpy", numpy.__version__, "torch", torch.__version__,
      "cuda", torch.version.cuda, "transformers", transformers.__version__)
print("libmoekit", moekit.version(), moekit.library_path())
for b in moekit.backends(): print(" ", b["name"], b["device"], "available" if b["available"] else b["reason"])' 2>&1
} | tee "$outdir/python-env.txt"

cd "$root"
start=$(date +%s)
# -X faulthandler: a crash in the library prints the Python stack that led to it.
# 230 s: the whole run stays under 4 minutes with interpreter start-up and compilation.
timeout 230 "$PYTHON" -X faulthandler -m pytest -q -p no:cacheprovider -rs -s tests/python \
  --junitxml "$outdir/python-junit.xml" ${PYTEST_ARGS:-} > "$outdir/python-pytest.log" 2>&1
rc=$?
{
  echo "python.sh: pytest exit $rc in $(( $(date +%s) - start )) s (124: timed out); full log python-pytest.log"
  grep -E "^(FAILED|ERROR|SKIPPED)" "$outdir/python-pytest.log" | head -30
  grep -oE "(solar_open|mixtral|qwen3_moe|gpt_oss): transformers grouped_mm.*" "$outdir/python-pytest.log"
  tail -1 "$outdir/python-pytest.log"
} | tee "$outdir/python-summary.txt"
exit $rc
