#!/usr/bin/env bash
# Runs each libFuzzer target of a MOEKIT_BUILD_FUZZ build for SECONDS over a scratch copy of its
# seed corpus (the seeds in fuzz/corpus stay as they are); fails on the first finding.
# Usage: scripts/run-fuzz.sh BUILD_DIR SECONDS
set -euo pipefail
build=$1
seconds=$2
root="$(cd "$(dirname "$0")/.." && pwd)"
work=$(mktemp -d "${TMPDIR:-/tmp}/moekit-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

ran=0
for name in safetensors config; do
  bin="$build/fuzz/${name}_fuzz"
  [ -x "$bin" ] || { echo "run-fuzz: $bin was not built" >&2; exit 1; }
  mkdir -p "$work/$name/corpus" "$work/$name/artifacts"
  cp "$root/fuzz/corpus/$name/." "$work/$name/corpus/" -r
  echo "run-fuzz: ${name}_fuzz for ${seconds}s"
  if ! "$bin" "$work/$name/corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -dict="$root/fuzz/json.dict" -artifact_prefix="$work/$name/artifacts/" -print_final_stats=1; then
    # Keep the reproducer where the caller can find it after the scratch folder is gone.
    mkdir -p "$build/fuzz-findings"
    cp "$work/$name/artifacts/"* "$build/fuzz-findings/" 2>/dev/null || true
    echo "run-fuzz: ${name}_fuzz found a problem; reproducers in $build/fuzz-findings" >&2
    exit 1
  fi
  ran=$((ran + 1))
done
[ "$ran" -gt 0 ] || { echo "run-fuzz: no fuzz targets in $build/fuzz" >&2; exit 1; }
