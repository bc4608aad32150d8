// AVX2 sparse kernels: 2-row x 32-column register tiles for CSR and N:M (also for one column),
// and complementary-sparsity routing with compare-and-mask adds.
#include <immintrin.h>

#include <algorithm>

#include "compression/sparse_gemm_vector.h"

namespace tessera::sparse::kernels_avx2 {

namespace {

struct Avx2 {
  using Reg = __m256;
  static constexpr int kLanes = 8;
  static __m256i tail_mask(int lanes) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg broadcast(float v) { return _mm256_set1_ps(v); }
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static Reg load_masked(const float* p, __m256i m) { return _mm256_maskload_ps(p, m); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static void store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  static void store_masked(float* p, __m256i m, Reg v) { _mm256_maskstore_ps(p, m, v); }
};

constexpr int kTileRows = 2, kTileVectors = 4;  // 8 accumulators of 16

// Complementary routing for sets of G rows, 8 sets at a time: accumulator g takes the products
// whose owner is g (compare, and, add); G <= 8 keeps them in registers.
template <int G>
void complementary_sets(const ComplementaryMatrix& w, int64_t k, const int32_t* indices, const float* values,
                        float* y) {
  for (int64_t s0 = 0; s0 < w.sets; s0 += 8) {
    __m256 acc[G];
    for (int g = 0; g < G; ++g) acc[g] = _mm256_setzero_ps();
    for (int64_t i = 0; i < k; ++i) {
      const int64_t base = int64_t(indices[i]) * w.set_stride + s0;
      const __m256 product = _mm256_mul_ps(_mm256_loadu_ps(w.packed.data() + base), _mm256_set1_ps(values[i]));
      if constexpr (G == 1) {
        acc[0] = _mm256_add_ps(acc[0], product);
      } else {
        const __m256i owner =
            _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w.owner.data() + base)));
#pragma GCC unroll 8
        for (int g = 0; g < G; ++g) {
          const __m256 selected =
              _mm256_and_ps(product, _mm256_castsi256_ps(_mm256_cmpeq_epi32(owner, _mm256_set1_epi32(g))));
          acc[g] = _mm256_add_ps(acc[g], selected);
        }
      }
    }
    alignas(32) float lanes[G][8];
    for (int g = 0; g < G; ++g) _mm256_store_ps(lanes[g], acc[g]);
    const int64_t sets = std::min<int64_t>(8, w.sets - s0);
    for (int64_t l = 0; l < sets; ++l)
      for (int g = 0; g < G; ++g) {
        const int64_t row = (s0 + l) * G + g;
        if (row < w.rows) y[row] = lanes[g][l];
      }
  }
}

void complementary_any(const ComplementaryMatrix& w, int64_t k, const int32_t* indices, const float* values,
                       float* y) {
  std::fill(y, y + w.rows, 0.f);
  alignas(32) float product[8];
  for (int64_t i = 0; i < k; ++i) {
    const int64_t base = int64_t(indices[i]) * w.set_stride;
    const __m256 v = _mm256_set1_ps(values[i]);
    for (int64_t s0 = 0; s0 < w.sets; s0 += 8) {
      _mm256_store_ps(product, _mm256_mul_ps(_mm256_loadu_ps(w.packed.data() + base + s0), v));
      const uint8_t* owner = w.owner.data() + base + s0;
      for (int64_t l = 0; l < std::min<int64_t>(8, w.sets - s0); ++l) y[(s0 + l) * w.set_size + owner[l]] += product[l];
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
  vector_kernels::block<Avx2, kTileRows, kTileVectors, CsrMatrix, vector_kernels::CsrTile>(
      w, row_begin, row_end, col_begin, col_end, x, ldx, y, ldy);
}

void n_of_m_block(const NOfMMatrix& w, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end,
                  const float* x, int64_t ldx, float* y, int64_t ldy) {
  vector_kernels::block<Avx2, kTileRows, kTileVectors, NOfMMatrix, vector_kernels::NOfMTile>(
      w, row_begin, row_end, col_begin, col_end, x, ldx, y, ldy);
}

void complementary_sample(const ComplementaryMatrix& w, int64_t k, const int32_t* indices, const float* values,
                          float* y) {
  complementary_dispatch(w, k, indices, values, y, std::make_integer_sequence<int, 8>());
}

void dense_kwta_sample(const float* w_transposed, int64_t rows, int64_t k, const int32_t* indices,
                       const float* values, float* y) {
  vector_kernels::dense_kwta<Avx2, 4>(w_transposed, rows, k, indices, values, y);
}

}  // namespace tessera::sparse::kernels_avx2
