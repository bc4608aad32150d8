// The AVX2 GEMM microkernel: a 6 x 16 register tile (12 ymm accumulators), A broadcast one
// element at a time, B read as two 8-float vectors per k, with the epilogue fused into the store.
#include <immintrin.h>

#include <utility>

#include "primitives/vector_activation.h"

namespace tessera::primitives::detail {

namespace {

// 6 rows x 2 vectors = 12 accumulators + 2 B vectors + 1 broadcast = 15 of the 16 ymm.
constexpr int kRows = 6;
constexpr int kVectors = 2;
constexpr int kLanes = 8;

// Lane i is active when i < count (AVX2 masks are sign bits of 32-bit lanes).
inline __m256i lanes_mask(int count) {
  const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), index);
}

template <int ROWS, int NV, bool PACKED_A, bool MASK_B>
inline void accumulate(__m256 (&acc)[ROWS][NV], const float* a, int64_t lda, const float* b,
                       int64_t b_row_stride, int64_t b_vector_offset, int64_t k, __m256i last_mask) {
#pragma GCC unroll 4
  for (int64_t kk = 0; kk < k; ++kk) {
    __m256 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      const float* src = b + v * b_vector_offset;
      bv[v] = (MASK_B && v == NV - 1) ? _mm256_maskload_ps(src, last_mask) : _mm256_loadu_ps(src);
    }
#pragma GCC unroll 6
    for (int r = 0; r < ROWS; ++r) {
      const __m256 av = _mm256_broadcast_ss(PACKED_A ? a + r : a + r * lda);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
    }
    a += PACKED_A ? kRows : 1;
    b += b_row_stride;
  }
}

// beta * C + product + bias + residual for vector v of row r of the tile.
template <int NV>
inline __m256 combine(const GemmTileArgs& t, __m256 x, int r, int v, int last_count, __m256i last_mask) {
  const bool partial = v == NV - 1 && last_count < kLanes;
  auto load = [&](const float* p) { return partial ? _mm256_maskload_ps(p, last_mask) : _mm256_loadu_ps(p); };
  const float* c = t.c + r * t.ldc + v * kLanes;
  if (t.beta == 1.f)
    x = _mm256_add_ps(x, load(c));
  else if (t.beta != 0.f)
    x = _mm256_fmadd_ps(_mm256_set1_ps(t.beta), load(c), x);
  if (const GemmEpilogue* e = t.epilogue) {
    const int64_t row = t.row0 + r, col = t.col0 + v * kLanes;
    if (e->bias_per_column) x = _mm256_add_ps(x, load(e->bias_per_column + col));
    if (e->bias_per_row) x = _mm256_add_ps(x, _mm256_set1_ps(e->bias_per_row[row]));
    if (e->residual) x = _mm256_add_ps(x, load(e->residual + row * e->ld_residual + col));
  }
  return x;
}

template <int NV>
inline void store(const GemmTileArgs& t, __m256 x, int r, int v, int last_count, __m256i last_mask) {
  float* c = t.c + r * t.ldc + v * kLanes;
  if (v == NV - 1 && last_count < kLanes)
    _mm256_maskstore_ps(c, last_mask, x);
  else
    _mm256_storeu_ps(c, x);
}

template <int ROWS, int NV, bool PACKED_A>
void tile(const GemmTileArgs& t) {
  __m256 acc[ROWS][NV];
#pragma GCC unroll 6
  for (int r = 0; r < ROWS; ++r) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();
  }
  // The C tile is needed only at the end; start fetching it so the store step does not stall.
  for (int r = 0; r < ROWS; ++r) {
    const char* row = reinterpret_cast<const char*>(t.c + r * t.ldc);
    _mm_prefetch(row, _MM_HINT_T0);
    _mm_prefetch(row + 60, _MM_HINT_T0);
  }
  const int last_count = t.cols - kLanes * (NV - 1);
  const __m256i last_mask = lanes_mask(last_count);
  const bool mask_b = !t.b_padded && last_count < kLanes;
  for (int64_t b = 0; b < t.batch; ++b) {
    const float* a = t.a_batch[b] + t.a_offset;
    const float* bp = t.b_batch[b] + t.b_offset;
    if (mask_b) {
      accumulate<ROWS, NV, PACKED_A, true>(acc, a, t.a_row_stride, bp, t.b_row_stride, t.b_vector_offset, t.k,
                                           last_mask);
    } else {
      accumulate<ROWS, NV, PACKED_A, false>(acc, a, t.a_row_stride, bp, t.b_row_stride, t.b_vector_offset,
                                            t.k, last_mask);
    }
  }

  const GemmEpilogue* e = t.epilogue;
  if (e && e->activation.kind != UnaryKind::identity) {
    // A copy for the activation call, so the accumulators' address never escapes.
    __m256 out[ROWS * NV];
#pragma GCC unroll 6
    for (int r = 0; r < ROWS; ++r) {
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) {
        out[r * NV + v] = combine<NV>(t, acc[r][v], r, v, last_count, last_mask);
      }
    }
    activation_avx2(e->activation, out, ROWS * NV);
    for (int r = 0; r < ROWS; ++r) {
      for (int v = 0; v < NV; ++v) store<NV>(t, out[r * NV + v], r, v, last_count, last_mask);
    }
  } else if (t.beta != 0.f || e) {
#pragma GCC unroll 6
    for (int r = 0; r < ROWS; ++r) {
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) {
        store<NV>(t, combine<NV>(t, acc[r][v], r, v, last_count, last_mask), r, v, last_count, last_mask);
      }
    }
  } else {
#pragma GCC unroll 6
    for (int r = 0; r < ROWS; ++r) {
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) store<NV>(t, acc[r][v], r, v, last_count, last_mask);
    }
  }
}

// Transposes the 8 x 8 block in v (v[r] = row r) so that v[c] = column c.
inline void transpose8(__m256 (&v)[8]) {
  __m256 t[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]);
  }
  // v[4i + j], 128-bit lane L: rows 4i..4i+3 of column 4L + j.
  for (int i = 0; i < 2; ++i) {
    v[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    v[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
    v[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    v[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
  }
  for (int j = 0; j < 4; ++j) {
    t[j] = _mm256_permute2f128_ps(v[j], v[4 + j], 0x20);
    t[4 + j] = _mm256_permute2f128_ps(v[j], v[4 + j], 0x31);
  }
  for (int c = 0; c < 8; ++c) v[c] = t[c];
}

// A packing for the 6-row tiles: 8 k at a time through an in-register transpose.
void pack_a_avx2(const float* a, int64_t lda, bool transposed, int64_t rows, int64_t depth, float alpha,
                 float* out) {
  const __m256 scale = _mm256_set1_ps(alpha);
  const bool scaled = alpha != 1.f;
  for (int64_t i0 = 0; i0 < rows; i0 += kRows) {
    const int height = int(rows - i0 < kRows ? rows - i0 : kRows);
    float* panel = out + (i0 / kRows) * depth * kRows;
    const __m256i row_mask = lanes_mask(height);
    if (transposed) {
      for (int64_t k = 0; k < depth; ++k) {
        __m256 v = _mm256_maskload_ps(a + k * lda + i0, row_mask);
        if (scaled) v = _mm256_mul_ps(v, scale);
        _mm256_maskstore_ps(panel + k * kRows, row_mask, v);
      }
      continue;
    }
    for (int64_t k0 = 0; k0 < depth; k0 += kLanes) {
      const int width = int(depth - k0 < kLanes ? depth - k0 : kLanes);
      const __m256i k_mask = lanes_mask(width);
      __m256 v[8];
      for (int r = 0; r < 8; ++r) {
        v[r] = r < height ? _mm256_maskload_ps(a + (i0 + r) * lda + k0, k_mask) : _mm256_setzero_ps();
        if (scaled) v[r] = _mm256_mul_ps(v[r], scale);
      }
      transpose8(v);
      for (int j = 0; j < width; ++j) _mm256_maskstore_ps(panel + (k0 + j) * kRows, row_mask, v[j]);
    }
  }
}

using TileFn = void (*)(const GemmTileArgs&);

// One instantiation per row count; plain arrays, so no library template is instantiated here.
template <bool PACKED_A, int NV, typename Sequence>
struct RowTiles;
template <bool PACKED_A, int NV, int... R>
struct RowTiles<PACKED_A, NV, std::integer_sequence<int, R...>> {
  static constexpr TileFn by_rows[sizeof...(R)] = {&tile<R + 1, NV, PACKED_A>...};
};
using AllRows = std::make_integer_sequence<int, kRows>;

void tile_avx2(const GemmTileArgs& t) {
  if (t.rows <= 0 || t.cols <= 0) return;
  const int index = t.rows - 1;
  const bool two = t.cols > kLanes;
  if (t.a_packed) {
    (two ? RowTiles<true, 2, AllRows>::by_rows : RowTiles<true, 1, AllRows>::by_rows)[index](t);
  } else {
    (two ? RowTiles<false, 2, AllRows>::by_rows : RowTiles<false, 1, AllRows>::by_rows)[index](t);
  }
}

// Thread-level ABFT sums of a packed micro-panel: its k-slices of up to 6 rows are one masked
// vector each, so a check costs one load and one FMA per k next to the tile's twelve.
void tile_reference_avx2(const float* a, int mr, int rows, int64_t depth, const float* b_sum, float* reference) {
  if (rows > kLanes) return tile_reference_scalar(a, mr, rows, depth, b_sum, reference);
  const __m256i mask = lanes_mask(rows);
  __m256 ref = _mm256_setzero_ps();
  for (int64_t k = 0; k < depth; ++k)
    ref = _mm256_fmadd_ps(_mm256_maskload_ps(a + k * mr, mask), _mm256_set1_ps(b_sum[k]), ref);
  _mm256_maskstore_ps(reference, mask, _mm256_add_ps(_mm256_maskload_ps(reference, mask), ref));
}

void dot2_avx2(int64_t n, const float* a, const float* x, const float* y, float* s, float* t) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  __m256 sum = _mm256_setzero_ps(), magnitude = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256 v = _mm256_loadu_ps(a + i);
    sum = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + i), sum);
    magnitude = _mm256_fmadd_ps(_mm256_andnot_ps(sign, v), _mm256_loadu_ps(y + i), magnitude);
  }
  float lanes[kLanes], magnitude_lanes[kLanes];
  _mm256_storeu_ps(lanes, sum);
  _mm256_storeu_ps(magnitude_lanes, magnitude);
  float tail_s, tail_t;
  dot2_scalar(n - i, a + i, x + i, y + i, &tail_s, &tail_t);
  for (int j = 0; j < kLanes; ++j) {
    tail_s += lanes[j];
    tail_t += magnitude_lanes[j];
  }
  *s = tail_s;
  *t = tail_t;
}

void axpy2_avx2(int64_t n, const float* a, float s, float t, float* out1, float* out2) {
  const __m256 sign = _mm256_set1_ps(-0.f), vs = _mm256_set1_ps(s), vt = _mm256_set1_ps(t);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256 v = _mm256_loadu_ps(a + i);
    _mm256_storeu_ps(out1 + i, _mm256_fmadd_ps(vs, v, _mm256_loadu_ps(out1 + i)));
    _mm256_storeu_ps(out2 + i, _mm256_fmadd_ps(vt, _mm256_andnot_ps(sign, v), _mm256_loadu_ps(out2 + i)));
  }
  axpy2_scalar(n - i, a + i, s, t, out1 + i, out2 + i);
}

}  // namespace

constinit const GemmKernel kGemmAvx2 = {kRows, kVectors* kLanes, kLanes, tile_avx2, pack_a_avx2, false,
                                        tile_reference_avx2, panel_row_sums_scalar, column_reference_scalar,
                                        dot2_avx2, axpy2_avx2, tile_column_sums_scalar,
                                        tile_partial_row_sums_scalar, tile_row_sums_scalar};

}  // namespace tessera::primitives::detail
