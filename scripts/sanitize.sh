#!/usr/bin/env bash
# Builds the tests with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/) and runs them.
# Any memory error, leak or undefined behaviour fails the run. The libFuzzer smoke test (which
# has its own sanitizers) and the large-model zoo cases are left to the Release run.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTESSERA_SANITIZE=ON -DTESSERA_BUILD_BENCH=OFF > /dev/null
cmake --build build-asan -j"$(nproc)"
cd build-asan
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest -j2 --timeout 1200 --output-on-failure -E 'fuzz_smoke|resnet50|vgg11|ppocr_det'
