#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan + libFuzzer) from the few sources they
# need, then runs each for a short time from a seed corpus. Usage: run_fuzz_smoke.sh SRC BUILD SECONDS
set -euo pipefail
src="$1"; build="$2"; seconds="${3:-20}"
out="$build/fuzz"; mkdir -p "$out"
CLANG="$(command -v clang++ || command -v clang++-14 || true)"
if [ -z "$CLANG" ]; then echo "clang++ not found (scripts/setup.sh installs it)"; exit 1; fi
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$src/include" -I"$src/src" -I"$build/generated")
core=("$src/src/core/tensor.cpp" "$src/src/core/dtype.cpp")
if [ ! -x "$out/fuzz_npy" ] || [ "$src/src/core/npy.cpp" -nt "$out/fuzz_npy" ]; then
  "$CLANG" "${flags[@]}" "$src/tests/fuzz/fuzz_npy.cpp" "$src/src/core/npy.cpp" "${core[@]}" -o "$out/fuzz_npy"
fi
if [ ! -x "$out/fuzz_onnx_loader" ] || [ "$src/src/frontend/onnx/onnx_loader.cpp" -nt "$out/fuzz_onnx_loader" ]; then
  "$CLANG" "${flags[@]}" "$src/tests/fuzz/fuzz_onnx_loader.cpp" "$src/src/frontend/onnx/onnx_loader.cpp" \
    "$src/src/graph/graph.cpp" "$build/generated/onnx/onnx.pb.cc" "${core[@]}" -lprotobuf -o "$out/fuzz_onnx_loader"
fi
# Seed corpora: real files of each kind.
mkdir -p "$out/corpus_npy" "$out/corpus_onnx"
/usr/bin/python3 -c "
import numpy as np
np.save('$out/corpus_npy/f32.npy', np.arange(6, dtype=np.float32).reshape(2, 3))
np.save('$out/corpus_npy/i64.npy', np.arange(4, dtype=np.int64))
np.save('$out/corpus_npy/bool.npy', np.array([True, False]))
"
n=0
for m in /usr/share/libonnx-testdata/data/node/test_{conv_with_strides_padding,relu,add_bcast,reshape_negative_dim,slice}/model.onnx; do
  [ -f "$m" ] && cp "$m" "$out/corpus_onnx/seed_$n.onnx" && n=$((n+1))
done
"$out/fuzz_npy" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=4096 "$out/corpus_npy" 2>&1 | tail -3
"$out/fuzz_onnx_loader" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 "$out/corpus_onnx" 2>&1 | tail -3
echo "fuzz smoke: both targets ran ${seconds}s without a crash"
