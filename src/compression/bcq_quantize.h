// Rewrites a float graph's MatMul/Gemm nodes with constant weights into Tessera's LutMatMul
// (domain "tessera"): BCQ signs packed for LUT-GEMM and their scales become ordinary constant
// inputs, so the compressed graph can be saved as ONNX and run by a Session.
#pragma once
#include <cstdint>

#include "compression/bcq.h"
#include "tessera/graph.h"

namespace tessera::compression {

struct BcqQuantizeOptions {
  BcqOptions bcq;
  // Weight matrices with fewer elements stay f32 (their bytes do not matter, their error might).
  int64_t min_weight_elements = 0;
};

struct BcqQuantizeReport {
  int rewritten = 0;          // nodes turned into LutMatMul
  int skipped = 0;            // MatMul/Gemm nodes left as they were (weights not constant, transA...)
  int64_t f32_weight_bytes = 0;  // of the rewritten weights, before
  int64_t bcq_weight_bytes = 0;  // after: packed signs + scales
};

// LutMatMul(A, signs, alphas[, bias]) computes A W^T + bias over A's last axis, W [N, K] the BCQ
// matrix; attributes rows = N, cols = K, bits, group_size. signs is int32 [n] (the PackedBcq
// words' bit patterns), alphas float [m], laid out as PackedBcq documents. Rewritten:
//   MatMul(A, B) with B a constant f32 [K, N] (and the fused 3-input MatMul(A, B, bias));
//   Gemm(A, B, C) with transA = 0, constant B (transB either way; alpha folded into W) and C
//   absent or a constant of N elements (times beta).
// Unused weight constants are dropped. Throws tessera::Error for bad options.
BcqQuantizeReport apply_bcq_quantization(Graph& graph, const BcqQuantizeOptions& options);

}  // namespace tessera::compression
