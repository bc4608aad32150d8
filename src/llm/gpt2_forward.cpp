// GPT-2's forward pass over a ragged batch: the new tokens of all sequences are the rows of one
// matrix for the projections and the MLP (GEMM with fused bias, GELU and residual; the panel
// GEMV when there are only a few rows, as in decode), and attention runs per sequence and head
// over that sequence's own KV cache, so sequences of different lengths need no padding.
#include <cmath>
#include <functional>
#include <limits>

#include "compression/lut_gemm.h"
#include "llm/gpt2_state.h"
#include "llm/panel_gemv.h"
#include "tessera/error.h"

namespace tessera::llm {

namespace {

using primitives::BinaryKind;
using primitives::ReduceKind;
using primitives::UnaryKind;
using primitives::UnaryParams;

// Up to this many rows the panel GEMV streams the weights once; beyond, the GEMM's reuse of each
// weight across rows wins.
constexpr int64_t kGemvMaxRows = 8;
// Query rows per attention task in prefill: the scores block (rows x keys) stays in L2.
constexpr int64_t kQueryBlock = 64;

void run_tasks(ThreadPool* pool, int64_t count, const std::function<void(int)>& task) {
  if (count <= 0) return;
  if (!pool || pool->size() <= 1 || count == 1) {
    for (int i = 0; i < int(count); ++i) task(i);
    return;
  }
  pool->run_tasks(int(count), task);
}

UnaryParams activation_params(Gpt2Activation activation) {
  UnaryParams p;
  switch (activation) {
    case Gpt2Activation::gelu_tanh:
      p.kind = UnaryKind::gelu_tanh;
      break;
    case Gpt2Activation::gelu_erf:
      p.kind = UnaryKind::gelu_erf;
      break;
    case Gpt2Activation::relu:
      p.kind = UnaryKind::relu;
      break;
  }
  return p;
}

// Up to this many rows LUT-GEMM runs on the BCQ weights; beyond, its lookups grow with the rows
// while a GEMM on weights dequantized once per call reuses each weight across them.
constexpr int64_t kLutMaxRows = 16;

void bcq_linear(const Gpt2Linear& layer, int64_t rows, const float* x, int64_t ldx, float* y, int64_t ldy,
                bool accumulate, UnaryParams activation, ThreadPool* pool) {
  const compression::PackedBcq& weight = layer.bcq;
  const float* bias = layer.bias.empty() ? nullptr : layer.bias.data();
  if (rows <= kLutMaxRows) {
    compression::lut_gemm(weight, rows, x, ldx, bias, accumulate, y, ldy, pool);
    if (activation.kind != UnaryKind::identity)
      for (int64_t r = 0; r < rows; ++r) primitives::unary_f32(activation, weight.rows(), y + r * ldy, y + r * ldy);
    return;
  }
  thread_local std::vector<float> dense;  // [out, in]
  dense.resize(size_t(weight.rows() * weight.cols()));
  weight.dequantize(dense.data(), weight.cols());
  primitives::GemmEpilogue epilogue;
  epilogue.bias_per_column = bias;
  if (accumulate) {
    epilogue.residual = y;
    epilogue.ld_residual = ldy;
  }
  epilogue.activation = activation;
  primitives::gemm_f32(false, true, rows, weight.rows(), weight.cols(), 1.f, x, ldx, dense.data(), weight.cols(),
                       0.f, y, ldy, pool, &epilogue);
}

// y = activation(x W + b), or y += x W + b when accumulating (the residual connections).
void linear(const Gpt2Linear& layer, int64_t rows, const float* x, int64_t ldx, float* y, int64_t ldy,
            bool accumulate, UnaryParams activation, ThreadPool* pool) {
  if (!layer.bcq.empty()) {
    bcq_linear(layer, rows, x, ldx, y, ldy, accumulate, activation, pool);
    return;
  }
  const primitives::PackedB& weight = layer.weight;
  const float* bias = layer.bias.empty() ? nullptr : layer.bias.data();
  const detail::PanelGemvFn gemv = detail::panel_gemv(primitives::active_isa());
  if (gemv && rows <= kGemvMaxRows) {
    const int64_t panels = weight.panel_count();
    // A few chunks per thread, claimed dynamically: on a shared machine a thread that loses its
    // core for a while does not hold up the whole product.
    const int threads = pool ? pool->size() : 1;
    const int64_t bytes = weight.K() * panels * weight.panel_width() * int64_t(sizeof(float));
    const int64_t chunks = bytes < (int64_t(256) << 10) ? 1 : std::min<int64_t>(panels, 4 * threads);
    run_tasks(pool, chunks, [&](int chunk) {
      gemv(rows, x, ldx, weight, panels * chunk / chunks, panels * (chunk + 1) / chunks, bias, accumulate, y,
           ldy);
    });
    if (activation.kind != UnaryKind::identity)
      for (int64_t r = 0; r < rows; ++r)
        primitives::unary_f32(activation, weight.N(), y + r * ldy, y + r * ldy);
    return;
  }
  primitives::GemmEpilogue epilogue;
  epilogue.bias_per_column = bias;
  if (accumulate) {
    epilogue.residual = y;
    epilogue.ld_residual = ldy;
  }
  epilogue.activation = activation;
  primitives::gemm_packed_f32(rows, x, ldx, weight, y, ldy, epilogue, pool);
}

void layer_norm(int64_t rows, int64_t width, const float* x, const std::vector<float>& gamma,
                const std::vector<float>& beta, float epsilon, float* y, ThreadPool* pool) {
  constexpr int64_t kRowsPerTask = 32;
  const int64_t tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
  run_tasks(pool, tasks, [&](int task) {
    const int64_t r0 = task * kRowsPerTask, n = std::min(kRowsPerTask, rows - r0);
    primitives::add_layer_norm_rows_f32(n, width, x + r0 * width, nullptr, width, nullptr, gamma.data(), beta.data(),
                                        epsilon, y + r0 * width);
  });
}

// Softmax of each row of scores[rows, count] in place.
void softmax_rows(int64_t rows, int64_t count, float* scores, float* row_stat) {
  primitives::reduce_rows_f32(ReduceKind::max, rows, count, scores, count, row_stat);
  primitives::binary_f32(BinaryKind::sub, rows, count, scores, count, 1, row_stat, 1, 0, scores, count);
  primitives::unary_f32(UnaryParams{UnaryKind::exp}, rows * count, scores, scores);
  primitives::reduce_rows_f32(ReduceKind::sum, rows, count, scores, count, row_stat);
  for (int64_t r = 0; r < rows; ++r) row_stat[r] = 1.f / row_stat[r];
  primitives::binary_f32(BinaryKind::mul, rows, count, scores, count, 1, row_stat, 1, 0, scores, count);
}

// Query rows [row, row + rows) of one sequence and head; the first is at `position`.
struct AttentionTask {
  int sequence;
  int64_t head, row, rows, position;
};

}  // namespace

Gpt2State::Gpt2State(const Gpt2Model& model, int sequences, int64_t capacity)
    : buffers_(std::make_unique<Buffers>()) {
  const Gpt2Config& c = model.config();
  TESSERA_CHECK(sequences >= 1, "a Gpt2State needs at least one sequence");
  TESSERA_CHECK(capacity >= 0, "a negative KV-cache capacity");
  Buffers& b = *buffers_;
  b.weights = model.weights_.get();
  b.sequences = sequences;
  b.capacity = capacity == 0 ? c.n_positions : std::min(capacity, c.n_positions);
  b.key_stride = b.capacity + 16;
  b.lengths.assign(size_t(sequences), 0);
  const double bytes =
      double(sequences) * double(c.n_layer) * double(b.layer_cache_floats()) * double(sizeof(float));
  TESSERA_CHECK(bytes <= double(kMaxTensorBytes),
                "a KV cache of " + std::to_string(int64_t(bytes / double(1 << 30))) +
                    " GiB is too large (fewer sequences or a smaller capacity)");
  // Pages are committed as positions are written.
  b.cache = Storage::allocate_uninitialized(size_t(bytes));
}

Gpt2State::Gpt2State(Gpt2State&&) noexcept = default;
Gpt2State& Gpt2State::operator=(Gpt2State&&) noexcept = default;
Gpt2State::~Gpt2State() = default;

int Gpt2State::sequences() const { return buffers_->sequences; }
int64_t Gpt2State::capacity() const { return buffers_->capacity; }
int64_t Gpt2State::length(int sequence) const {
  TESSERA_CHECK(sequence >= 0 && sequence < buffers_->sequences, "no sequence " + std::to_string(sequence));
  return buffers_->lengths[size_t(sequence)];
}
void Gpt2State::clear(int sequence) {
  TESSERA_CHECK(sequence >= 0 && sequence < buffers_->sequences, "no sequence " + std::to_string(sequence));
  buffers_->lengths[size_t(sequence)] = 0;
}

Tensor Gpt2Model::forward(Gpt2State& state, std::span<const Gpt2Input> inputs, LogitRows which,
                          ThreadPool* pool) const {
  Gpt2State::Buffers& b = *state.buffers_;
  const Weights& w = *weights_;
  const Gpt2Config& c = w.config;
  TESSERA_CHECK(b.weights == &w, "this Gpt2State was made for another model");
  const int64_t C = c.n_embd, hd = c.head_size(), cap = b.capacity, key_stride = b.key_stride;

  // Rows: the inputs' tokens one after another; each row's sequence and position.
  int64_t rows = 0;
  std::vector<bool> seen(size_t(b.sequences), false);
  for (const Gpt2Input& in : inputs) {
    TESSERA_CHECK(
        in.sequence >= 0 && in.sequence < b.sequences,
        "no sequence " + std::to_string(in.sequence) + " in a state of " + std::to_string(b.sequences));
    TESSERA_CHECK(!seen[size_t(in.sequence)],
                  "sequence " + std::to_string(in.sequence) + " appears twice in one call");
    seen[size_t(in.sequence)] = true;
    TESSERA_CHECK(!in.tokens.empty(),
                  "the input for sequence " + std::to_string(in.sequence) + " has no tokens");
    const int64_t end = b.lengths[size_t(in.sequence)] + int64_t(in.tokens.size());
    TESSERA_CHECK(end <= cap, "sequence " + std::to_string(in.sequence) + " would hold " +
                                  std::to_string(end) + " tokens; its KV cache has room for " +
                                  std::to_string(cap) +
                                  (cap == c.n_positions ? " (the model's n_positions)" : ""));
    for (int32_t id : in.tokens)
      TESSERA_CHECK(id >= 0 && id < c.vocab_size, "token id " + std::to_string(id) +
                                                      " is outside the vocabulary (" +
                                                      std::to_string(c.vocab_size) + ")");
    rows += int64_t(in.tokens.size());
  }
  if (rows == 0) return Tensor(DType::f32, {0, c.vocab_size});

  b.residual.resize(size_t(rows * C));
  b.normed.resize(size_t(rows * C));
  b.qkv.resize(size_t(rows * 3 * C));
  b.attention.resize(size_t(rows * C));
  b.hidden.resize(size_t(rows * c.n_inner));
  float* x = b.residual.data();

  // Embeddings, and the attention work: per sequence and head, blocks of query rows.
  std::vector<AttentionTask> tasks;
  {
    int64_t row = 0;
    for (const Gpt2Input& in : inputs) {
      const int64_t past = b.lengths[size_t(in.sequence)], count = int64_t(in.tokens.size());
      for (int64_t i = 0; i < count; ++i) {
        float* xr = x + (row + i) * C;
        w.embed_token(in.tokens[size_t(i)], xr);
        const float* position = w.position_embedding.data() + (past + i) * C;
        for (int64_t k = 0; k < C; ++k) xr[k] += position[k];
      }
      for (int64_t head = 0; head < c.n_head; ++head)
        for (int64_t q = 0; q < count; q += kQueryBlock)
          tasks.push_back({in.sequence, head, row + q, std::min(kQueryBlock, count - q), past + q});
      row += count;
    }
  }

  const float query_scale = 1.f / std::sqrt(float(hd));
  const UnaryParams none{}, activation = activation_params(c.activation);
  for (int64_t layer = 0; layer < c.n_layer; ++layer) {
    const Gpt2LayerWeights& L = w.layers[size_t(layer)];
    layer_norm(rows, C, x, L.ln_1_weight, L.ln_1_bias, c.layer_norm_epsilon, b.normed.data(), pool);
    linear(L.attn_qkv, rows, b.normed.data(), C, b.qkv.data(), 3 * C, false, none, pool);
    // Queries scaled by 1/sqrt(head size) once, instead of every score.
    primitives::binary_f32(BinaryKind::mul, rows, C, b.qkv.data(), 3 * C, 1, &query_scale, 0, 0, b.qkv.data(),
                           3 * C);

    // Keys and values of the new tokens into the cache.
    {
      int64_t row = 0;
      for (const Gpt2Input& in : inputs) {
        float* keys = b.keys(in.sequence, layer);
        float* values = b.values(in.sequence, layer);
        const int64_t past = b.lengths[size_t(in.sequence)], count = int64_t(in.tokens.size());
        const float* k = b.qkv.data() + row * 3 * C + C;
        const float* v = k + C;
        for (int64_t head = 0; head < c.n_head; ++head) {
          // Keys transposed a block at a time (a prompt's keys would otherwise be written one
          // float per cache line).
          primitives::transpose_2d(count, hd, k + head * hd, 3 * C, keys + head * hd * key_stride + past,
                                   key_stride, sizeof(float));
          for (int64_t i = 0; i < count; ++i)
            std::copy_n(v + i * 3 * C + head * hd, hd, values + (head * cap + past + i) * hd);
        }
        row += count;
      }
    }

    run_tasks(pool, int64_t(tasks.size()), [&](int index) {
      const AttentionTask& t = tasks[size_t(index)];
      const int64_t keys = t.position + t.rows;  // the block's last query sees all of them
      thread_local std::vector<float> scores, row_stat;
      scores.resize(size_t(t.rows * keys));
      row_stat.resize(size_t(t.rows));
      const float* query = b.qkv.data() + t.row * 3 * C + t.head * hd;
      const float* key_rows = b.keys(t.sequence, layer) + t.head * hd * key_stride;
      primitives::brgemm_f32(t.rows, keys, hd, 1, &query, 3 * C, &key_rows, key_stride, scores.data(), keys,
                             false);
      // Causal mask: query r (at position t.position + r) sees keys up to its own position.
      for (int64_t r = 0; r + 1 < t.rows; ++r)
        std::fill(scores.data() + r * keys + t.position + r + 1, scores.data() + (r + 1) * keys,
                  -std::numeric_limits<float>::infinity());
      softmax_rows(t.rows, keys, scores.data(), row_stat.data());
      const float* probabilities = scores.data();
      const float* value_rows = b.values(t.sequence, layer) + t.head * cap * hd;
      primitives::brgemm_f32(t.rows, hd, keys, 1, &probabilities, keys, &value_rows, hd,
                             b.attention.data() + t.row * C + t.head * hd, C, false);
    });

    linear(L.attn_out, rows, b.attention.data(), C, x, C, true, none, pool);
    layer_norm(rows, C, x, L.ln_2_weight, L.ln_2_bias, c.layer_norm_epsilon, b.normed.data(), pool);
    linear(L.mlp_in, rows, b.normed.data(), C, b.hidden.data(), c.n_inner, false, activation, pool);
    linear(L.mlp_out, rows, b.hidden.data(), c.n_inner, x, C, true, none, pool);
  }
  for (const Gpt2Input& in : inputs) b.lengths[size_t(in.sequence)] += int64_t(in.tokens.size());

  // The final norm and the LM head, on the rows whose logits are wanted.
  int64_t out_rows = rows;
  if (which == LogitRows::last) {
    out_rows = int64_t(inputs.size());
    int64_t row = 0, out = 0;
    for (const Gpt2Input& in : inputs) {
      row += int64_t(in.tokens.size());
      std::copy_n(x + (row - 1) * C, C, b.normed.data() + out++ * C);
    }
  } else {
    std::copy_n(x, rows * C, b.normed.data());
  }
  layer_norm(out_rows, C, b.normed.data(), w.ln_f_weight, w.ln_f_bias, c.layer_norm_epsilon, b.normed.data(),
             pool);
  Tensor logits(DType::f32, {out_rows, c.vocab_size});
  linear(w.lm_head, out_rows, b.normed.data(), C, logits.data<float>(), c.vocab_size, false, none, pool);
  return logits;
}

}  // namespace tessera::llm
