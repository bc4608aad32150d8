#!/usr/bin/env bash
# Builds the tests with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/) and runs them.
# Any memory error, leak or undefined behaviour fails the run. The libFuzzer smoke test (which
# has its own sanitizers) and the large-model zoo cases are left to the Release run.
set -euo pipefail
cd "$(dirname "$0")/.."
# -O1 -g1 (line tables): at -O2 -g the instrumented GEMM microkernel templates alone took 7
# minutes to compile; at -O1 -g1 they take 20 s, and reports still name files and lines.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DTESSERA_SANITIZE=ON -DTESSERA_BUILD_BENCH=OFF > /dev/null
cmake --build build-asan -j"$(nproc)"
cd build-asan
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest -j2 --timeout 1200 --output-on-failure -E 'fuzz_smoke|resnet50|vgg11|ppocr_det'
