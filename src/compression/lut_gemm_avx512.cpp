// LUT-GEMM on AVX-512: a group of 4 activations' 16-entry f32 table is one zmm, and vpermps looks
// it up for 16 output rows at once with the low nibble of each row's packed sign word (shifted by
// 4 for the next group). The tables are read as vpermps memory operands, shared by every row and
// plane; accumulators per row block, batch row and plane stay in registers over a group.
#include <immintrin.h>

#include <algorithm>

#include "compression/lut_gemm_kernels.h"

// GCC 12 reports the _mm512_undefined_* placeholders inside its own intrinsic headers as
// "may be used uninitialized" once inlined (as primitives/vector_math.h notes): false positives.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace tessera::compression::detail {

namespace {

constexpr int kLanes = PackedBcq::kRowBlock;

// For lane p: +1 when bit j of p is set, else -1.
__m512 sign_pattern(int j) {
  alignas(64) float s[16];
  for (int p = 0; p < 16; ++p) s[p] = (p >> j & 1) ? 1.f : -1.f;
  return _mm512_load_ps(s);
}

// R row blocks from `block`, B batch rows from `b0`, Q planes.
template <int Q, int B, int R>
void row_blocks(const LutGemmCall& call, int64_t block, int64_t b0) {
  const PackedBcq& w = *call.weights;
  const int64_t words = w.words_per_row(), groups = w.groups(), per_group = w.words_per_group();
  const int64_t table_stride = table_floats_per_row(w);
  const float* tables = call.tables + b0 * table_stride;
  const uint32_t* signs[R];
  const float* alphas[R];
  for (int r = 0; r < R; ++r) {
    signs[r] = w.block_signs(block + r);
    alphas[r] = w.block_alphas(block + r);
  }
  __m512 out[R][B];
  for (int r = 0; r < R; ++r)
    for (int b = 0; b < B; ++b) out[r][b] = _mm512_setzero_ps();

  for (int64_t g = 0; g < groups; ++g) {
    __m512 acc[R][B][Q];
    for (int r = 0; r < R; ++r)
      for (int b = 0; b < B; ++b)
        for (int i = 0; i < Q; ++i) acc[r][b][i] = _mm512_setzero_ps();
    const int64_t word_end = std::min(words, (g + 1) * per_group);
    for (int64_t word = g * per_group; word < word_end; ++word) {
      __m512i index[R][Q];
      for (int r = 0; r < R; ++r)
        for (int i = 0; i < Q; ++i) index[r][i] = _mm512_loadu_si512(signs[r] + (word * Q + i) * kLanes);
      const float* table = tables + word * 8 * kTableEntries;
      // Not unrolled: fully unrolled, GCC hoists the permutes of all 8 groups and spills them.
#pragma GCC unroll 1
      for (int j = 0; j < 8; ++j) {
#pragma GCC unroll 4
        for (int b = 0; b < B; ++b) {
          const __m512 t = _mm512_loadu_ps(table + b * table_stride + j * kTableEntries);
          for (int r = 0; r < R; ++r)
            for (int i = 0; i < Q; ++i) acc[r][b][i] = _mm512_add_ps(acc[r][b][i], _mm512_permutexvar_ps(index[r][i], t));
        }
        // vpermps reads bits 0-3 only: the next group's nibble comes down by 4.
        for (int r = 0; r < R; ++r)
            for (int i = 0; i < Q; ++i) index[r][i] = _mm512_srli_epi32(index[r][i], 4);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int i = 0; i < Q; ++i) {
        const __m512 alpha = _mm512_loadu_ps(alphas[r] + (g * Q + i) * kLanes);
        for (int b = 0; b < B; ++b) out[r][b] = _mm512_fmadd_ps(alpha, acc[r][b][i], out[r][b]);
      }
  }

  for (int r = 0; r < R; ++r) {
    const int64_t n0 = (block + r) * kLanes;
    const int64_t valid = std::min<int64_t>(kLanes, w.rows() - n0);
    const __mmask16 mask = valid >= 16 ? __mmask16(0xffff) : __mmask16((1u << valid) - 1);
    for (int b = 0; b < B; ++b) {
      __m512 v = out[r][b];
      if (call.bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, call.bias + n0));
      float* y = call.y + (b0 + b) * call.ldy + n0;
      if (call.accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, y));
      _mm512_mask_storeu_ps(y, mask, v);
    }
  }
}

// One row block, or two (`pair`) where the accumulators of both fit the registers: at batch 1
// and 2 the second block shares each table load and doubles the independent add chains.
template <int Q, int B>
void blocks_for_batch(const LutGemmCall& call, int64_t block, int64_t b0, bool pair) {
  if constexpr (B * Q <= 4) {
    if (pair) {
      row_blocks<Q, B, 2>(call, block, b0);
      return;
    }
  }
  row_blocks<Q, B, 1>(call, block, b0);
  if (pair) row_blocks<Q, B, 1>(call, block + 1, b0);
}

// Batch rows at most 4 at a time (their accumulators fill the registers); the signs of a block
// are then read again from L1 for the next 4.
template <int Q>
void row_blocks_for_planes(const LutGemmCall& call, int64_t block_begin, int64_t block_end) {
  for (int64_t block = block_begin; block < block_end;) {
    const bool pair = block + 1 < block_end;
    for (int64_t b0 = 0; b0 < call.batch; b0 += 4) {
      switch (std::min<int64_t>(4, call.batch - b0)) {
        case 1: blocks_for_batch<Q, 1>(call, block, b0, pair); break;
        case 2: blocks_for_batch<Q, 2>(call, block, b0, pair); break;
        case 3: blocks_for_batch<Q, 3>(call, block, b0, pair); break;
        default: blocks_for_batch<Q, 4>(call, block, b0, pair); break;
      }
    }
    block += pair ? 2 : 1;
  }
}

}  // namespace

void build_tables_avx512(const PackedBcq& w, int64_t rows, const float* x, int64_t ldx, float* tables) {
  const __m512 s0 = sign_pattern(0), s1 = sign_pattern(1), s2 = sign_pattern(2), s3 = sign_pattern(3);
  const int64_t groups4 = w.words_per_row() * 8, cols = w.cols(), full = cols / 4;
  for (int64_t b = 0; b < rows; ++b) {
    const float* xb = x + b * ldx;
    float* t = tables + b * groups4 * kTableEntries;
    for (int64_t c = 0; c < groups4; ++c) {
      float a[4] = {0.f, 0.f, 0.f, 0.f};
      if (c < full) {
        std::copy_n(xb + 4 * c, 4, a);
      } else {
        for (int j = 0; j < 4; ++j)
          if (4 * c + j < cols) a[j] = xb[4 * c + j];
      }
      __m512 v = _mm512_mul_ps(_mm512_set1_ps(a[0]), s0);
      v = _mm512_fmadd_ps(_mm512_set1_ps(a[1]), s1, v);
      v = _mm512_fmadd_ps(_mm512_set1_ps(a[2]), s2, v);
      v = _mm512_fmadd_ps(_mm512_set1_ps(a[3]), s3, v);
      _mm512_storeu_ps(t + c * kTableEntries, v);
    }
  }
}

void lut_row_blocks_avx512(const LutGemmCall& call, int64_t block_begin, int64_t block_end) {
  switch (call.weights->bits()) {
    case 1: row_blocks_for_planes<1>(call, block_begin, block_end); break;
    case 2: row_blocks_for_planes<2>(call, block_begin, block_end); break;
    case 3: row_blocks_for_planes<3>(call, block_begin, block_end); break;
    default: row_blocks_for_planes<4>(call, block_begin, block_end); break;
  }
}

}  // namespace tessera::compression::detail
