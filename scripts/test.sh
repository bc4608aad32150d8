#!/usr/bin/env bash
# The whole test suite, one command: install dependencies, build, build the reference models
# (PyTorch zoo, GPT-2 checkpoints, PaddleOCR with ONNX Runtime outputs), then run every test with
# ctest, under ASan/UBSan and in Release.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
/usr/bin/python3 scripts/build_zoo.py --out models/zoo
/usr/bin/python3 scripts/build_gpt2_checkpoints.py --out models/gpt2  # the small sizes; 124m is for bench/
bash scripts/build_ocr_reference.sh
# The same tests under AddressSanitizer and UBSan first, then the Release suite (its ctest
# summary is the last thing printed).
bash scripts/sanitize.sh
cd build && ctest --output-on-failure -j2 --timeout 1200
