// GPT-2's weights as the runtime reads them: the four matrices of each layer packed once into the
// GEMM's panel layout (which the decode GEMV streams too), vectors as plain arrays.
#pragma once
#include <vector>

#include "compression/bcq.h"
#include "primitives/primitives.h"
#include "tessera/gpt2.h"

namespace tessera::llm {

// A Conv1D/Linear layer y = x W + b with W [in, out] packed (K = in, N = out).
// With BCQ weights (Gpt2WeightOptions) `bcq` holds them and `weight` is empty.
struct Gpt2Linear {
  primitives::PackedB weight;
  compression::PackedBcq bcq;  // rows = out, cols = in
  std::vector<float> bias;     // out, or empty
  int64_t weight_bytes() const {
    return bcq.empty() ? weight.K() * weight.N() * int64_t(sizeof(float)) : bcq.bytes();
  }
};

struct Gpt2LayerWeights {
  std::vector<float> ln_1_weight, ln_1_bias;
  Gpt2Linear attn_qkv;  // c_attn: n_embd -> 3 n_embd, columns q | k | v, heads side by side
  Gpt2Linear attn_out;  // c_proj: n_embd -> n_embd
  std::vector<float> ln_2_weight, ln_2_bias;
  Gpt2Linear mlp_in;   // c_fc: n_embd -> n_inner
  Gpt2Linear mlp_out;  // c_proj: n_inner -> n_embd
};

struct Gpt2Model::Weights {
  Gpt2Config config;
  Gpt2WeightOptions options;
  std::vector<float> position_embedding;  // wpe [n_positions, n_embd]
  // The LM head, wte^T packed (K = n_embd, N = vocab). When tied, token embeddings are read
  // back from it (one row a token) instead of keeping a second copy of wte.
  Gpt2Linear lm_head;
  bool lm_head_tied = true;
  std::vector<float> token_embedding;  // wte [vocab, n_embd]; only when the head is not tied
  std::vector<Gpt2LayerWeights> layers;
  std::vector<float> ln_f_weight, ln_f_bias;
  int64_t parameter_count = 0;

  // Writes token `id`'s embedding (n_embd floats) to out.
  void embed_token(int32_t id, float* out) const;
};

}  // namespace tessera::llm
