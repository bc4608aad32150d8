// Fused multi-head attention, softmax(scale * Q K^T + mask) V, tiled over query rows and key
// blocks with an online softmax (Milakov and Gimelshein; FlashAttention, FLAT): the score
// matrix is never materialized, extra memory is O(query block x (key block + head size)) per
// thread. Q, K, V and the output are read and written through strides, so the head split and
// merge transposes around attention need no copies.
#pragma once
#include <cstdint>

#include "tessera/thread_pool.h"

namespace tessera::primitives {

// A 4-D operand [batch, heads, rows, head_size] addressed by element strides.
struct AttentionOperand {
  const float* data = nullptr;
  int64_t batch_stride = 0, head_stride = 0, row_stride = 0, column_stride = 1;
};

struct AttentionProblem {
  int64_t batch = 1, heads = 1, query_length = 1, key_length = 1, head_size = 1, value_size = 1;
  AttentionOperand q;  // [batch, heads, query_length, head_size]
  AttentionOperand k;  // [batch, heads, key_length, head_size] (column_stride != 1: K stored transposed)
  AttentionOperand v;  // [batch, heads, key_length, value_size]
  float* out = nullptr;  // [batch, heads, query_length, value_size] through these strides:
  int64_t out_batch_stride = 0, out_head_stride = 0, out_row_stride = 0;
  float scale = 1.f;
  // Query i sees keys j <= i + (key_length - query_length) (causal, aligned at the end, so a
  // decode step's single query sees every cached key).
  bool causal = false;
  // Optional mask per [batch, heads, query, key] through strides (0 strides broadcast):
  // additive: added to the scaled scores. keep (bytes, nonzero = keep): masked scores become
  // `fill` (a finite fill gives exactly the unfused Where + Softmax result).
  const float* additive_mask = nullptr;
  const uint8_t* keep_mask = nullptr;
  bool keep_where_true = true;  // false: the bool mask marks the positions to fill
  float fill = -1e9f;
  int64_t mask_batch_stride = 0, mask_head_stride = 0, mask_row_stride = 0, mask_column_stride = 0;
};

// Runs on `pool` (may be nullptr) over (batch, head, query block) tasks.
void attention_f32(const AttentionProblem& problem, ThreadPool* pool);

// Plain loops with the full score row in double: the reference the fused kernel is tested against.
void attention_reference_f32(const AttentionProblem& problem);

}  // namespace tessera::primitives
