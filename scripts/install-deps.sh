#!/usr/bin/env bash
# Installs the Debian packages the build needs, only those missing. Safe to run repeatedly.
set -euo pipefail

required=(g++ make cmake libgtest-dev libcli11-dev nlohmann-json3-dev)
optional=(libopenblas-dev)  # the CPU GEMM ceiling of `moekit bench`; the build works without it
# tests/python (the Python package over the C API): Debian's NumPy and pytest; without them that
# test reports itself skipped.
optional+=(python3-numpy python3-pytest)
# `make fuzz` (--fuzz): clang and its libFuzzer/sanitizer runtime, for Debian 12's clang 14.
if [ "${1:-}" = "--fuzz" ]; then
  required+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${required[@]}" "${optional[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "install-deps: missing packages (${missing[*]}) and no apt-get; install them by hand" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
