#!/usr/bin/env bash
# Quick start, one command: install dependencies, build, build the default model (MobileNetV2
# with seeded weights, exported from PyTorch), run it, check it against PyTorch, and time it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
/usr/bin/python3 scripts/build_zoo.py --out models/zoo --models mobilenet_v2
model=models/zoo/mobilenet_v2
build/tessera info "$model/model.onnx"
build/tessera run "$model/model.onnx" -i "$(/usr/bin/python3 -c "import json;m=json.load(open('$model/meta.json'));print(m['inputs'][0]['name'])")=$model/input_0.npy" -o build/quickstart_out
/usr/bin/python3 scripts/compare_npy.py "$model/output_0.npy" build/quickstart_out/*.npy
build/tessera bench "$model/model.onnx" --iters 20 --warmup 3
