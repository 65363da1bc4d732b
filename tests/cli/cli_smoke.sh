#!/usr/bin/env bash
# Smoke tests of the moekit CLI: every subcommand, every preset at small T, and the error paths
# (one clear line on stderr, exit 2). Usage: cli_smoke.sh path/to/moekit
set -u
moekit=$1
err=$(mktemp)
trap 'rm -f "$err"' EXIT
passed=0
failed=0

# expect CODE DESCRIPTION -- ARGS...: runs moekit ARGS, checks the exit code.
expect() {
  local want=$1 what=$2
  shift 3
  "$moekit" "$@" >/dev/null 2>"$err"
  local got=$?
  if [ "$got" -ne "$want" ]; then
    echo "FAIL: $what: moekit $* exited $got, expected $want"; sed 's/^/    /' "$err" | head -5
    failed=$((failed + 1)); return 1
  fi
  passed=$((passed + 1))
}

# expect_usage_error DESCRIPTION NEEDLE -- ARGS...: exit 2 with exactly one stderr line containing NEEDLE.
expect_usage_error() {
  local what=$1 needle=$2
  shift 2
  expect 2 "$what" "$@" || return
  local lines
  lines=$(wc -l <"$err")
  if [ "$lines" -ne 1 ] || ! grep -q -- "$needle" "$err" || ! grep -q '^moekit: ' "$err"; then
    echo "FAIL: $what: expected one line 'moekit: ...$needle...', got:"; sed 's/^/    /' "$err" | head -5
    passed=$((passed - 1)); failed=$((failed + 1))
  fi
}

expect 0 "list" -- list
expect 0 "help" -- --help
expect 0 "quick check on the cpu" -- check --device cpu --quick
expect 0 "preset list" -- bench --preset help
"$moekit" bench --preset help | grep -q solar-open-100b || { echo "FAIL: preset list lacks solar-open-100b"; failed=$((failed + 1)); }

# Each preset at small T, with its real H, I, K, router and layout; presets of more than 16 experts
# get --experts 16 (a preset's dims can be overridden) to keep CI's memory small.
for p in solar-open-100b glm-4.5-air deepseek-v3 mixtral-8x7b qwen3-30b-a3b qwen3-235b-a22b \
         qwen1.5-moe-a2.7b olmoe-1b-7b gpt-oss-20b gpt-oss-120b; do
  fewer=(--experts 16)
  [ "$p" = mixtral-8x7b ] && fewer=()
  expect 0 "bench $p" -- bench --device cpu --preset "$p" "${fewer[@]}" --tokens 1,3 --warmup 0 --repeat 1 --quiet
done
json=$(mktemp)
expect 0 "bench json" -- bench --device cpu --hidden 64 --intermediate 32 --experts 8 --top-k 2 --tokens 2 \
  --repeat 2 --quiet --json "$json"
grep -q '"grouped_mm"' "$json" || { echo "FAIL: json lacks grouped_mm rows"; failed=$((failed + 1)); }
rm -f "$json"

expect_usage_error "unknown backend" "grouped_mm" -- bench --device cpu --backends nope --hidden 64 --intermediate 32 --experts 8 --top-k 2
expect_usage_error "unknown preset" "solar-open-100b" -- bench --preset nope
expect_usage_error "unknown dtype" "bf16" -- bench --dtype f8 --hidden 64 --intermediate 32 --experts 8 --top-k 2
expect_usage_error "unknown device" "cpu" -- bench --device tpu --hidden 64 --intermediate 32 --experts 8 --top-k 2
expect_usage_error "unknown flag" "frobnicate" -- bench --frobnicate
expect_usage_error "zero hidden" "hidden" -- bench --hidden 0 --intermediate 32 --experts 8 --top-k 2
expect_usage_error "negative tokens" "tokens" -- bench --hidden 64 --intermediate 32 --experts 8 --top-k 2 --tokens -1
expect_usage_error "top-k above experts" "top-k" -- bench --hidden 64 --intermediate 32 --experts 8 --top-k 9
expect_usage_error "too big for memory" "memory" -- bench --device cpu --hidden 1000000 --intermediate 1000000 --experts 64 --top-k 2
expect_usage_error "graph on the cpu" "graph" -- bench --device cpu --graph on --hidden 64 --intermediate 32 --experts 8 --top-k 2
expect_usage_error "unknown graph mode" "graph" -- bench --device cpu --graph maybe --hidden 64 --intermediate 32 --experts 8 --top-k 2
expect 0 "graph off on the cpu" -- bench --device cpu --graph off --hidden 64 --intermediate 32 --experts 8 --top-k 2 \
  --tokens 2 --warmup 0 --repeat 1 --quiet
# batch x seq, layers, scope, --model and --report.
tiny=(--hidden 64 --intermediate 32 --experts 8 --top-k 2)
expect 0 "batch x seq, 2 layers, both scopes" -- bench --device cpu "${tiny[@]}" --batch 1,2 --seq 2 --layers 2 \
  --warmup 0 --repeat 1 --quiet
expect_usage_error "tokens with batch" "exclusive" -- bench --device cpu "${tiny[@]}" --tokens 4 --batch 2 --seq 2
expect_usage_error "zero batch" "batch" -- bench --device cpu "${tiny[@]}" --batch 0 --seq 2
expect_usage_error "zero layers" "layers" -- bench --device cpu "${tiny[@]}" --layers 0
expect_usage_error "unknown scope" "scope" -- bench --device cpu "${tiny[@]}" --scope router
expect_usage_error "layer without model" "--model" -- bench --device cpu "${tiny[@]}" --layer 3
expect_usage_error "model with preset" "exclusive" -- bench --device cpu --model /nonexistent --preset solar-open-100b
expect_usage_error "missing model" "config.json" -- bench --device cpu --model /nonexistent/model
expect_usage_error "report into a file" "report" -- bench --device cpu "${tiny[@]}" --report /dev/null
expect_usage_error "report of nothing" "report" -- report --merge /nonexistent.json --out /tmp
expect_usage_error "unknown check backend" "grouped_mm" -- check --device cpu --backends nope
if "$moekit" check --device cuda >/dev/null 2>"$err"; then
  echo "FAIL: check --device cuda passed in a build or machine without CUDA backends"; failed=$((failed + 1))
else
  passed=$((passed + 1))
  # ... and tune says why in one line instead of a raw CUDA error, writing no table.
  table=$(mktemp -u)
  expect_usage_error "tune without a GPU" "cannot run here" -- tune --preset solar-open-100b --out "$table"
  [ -e "$table" ] && { echo "FAIL: tune without a GPU wrote $table"; failed=$((failed + 1)); rm -f "$table"; }
fi

echo "cli_smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
