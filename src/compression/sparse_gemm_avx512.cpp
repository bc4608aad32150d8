// AVX-512 sparse kernels: 4-row x 64-column register tiles for CSR and N:M, gathers for the
// one-column (GEMV) case, and complementary-sparsity routing with masked adds.
#include <immintrin.h>

#include <algorithm>
#include <climits>

#include "compression/sparse_gemm_vector.h"

namespace tessera::sparse::kernels_avx512 {

namespace {

struct Avx512 {
  using Reg = __m512;
  static constexpr int kLanes = 16;
  static __mmask16 tail_mask(int lanes) { return __mmask16((1u << lanes) - 1u); }
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg broadcast(float v) { return _mm512_set1_ps(v); }
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static Reg load_masked(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static void store(float* p, Reg v) { _mm512_storeu_ps(p, v); }
  static void store_masked(float* p, __mmask16 m, Reg v) { _mm512_mask_storeu_ps(p, m, v); }
};

constexpr int kTileRows = 4, kTileVectors = 4;  // 16 accumulators of 32

// The sum of the 16 lanes (GCC 12's _mm512_reduce_add_ps trips -Wmaybe-uninitialized).
float horizontal_sum(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float sum = 0.f;
  for (float lane : lanes) sum += lane;
  return sum;
}

// True when column * ldx fits the 32-bit gather indices for every column of the matrix.
bool gather_indices_fit(int64_t cols, int64_t ldx) { return cols * ldx < int64_t(INT32_MAX); }

// One output column (a GEMV): per row, 16 non-zeros at a time, their inputs gathered.
void csr_single_column(const CsrMatrix& w, int64_t row_begin, int64_t row_end, const float* x, int64_t ldx,
                       float* y, int64_t ldy) {
  const __m512i stride = _mm512_set1_epi32(int32_t(ldx));
  for (int64_t r = row_begin; r < row_end; ++r) {
    __m512 acc = _mm512_setzero_ps();
    const int64_t begin = w.row_start[size_t(r)], end = w.row_start[size_t(r + 1)];
    for (int64_t i = begin; i < end; i += 16) {
      const __mmask16 m = __mmask16((1u << std::min<int64_t>(16, end - i)) - 1u);
      __m512i index = _mm512_maskz_loadu_epi32(m, w.column.data() + i);
      if (ldx != 1) index = _mm512_mullo_epi32(index, stride);
      const __m512 in = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, index, x, 4);
      acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w.value.data() + i), in, acc);
    }
    y[r * ldy] = horizontal_sum(acc);
  }
}

// The N:M GEMV: slot s of a row is in group s / n, so 16 slots' columns are a per-lane constant
// plus the offsets (n divides 16).
void n_of_m_single_column(const NOfMMatrix& w, int64_t row_begin, int64_t row_end, const float* x, int64_t ldx,
                          float* y, int64_t ldy) {
  const int n = w.n, m = w.m;
  alignas(64) int32_t lane_base[16];
  for (int l = 0; l < 16; ++l) lane_base[l] = (l / n) * m;
  const __m512i lane_columns = _mm512_load_si512(lane_base);
  const __m512i stride = _mm512_set1_epi32(int32_t(ldx));
  const int64_t per_row = w.entries_per_row();
  for (int64_t r = row_begin; r < row_end; ++r) {
    const float* values = w.value.data() + r * per_row;
    const uint8_t* offsets = w.offset.data() + r * per_row;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t s = 0; s < per_row; s += 16) {
      const __mmask16 mask = __mmask16((1u << std::min<int64_t>(16, per_row - s)) - 1u);
      const __m512i offset = _mm512_maskz_cvtepu8_epi32(0xFFFF, _mm_maskz_loadu_epi8(mask, offsets + s));
      __m512i index = _mm512_add_epi32(_mm512_add_epi32(lane_columns, _mm512_set1_epi32(int32_t(s / n * m))), offset);
      if (ldx != 1) index = _mm512_mullo_epi32(index, stride);
      const __m512 in = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, index, x, 4);
      acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, values + s), in, acc);
    }
    y[r * ldy] = horizontal_sum(acc);
  }
}

// Complementary routing for sets of G rows: per 16 sets, the product of one active input with its
// packed row is computed densely and added into accumulator g where owner == g (G masked adds);
// the G accumulators stay in registers over all active inputs.
template <int G>
void complementary_sets(const ComplementaryMatrix& w, int64_t k, const int32_t* indices, const float* values,
                        float* y) {
  for (int64_t s0 = 0; s0 < w.sets; s0 += 16) {
    __m512 acc[G];
    for (int g = 0; g < G; ++g) acc[g] = _mm512_setzero_ps();
    for (int64_t i = 0; i < k; ++i) {
      const int64_t base = int64_t(indices[i]) * w.set_stride + s0;
      const __m512 product = _mm512_mul_ps(_mm512_loadu_ps(w.packed.data() + base), _mm512_set1_ps(values[i]));
      if constexpr (G == 1) {
        acc[0] = _mm512_add_ps(acc[0], product);
      } else {
        const __m512i owner =
            _mm512_maskz_cvtepu8_epi32(0xFFFF, _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.owner.data() + base)));
#pragma GCC unroll 16
        for (int g = 0; g < G; ++g)
          acc[g] = _mm512_mask_add_ps(acc[g], _mm512_cmpeq_epi32_mask(owner, _mm512_set1_epi32(g)), acc[g], product);
      }
    }
    alignas(64) float lanes[G][16];
    for (int g = 0; g < G; ++g) _mm512_store_ps(lanes[g], acc[g]);
    const int64_t sets = std::min<int64_t>(16, w.sets - s0);
    for (int64_t l = 0; l < sets; ++l)
      for (int g = 0; g < G; ++g) {
        const int64_t row = (s0 + l) * G + g;
        if (row < w.rows) y[row] = lanes[g][l];
      }
  }
}

// Sets larger than 16 rows: products computed 16 sets at a time, routed one by one.
void complementary_any(const ComplementaryMatrix& w, int64_t k, const int32_t* indices, const float* values,
                       float* y) {
  std::fill(y, y + w.rows, 0.f);
  alignas(64) float product[16];
  for (int64_t i = 0; i < k; ++i) {
    const int64_t base = int64_t(indices[i]) * w.set_stride;
    const __m512 v = _mm512_set1_ps(values[i]);
    for (int64_t s0 = 0; s0 < w.sets; s0 += 16) {
      _mm512_store_ps(product, _mm512_mul_ps(_mm512_loadu_ps(w.packed.data() + base + s0), v));
      const uint8_t* owner = w.owner.data() + base + s0;
      for (int64_t l = 0; l < std::min<int64_t>(16, w.sets - s0); ++l) y[(s0 + l) * w.set_size + owner[l]] += product[l];
    }
  }
}

template <int... gs>
void complementary_dispatch(const ComplementaryMatrix& w, int64_t k, const int32_t* indices, const float* values,
                            float* y, std::integer_sequence<int, gs...>) {
  bool done = false;
  ((w.set_size == gs + 1 ? (complementary_sets<gs + 1>(w, k, indices, values, y), done = true) : false), ...);
  if (!done) complementary_any(w, k, indices, values, y);
}

}  // namespace

void csr_block(const CsrMatrix& w, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end,
               const float* x, int64_t ldx, float* y, int64_t ldy) {
  if (col_end - col_begin == 1 && gather_indices_fit(w.cols, ldx))
    return csr_single_column(w, row_begin, row_end, x + col_begin, ldx, y + col_begin, ldy);
  vector_kernels::block<Avx512, kTileRows, kTileVectors, CsrMatrix, vector_kernels::CsrTile>(
      w, row_begin, row_end, col_begin, col_end, x, ldx, y, ldy);
}

void n_of_m_block(const NOfMMatrix& w, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end,
                  const float* x, int64_t ldx, float* y, int64_t ldy) {
  if (col_end - col_begin == 1 && 16 % w.n == 0 && gather_indices_fit(w.groups() * w.m, ldx))
    return n_of_m_single_column(w, row_begin, row_end, x + col_begin, ldx, y + col_begin, ldy);
  vector_kernels::block<Avx512, kTileRows, kTileVectors, NOfMMatrix, vector_kernels::NOfMTile>(
      w, row_begin, row_end, col_begin, col_end, x, ldx, y, ldy);
}

void complementary_sample(const ComplementaryMatrix& w, int64_t k, const int32_t* indices, const float* values,
                          float* y) {
  complementary_dispatch(w, k, indices, values, y, std::make_integer_sequence<int, 16>());
}

void dense_kwta_sample(const float* w_transposed, int64_t rows, int64_t k, const int32_t* indices,
                       const float* values, float* y) {
  vector_kernels::dense_kwta<Avx512, 8>(w_transposed, rows, k, indices, values, y);
}

}  // namespace tessera::sparse::kernels_avx512
