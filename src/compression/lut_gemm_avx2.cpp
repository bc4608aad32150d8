// LUT-GEMM on AVX2: vpermps on ymm has 8 entries, so a 16-entry table is two registers, both
// looked up with the nibble's low 3 bits and blended on its bit 3 (moved to the sign bit).
// Eight output rows at a time: the low or high half of a packed 16-row block.
#include <immintrin.h>

#include <algorithm>

#include "compression/lut_gemm_kernels.h"

namespace tessera::compression::detail {

namespace {

constexpr int kLanes = PackedBcq::kRowBlock;

__m256 sign_pattern(int j, int half) {
  float s[8];
  for (int p = 0; p < 8; ++p) s[p] = ((p + 8 * half) >> j & 1) ? 1.f : -1.f;
  return _mm256_loadu_ps(s);
}

// Rows 8 half .. 8 half + 7 of `block`, B batch rows from b0.
template <int Q, int B>
void half_block(const LutGemmCall& call, int64_t block, int half, int64_t b0) {
  const PackedBcq& w = *call.weights;
  const int64_t words = w.words_per_row(), groups = w.groups(), per_group = w.words_per_group();
  const int64_t table_stride = table_floats_per_row(w);
  const float* tables = call.tables + b0 * table_stride;
  const uint32_t* signs = w.block_signs(block) + 8 * half;
  const float* alphas = w.block_alphas(block) + 8 * half;
  __m256 out[B];
  for (int b = 0; b < B; ++b) out[b] = _mm256_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    __m256 acc[B][Q];
    for (int b = 0; b < B; ++b)
      for (int i = 0; i < Q; ++i) acc[b][i] = _mm256_setzero_ps();
    const int64_t word_end = std::min(words, (g + 1) * per_group);
    for (int64_t word = g * per_group; word < word_end; ++word) {
      __m256i index[Q];
      for (int i = 0; i < Q; ++i)
        index[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(signs + (word * Q + i) * kLanes));
      const float* table = tables + word * 8 * kTableEntries;
      // Not unrolled: fully unrolled, GCC hoists the lookups of all 8 groups and spills them.
#pragma GCC unroll 1
      for (int j = 0; j < 8; ++j) {
        for (int i = 0; i < Q; ++i) {
          const __m256 high = _mm256_castsi256_ps(_mm256_slli_epi32(index[i], 28));  // bit 3 -> sign
          for (int b = 0; b < B; ++b) {
            const float* t = table + b * table_stride + j * kTableEntries;
            const __m256 lo = _mm256_permutevar8x32_ps(_mm256_loadu_ps(t), index[i]);
            const __m256 hi = _mm256_permutevar8x32_ps(_mm256_loadu_ps(t + 8), index[i]);
            acc[b][i] = _mm256_add_ps(acc[b][i], _mm256_blendv_ps(lo, hi, high));
          }
        }
        for (int i = 0; i < Q; ++i) index[i] = _mm256_srli_epi32(index[i], 4);
      }
    }
    for (int i = 0; i < Q; ++i) {
      const __m256 alpha = _mm256_loadu_ps(alphas + (g * Q + i) * kLanes);
      for (int b = 0; b < B; ++b) out[b] = _mm256_fmadd_ps(alpha, acc[b][i], out[b]);
    }
  }
  const int64_t n0 = block * kLanes + 8 * half;
  const int64_t valid = std::min<int64_t>(8, w.rows() - n0);
  if (valid <= 0) return;
  for (int b = 0; b < B; ++b) {
    alignas(32) float v[8];
    _mm256_store_ps(v, out[b]);
    float* y = call.y + (b0 + b) * call.ldy + n0;
    for (int64_t l = 0; l < valid; ++l) {
      float s = v[l];
      if (call.bias) s += call.bias[n0 + l];
      y[l] = call.accumulate ? y[l] + s : s;
    }
  }
}

// Batch rows per pass: as many as keep accumulators, indices and temporaries in 16 registers.
template <int Q>
void row_blocks_for_planes(const LutGemmCall& call, int64_t block_begin, int64_t block_end) {
  constexpr int kBatchStep = Q <= 2 ? 3 : Q == 3 ? 2 : 1;
  for (int64_t block = block_begin; block < block_end; ++block)
    for (int half = 0; half < 2; ++half) {
      if (block * kLanes + 8 * half >= call.weights->rows()) break;
      for (int64_t b0 = 0; b0 < call.batch; b0 += kBatchStep) {
        switch (std::min<int64_t>(kBatchStep, call.batch - b0)) {
          case 1: half_block<Q, 1>(call, block, half, b0); break;
          case 2: half_block<Q, (kBatchStep >= 2 ? 2 : 1)>(call, block, half, b0); break;
          default: half_block<Q, kBatchStep>(call, block, half, b0); break;
        }
      }
    }
}

}  // namespace

void build_tables_avx2(const PackedBcq& w, int64_t rows, const float* x, int64_t ldx, float* tables) {
  __m256 s[2][4];
  for (int half = 0; half < 2; ++half)
    for (int j = 0; j < 4; ++j) s[half][j] = sign_pattern(j, half);
  const int64_t groups4 = w.words_per_row() * 8, cols = w.cols();
  for (int64_t b = 0; b < rows; ++b) {
    const float* xb = x + b * ldx;
    float* t = tables + b * groups4 * kTableEntries;
    for (int64_t c = 0; c < groups4; ++c) {
      float a[4] = {0.f, 0.f, 0.f, 0.f};
      for (int j = 0; j < 4; ++j)
        if (4 * c + j < cols) a[j] = xb[4 * c + j];
      for (int half = 0; half < 2; ++half) {
        __m256 v = _mm256_mul_ps(_mm256_set1_ps(a[0]), s[half][0]);
        for (int j = 1; j < 4; ++j) v = _mm256_fmadd_ps(_mm256_set1_ps(a[j]), s[half][j], v);
        _mm256_storeu_ps(t + c * kTableEntries + 8 * half, v);
      }
    }
  }
}

void lut_row_blocks_avx2(const LutGemmCall& call, int64_t block_begin, int64_t block_end) {
  switch (call.weights->bits()) {
    case 1: row_blocks_for_planes<1>(call, block_begin, block_end); break;
    case 2: row_blocks_for_planes<2>(call, block_begin, block_end); break;
    case 3: row_blocks_for_planes<3>(call, block_begin, block_end); break;
    default: row_blocks_for_planes<4>(call, block_begin, block_end); break;
  }
}

}  // namespace tessera::compression::detail
