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
  std::vector<int64_t> lengths;
  // Per sequence and layer: keys [head][head_size][capacity] (transposed, so that the scores of
  // queries are one GEMM reading the cache in place) then values [head][capacity][head_size].
  std::shared_ptr<Storage> cache;
  // Scratch, rows x width: the residual stream, its layer norm, q|k|v, the attention output and
  // the MLP's hidden layer.
  std::vector<float> residual, normed, qkv, attention, hidden;

  int64_t layer_cache_floats() const { return 2 * weights->config.n_embd * capacity; }
  float* keys(int sequence, int64_t layer) const {
    return static_cast<float*>(cache->data()) +
           (int64_t(sequence) * weights->config.n_layer + layer) * layer_cache_floats();
  }
  float* values(int sequence, int64_t layer) const {
    return keys(sequence, layer) + weights->config.n_embd * capacity;
  }
};

}  // namespace tessera::llm
