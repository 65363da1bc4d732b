#!/usr/bin/env bash
# Fills .deps/ with the header-only and source dependencies the GPU machine lacks (it has no
# Debian -dev packages and no network): CLI11, nlohmann-json and GoogleTest, copied from this
# machine's packages (scripts/install-deps.sh installs them). .deps/ is git-ignored; copy it to the
# GPU machine with the tree. The normal build never needs it.
set -euo pipefail
cd "$(dirname "$0")/.."
for need in /usr/include/CLI/CLI.hpp /usr/include/nlohmann/json.hpp /usr/src/googletest/CMakeLists.txt; do
  [ -e "$need" ] || { echo "stage-gpu-deps: $need is missing; run scripts/install-deps.sh first" >&2; exit 1; }
done
rm -rf .deps
mkdir -p .deps
cp -r /usr/include/CLI .deps/CLI
cp -r /usr/include/nlohmann .deps/nlohmann
cp -r /usr/src/googletest .deps/googletest
du -sh .deps
