#!/usr/bin/env bash
# Configures and builds Tessera (Release) into build/; the CLI lands at build/tessera.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${TESSERA_CMAKE_FLAGS:-} > /dev/null
cmake --build build -j"$(nproc)"
