// What a Gpt2State holds: each sequence's length and KV cache, and the forward pass's scratch
// buffers (kept between calls so that a decode step allocates nothing large).
#pragma once
#include <memory>
#include <vector>

#include "llm/gpt2_weights.h"

namespace tessera::llm {

struct Gpt2State::Buffers {
  const Gpt2Model::Weights* weights = nullptr;  // the model the state was made for
  int sequences = 0;
  int64_t capacity = 0;  // tokens per sequence
  // Floats between key rows: the capacity plus one cache line, so that the rows a GEMM tile
  // reads together do not all fall in the same L1 set when the capacity is a power of two.
  int64_t key_stride = 0;
  std::vector<int64_t> lengths;
  // Per sequence and layer: keys [head][head_size][key_stride] (transposed, so that the scores of
  // queries are one GEMM reading the cache in place) then values [head][capacity][head_size].
  std::shared_ptr<Storage> cache;
  // Scratch, rows x width: the residual stream, its layer norm, q|k|v, the attention output and
  // the MLP's hidden layer.
  std::vector<float> residual, normed, qkv, attention, hidden;

  int64_t layer_cache_floats() const { return weights->config.n_embd * (key_stride + capacity); }
  float* keys(int sequence, int64_t layer) const {
    return static_cast<float*>(cache->data()) +
           (int64_t(sequence) * weights->config.n_layer + layer) * layer_cache_floats();
  }
  float* values(int sequence, int64_t layer) const {
    return keys(sequence, layer) + weights->config.n_embd * key_stride;
  }
};

}  // namespace tessera::llm
