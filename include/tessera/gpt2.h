// GPT-2 natively: a Hugging Face checkpoint folder (config.json, model.safetensors) or its ONNX
// export (scripts/export_gpt2_onnx.py) loaded into
// weights packed once for the GEMM, and a runtime that appends tokens to a batch of sequences
// with a KV cache: a whole prompt at once (prefill) or one token per sequence (decode).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/safetensors.h"
#include "tessera/tensor.h"
#include "tessera/thread_pool.h"

namespace tessera::llm {

enum class Gpt2Activation { gelu_tanh, gelu_erf, relu };

// The fields of a Hugging Face GPT2Config that change the computation.
struct Gpt2Config {
  int64_t vocab_size = 50257;
  int64_t n_positions = 1024;
  int64_t n_embd = 768;
  int64_t n_head = 12;
  int64_t n_layer = 12;
  int64_t n_inner = 3072;  // the MLP's hidden width (config null: 4 * n_embd)
  float layer_norm_epsilon = 1e-5f;
  Gpt2Activation activation = Gpt2Activation::gelu_tanh;  // "gelu_new"

  int64_t head_size() const { return n_embd / n_head; }
  // Parses and checks config.json (sizes positive and consistent, options Tessera supports);
  // throws tessera::Error naming `name` and the problem.
  static Gpt2Config from_json(std::string_view text, const std::string& name = "config.json");
};

// How the linear layers' weights are kept. f32 (the default) as in the checkpoint; BCQ: the
// attention (c_attn, c_proj) and MLP (c_fc, c_proj) matrices of every layer quantized to q-bit
// binary-coding quantization with one scale per output and group of input columns, and run by
// LUT-GEMM (decode, up to 16 rows) or a GEMM on the weights dequantized per call (longer prompts).
// Token/position embeddings, layer norms, biases and the LM head stay f32.
// docs/COMPRESSION_LUT_GEMM.md.
struct Gpt2WeightOptions {
  int bcq_bits = 0;                // 0: f32; 2, 3 or 4: BCQ with that many planes
  int64_t bcq_group_size = 128;    // input columns per scale; a multiple of 32
  int bcq_refine_iterations = 10;  // alternating least-squares rounds of the fit
  // "f32", "bcq2", "bcq3", "bcq4", optionally with ":g<group size>" (e.g. "bcq3:g64"); throws
  // tessera::Error naming the accepted forms otherwise.
  static Gpt2WeightOptions parse(std::string_view spec);
};

// Which positions' logits a forward call returns.
enum class LogitRows { last, all };

class Gpt2Model;

// The KV caches of a batch of sequences, each with its own length, and the scratch buffers of
// the forward passes that fill them. Sequences are independent: no padding, and each token's
// position is the length of its own sequence before it.
class Gpt2State {
 public:
  // Room for `capacity` tokens per sequence (0: the model's n_positions).
  Gpt2State(const Gpt2Model& model, int sequences, int64_t capacity = 0);
  Gpt2State(Gpt2State&&) noexcept;
  Gpt2State& operator=(Gpt2State&&) noexcept;
  ~Gpt2State();

  int sequences() const;
  int64_t capacity() const;
  int64_t length(int sequence) const;  // tokens in its cache
  void clear(int sequence);            // forgets its tokens (the memory is kept)

  struct Buffers;  // defined in src/llm/gpt2_state.h

 private:
  friend class Gpt2Model;
  std::unique_ptr<Buffers> buffers_;
};

// Tokens to append to one sequence of a state in a forward call.
struct Gpt2Input {
  int sequence = 0;
  std::span<const int32_t> tokens;
};

class Gpt2Model {
 public:
  // `path` is a checkpoint folder: config.json and model.safetensors (tensor names with or
  // without the "transformer." prefix; F32, F16 or BF16; the LM head tied to wte unless
  // lm_head.weight is present); or an ONNX file that scripts/export_gpt2_onnx.py wrote: the same
  // tensors as initializers, the config in the metadata "tessera.gpt2.config" (or a config.json
  // beside the file). Every missing, malformed or inconsistent file throws tessera::Error naming it.
  static Gpt2Model load(const std::string& path, const Gpt2WeightOptions& options = {});
  static Gpt2Model load(const Gpt2Config& config, const SafetensorsFile& weights,
                        const Gpt2WeightOptions& options = {});
  // With BCQ weights, fitting runs on the pool when given (it takes seconds for GPT-2 124M).
  static Gpt2Model load(const std::string& path, const Gpt2WeightOptions& options, ThreadPool* pool);
  static Gpt2Model load(const Gpt2Config& config, const SafetensorsFile& weights, const Gpt2WeightOptions& options,
                        ThreadPool* pool);

  Gpt2Model(Gpt2Model&&) noexcept;
  Gpt2Model& operator=(Gpt2Model&&) noexcept;
  ~Gpt2Model();

  const Gpt2Config& config() const;
  int64_t parameter_count() const;  // the LM head counted once when tied
  // Weight bytes one decode step must read: every layer's matrices and vectors, the final norm
  // and the LM head (not the embeddings, of which it reads one row each).
  // BCQ layers count their packed signs and scales.
  int64_t decode_weight_bytes() const;
  const Gpt2WeightOptions& weight_options() const;

  // Appends each input's tokens to its sequence and runs them through the model (several
  // inputs: one batch; a sequence may appear once per call). Returns the logits, f32
  // [rows, vocab_size]: per input in order, its last token's row (LogitRows::last) or one row
  // per token (LogitRows::all). Throws tessera::Error for bad ids, an unknown or repeated
  // sequence, or a sequence that would outgrow the state's capacity or n_positions.
  Tensor forward(Gpt2State& state, std::span<const Gpt2Input> inputs, LogitRows rows, ThreadPool* pool) const;

  struct Weights;  // defined in src/llm/gpt2_weights.h

 private:
  friend class Gpt2State;
  explicit Gpt2Model(std::unique_ptr<Weights> weights);
  std::unique_ptr<Weights> weights_;
};

}  // namespace tessera::llm
