// Fused attention: per (batch, head, block of query rows), key blocks stream through an online
// softmax; the two products of each block are small GEMMs on the packed-panel kernels.
#include "primitives/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "primitives/primitives.h"

namespace tessera::primitives {

namespace {

// Query rows per task and keys per block: the score block (64 x 256 floats, 64 KiB) and the
// output accumulator stay in L2 while a key block's K and V stream through.
constexpr int64_t kQueryBlock = 256;
constexpr int64_t kKeyBlock = 256;

struct Scratch {
  std::vector<float> scores, accumulator, row_max, row_sum, scale, q_copy, k_copy, v_copy;
};
thread_local Scratch scratch;

// Copies a [rows, cols] strided block into a dense row-major one, or returns it in place when it
// already is (column stride 1).
const float* dense_rows(const float* src, int64_t rows, int64_t cols, int64_t row_stride, int64_t column_stride,
                        std::vector<float>& buffer, int64_t* ld) {
  if (column_stride == 1) {
    *ld = row_stride;
    return src;
  }
  buffer.resize(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) buffer[size_t(r * cols + c)] = src[r * row_stride + c * column_stride];
  *ld = cols;
  return buffer.data();
}

void attention_block(const AttentionProblem& p, int64_t b, int64_t h, int64_t q0, int64_t q1) {
  const int64_t rows = q1 - q0, d = p.head_size, dv = p.value_size;
  const int64_t shift = p.key_length - p.query_length;  // causal alignment
  Scratch& s = scratch;
  s.scores.resize(size_t(rows * kKeyBlock));
  s.accumulator.resize(size_t(rows * dv));  // the first key block stores into it
  s.row_max.assign(size_t(rows), -std::numeric_limits<float>::infinity());
  s.row_sum.assign(size_t(rows), 0.f);
  s.scale.resize(size_t(rows));

  // Q scaled once into a dense copy, so the score product needs no alpha: the small products
  // below run on the batch-reduce kernel straight from their operands, with nothing packed per
  // call (at BERT's 128 tokens, packing and the GEMM driver were a third of attention's time).
  // The row loops here go through binary_f32, the ISA's vector kernels (this file is built
  // for plain x86-64: its own loops ran 4 lanes wide and were a tenth of BERT's attention time).
  s.q_copy.resize(size_t(rows * d));
  const float* q_src = p.q.data + b * p.q.batch_stride + h * p.q.head_stride + q0 * p.q.row_stride;
  binary_f32(BinaryKind::mul, rows, d, q_src, p.q.row_stride, p.q.column_stride, &p.scale, 0, 0, s.q_copy.data(), d);
  const float* q = s.q_copy.data();
  const float* k_base = p.k.data + b * p.k.batch_stride + h * p.k.head_stride;
  const float* v_base = p.v.data + b * p.v.batch_stride + h * p.v.head_stride;
  // Causal: no key beyond the last row's horizon is read at all.
  const int64_t key_end = p.causal ? std::min(p.key_length, q1 - 1 + shift + 1) : p.key_length;
  if (key_end <= 0) std::fill(s.accumulator.begin(), s.accumulator.end(), 0.f);
  for (int64_t k0 = 0; k0 < key_end; k0 += kKeyBlock) {
    const int64_t keys = std::min(kKeyBlock, key_end - k0);
    float* sc = s.scores.data();
    // scores = (scale Q) K^T with K^T [d, keys] as B: read as stored when K is kept transposed,
    // else the block transposed into scratch.
    const float* k = k_base + k0 * p.k.row_stride;
    const float* kt = k;
    int64_t ldkt = p.k.column_stride;
    if (p.k.row_stride != 1) {
      s.k_copy.resize(size_t(d * keys));
      if (p.k.column_stride == 1) {
        transpose_2d(keys, d, k, p.k.row_stride, s.k_copy.data(), keys, sizeof(float));
      } else {
        for (int64_t j = 0; j < keys; ++j)
          for (int64_t c = 0; c < d; ++c) s.k_copy[size_t(c * keys + j)] = k[j * p.k.row_stride + c * p.k.column_stride];
      }
      kt = s.k_copy.data();
      ldkt = keys;
    }
    brgemm_f32(rows, keys, d, 1, &q, d, &kt, ldkt, sc, keys, false);
    // Masks.
    if (p.additive_mask) {
      // One call for the block: the mask's row stride is 0 when it broadcasts over queries
      // (BERT's [batch, 1, 1, keys] padding mask); 128 one-row calls were 5% of BERT's attention.
      const int64_t first = b * p.mask_batch_stride + h * p.mask_head_stride + q0 * p.mask_row_stride +
                            k0 * p.mask_column_stride;
      binary_f32(BinaryKind::add, rows, keys, sc, keys, 1, p.additive_mask + first, p.mask_row_stride,
                 p.mask_column_stride, sc, keys);
    } else if (p.keep_mask) {
      const int64_t base = b * p.mask_batch_stride + h * p.mask_head_stride;
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t row = base + (q0 + i) * p.mask_row_stride + k0 * p.mask_column_stride;
        float* srow = sc + i * keys;
        const uint8_t* m = p.keep_mask + row;
        for (int64_t j = 0; j < keys; ++j)
          if ((m[j * p.mask_column_stride] != 0) != p.keep_where_true) srow[j] = p.fill;
      }
    }
    if (p.causal && k0 + keys - 1 > q0 + shift) {  // the block crosses the diagonal
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t last = q0 + i + shift;  // last key row i may see
        for (int64_t j = std::max<int64_t>(0, last + 1 - k0); j < keys; ++j)
          sc[i * keys + j] = -std::numeric_limits<float>::infinity();
      }
    }
    // Online softmax: new row maxima, this block exponentiated, and the factor that rescales
    // what earlier blocks accumulated (nothing to rescale on the first block: P V is stored).
    online_softmax_block_f32(rows, keys, sc, keys, s.row_max.data(), s.row_sum.data(), s.scale.data());
    const bool first_block = k0 == 0;
    if (!first_block)
      binary_f32(BinaryKind::mul, rows, dv, s.accumulator.data(), dv, 1, s.scale.data(), 1, 0, s.accumulator.data(),
                 dv);
    // accumulator (+)= P V.
    int64_t ldv;
    const float* v = dense_rows(v_base + k0 * p.v.row_stride, keys, dv, p.v.row_stride, p.v.column_stride, s.v_copy, &ldv);
    const float* p_block = sc;
    brgemm_f32(rows, dv, keys, 1, &p_block, keys, &v, ldv, s.accumulator.data(), dv, !first_block);
  }
  float* out = p.out + b * p.out_batch_stride + h * p.out_head_stride + q0 * p.out_row_stride;
  for (int64_t i = 0; i < rows; ++i)
    s.scale[size_t(i)] =
        s.row_sum[size_t(i)] > 0 ? 1.f / s.row_sum[size_t(i)] : std::numeric_limits<float>::quiet_NaN();
  binary_f32(BinaryKind::mul, rows, dv, s.accumulator.data(), dv, 1, s.scale.data(), 1, 0, out, p.out_row_stride);
}

}  // namespace

void attention_f32(const AttentionProblem& p, ThreadPool* pool) {
  if (p.batch <= 0 || p.heads <= 0 || p.query_length <= 0 || p.value_size <= 0) return;
  if (p.key_length <= 0 || p.head_size <= 0) {
    // No keys (or empty heads): a softmax over nothing; the unfused graph gives NaN rows too.
    for (int64_t b = 0; b < p.batch; ++b)
      for (int64_t h = 0; h < p.heads; ++h)
        for (int64_t i = 0; i < p.query_length; ++i)
          for (int64_t c = 0; c < p.value_size; ++c)
            p.out[b * p.out_batch_stride + h * p.out_head_stride + i * p.out_row_stride + c] =
                p.key_length <= 0 ? std::numeric_limits<float>::quiet_NaN() : 0.f;
    if (p.key_length <= 0 || p.value_size <= 0) return;
  }
  const int64_t q_blocks = (p.query_length + kQueryBlock - 1) / kQueryBlock;
  const int64_t tasks = p.batch * p.heads * q_blocks;
  auto run = [&](int64_t t) {
    const int64_t qb = t % q_blocks, bh = t / q_blocks;
    const int64_t q0 = qb * kQueryBlock;
    attention_block(p, bh / p.heads, bh % p.heads, q0, std::min(p.query_length, q0 + kQueryBlock));
  };
  if (!pool || pool->size() <= 1 || tasks == 1) {
    for (int64_t t = 0; t < tasks; ++t) run(t);
    return;
  }
  // Causal tasks late in the sequence read more keys: hand tasks out dynamically.
  pool->run_tasks(int(tasks), [&](int t) { run(t); });
}

void attention_reference_f32(const AttentionProblem& p) {
  const int64_t shift = p.key_length - p.query_length;
  std::vector<double> row(size_t(std::max<int64_t>(p.key_length, 1)));
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t h = 0; h < p.heads; ++h)
      for (int64_t i = 0; i < p.query_length; ++i) {
        double max = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < p.key_length; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < p.head_size; ++c)
            dot += double(p.q.data[b * p.q.batch_stride + h * p.q.head_stride + i * p.q.row_stride + c * p.q.column_stride]) *
                   p.k.data[b * p.k.batch_stride + h * p.k.head_stride + j * p.k.row_stride + c * p.k.column_stride];
          double score = double(p.scale) * dot;
          const int64_t m = b * p.mask_batch_stride + h * p.mask_head_stride + i * p.mask_row_stride + j * p.mask_column_stride;
          if (p.additive_mask) score += p.additive_mask[m];
          if (p.keep_mask && (p.keep_mask[m] != 0) != p.keep_where_true) score = p.fill;
          if (p.causal && j > i + shift) score = -std::numeric_limits<double>::infinity();
          row[size_t(j)] = score;
          max = std::max(max, score);
        }
        double sum = 0;
        for (int64_t j = 0; j < p.key_length; ++j) sum += row[size_t(j)] = std::exp(row[size_t(j)] - max);
        for (int64_t c = 0; c < p.value_size; ++c) {
          double acc = 0;
          for (int64_t j = 0; j < p.key_length; ++j)
            acc += row[size_t(j)] *
                   p.v.data[b * p.v.batch_stride + h * p.v.head_stride + j * p.v.row_stride + c * p.v.column_stride];
          p.out[b * p.out_batch_stride + h * p.out_head_stride + i * p.out_row_stride + c] = float(acc / sum);
        }
      }
}

}  // namespace tessera::primitives
