// The AVX-512 GEMM microkernel: a 14 x 32 register tile (28 zmm accumulators), A broadcast one
// element at a time, B read as two 16-float vectors per k, with the epilogue fused into the store.
#include <immintrin.h>

#include <utility>

#include "primitives/vector_activation.h"

namespace tessera::primitives::detail {

namespace {

// 14 rows x 2 vectors = 28 accumulators + 2 B vectors + 1 broadcast fit the 32 zmm registers;
// per k that is 28 FMAs against 16 loads, which keeps both FMA ports busy.
constexpr int kRows = 14;
constexpr int kVectors = 2;
constexpr int kLanes = 16;

inline __mmask16 lanes_mask(int count) {
  return count >= kLanes ? __mmask16(0xffff) : __mmask16((1u << count) - 1);
}

// One k step of the tile: acc += A(:, kk) B(kk, :).
template <int ROWS, int NV, bool PACKED_A, bool MASK_B>
inline void multiply_add_step(__m512 (&acc)[ROWS][NV], const float* a, int64_t lda, const float* b,
                              int64_t b_vector_offset, __mmask16 last_mask) {
  __m512 bv[NV];
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) {
    const float* src = b + v * b_vector_offset;
    bv[v] = (MASK_B && v == NV - 1) ? _mm512_maskz_loadu_ps(last_mask, src) : _mm512_loadu_ps(src);
  }
#pragma GCC unroll 14
  for (int r = 0; r < ROWS; ++r) {
    const __m512 av = _mm512_set1_ps(PACKED_A ? a[r] : a[r * lda]);
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
  }
}

// Accumulates depth k of one (A, B) pair into acc. A is either a packed micro-panel
// (a[kk * kRows + r]) or row-major (a[r * lda + kk]); B rows are b_row_stride apart.
// With CHECK (packed A only), the thread-level ABFT checksum rides along in a 29th accumulator:
// each k-slice of the A micro-panel is one masked vector, so check += slice * b_sum[kk] is one
// FMA beside the tile's 28, and the 32 registers still hold everything.
template <int ROWS, int NV, bool PACKED_A, bool MASK_B, bool CHECK = false>
inline void accumulate(__m512 (&acc)[ROWS][NV], const float* a, int64_t lda, const float* b,
                       int64_t b_row_stride, int64_t b_vector_offset, int64_t k, __mmask16 last_mask,
                       const float* b_sum = nullptr, __m512* check = nullptr) {
  if constexpr (ROWS * NV < 8 && !CHECK) {
    // Fewer than 8 accumulators cannot hide the FMA latency (4 cycles on 2 ports): a 2-row tail
    // tile ran at half the rate. Even and odd k go to two sets, added at the end.
    __m512 odd[ROWS][NV];
    for (int r = 0; r < ROWS; ++r)
      for (int v = 0; v < NV; ++v) odd[r][v] = _mm512_setzero_ps();
    const int64_t a_step = PACKED_A ? kRows : 1;
    int64_t kk = 0;
    for (; kk + 2 <= k; kk += 2) {
      multiply_add_step<ROWS, NV, PACKED_A, MASK_B>(acc, a, lda, b, b_vector_offset, last_mask);
      multiply_add_step<ROWS, NV, PACKED_A, MASK_B>(odd, a + a_step, lda, b + b_row_stride, b_vector_offset,
                                                    last_mask);
      a += 2 * a_step;
      b += 2 * b_row_stride;
    }
    if (kk < k) multiply_add_step<ROWS, NV, PACKED_A, MASK_B>(acc, a, lda, b, b_vector_offset, last_mask);
    for (int r = 0; r < ROWS; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_add_ps(acc[r][v], odd[r][v]);
    return;
  }
#pragma GCC unroll 4
  for (int64_t kk = 0; kk < k; ++kk) {
    multiply_add_step<ROWS, NV, PACKED_A, MASK_B>(acc, a, lda, b, b_vector_offset, last_mask);
    if constexpr (CHECK) {
      *check = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(lanes_mask(ROWS), a), _mm512_set1_ps(b_sum[kk]), *check);
    }
    a += PACKED_A ? kRows : 1;
    b += b_row_stride;
  }
}

// beta * C + product + bias + residual for vector v of row r of the tile.
template <int NV>
inline __m512 add_old_c(const GemmTileArgs& t, float beta, __m512 x, int r, int v, __mmask16 last_mask) {
  const __mmask16 m = v == NV - 1 ? last_mask : __mmask16(0xffff);
  const float* c = t.c + r * t.ldc + v * kLanes;
  if (beta == 1.f) return _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, c));
  if (beta != 0.f) return _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(m, c), x);
  return x;
}

template <int NV>
inline __m512 combine(const GemmTileArgs& t, float beta, __m512 x, int r, int v, __mmask16 last_mask) {
  const __mmask16 m = v == NV - 1 ? last_mask : __mmask16(0xffff);
  x = add_old_c<NV>(t, beta, x, r, v, last_mask);
  if (const GemmEpilogue* e = t.epilogue) {
    const int64_t row = t.row0 + r, col = t.col0 + v * kLanes;
    if (e->bias_per_column) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, e->bias_per_column + col));
    if (e->bias_per_row) x = _mm512_add_ps(x, _mm512_set1_ps(e->bias_per_row[row]));
    if (e->residual) {
      x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, e->residual + row * e->ld_residual + col));
    }
  }
  return x;
}

template <int NV>
inline void store(const GemmTileArgs& t, __m512 x, int r, int v, int last_count, __mmask16 last_mask) {
  float* c = t.c + r * t.ldc + v * kLanes;
  if (v == NV - 1 && last_count < kLanes)
    _mm512_mask_storeu_ps(c, last_mask, x);
  else
    _mm512_storeu_ps(c, x);
}

// Requests `lines` contiguous cache lines from `line` on into L2.
inline void prefetch_to_l2(const char* line, int64_t lines) {
  for (; lines > 0; --lines, line += 64) _mm_prefetch(line, _MM_HINT_T1);
}

template <int ROWS, int NV, bool PACKED_A, bool CHECK = false>
void tile(const GemmTileArgs& t) {
  __m512 acc[ROWS][NV];
#pragma GCC unroll 14
  for (int r = 0; r < ROWS; ++r) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  // Start pulling the C tile in now: with large C it comes from L3 or memory, and waiting for
  // 28+ lines in the store step would stall the FMA ports for hundreds of cycles.
  for (int r = 0; r < ROWS; ++r) {
    const char* row = reinterpret_cast<const char*>(t.c + r * t.ldc);
    _mm_prefetch(row, _MM_HINT_T0);
    _mm_prefetch(row + 64, _MM_HINT_T0);
    if (NV == 2) _mm_prefetch(row + 124, _MM_HINT_T0);  // a third line when the row is unaligned
  }
  const int last_count = t.cols - kLanes * (NV - 1);
  const __mmask16 last_mask = lanes_mask(last_count);
  // Packed panels are zero padded past N; in-place B must not be read past the tile.
  const bool mask_b = !t.b_padded && last_count < kLanes;
  if constexpr (CHECK) {
    // Checked tiles come from the packed driver: one (A, B) pair, padded B.
    __m512 check = _mm512_setzero_ps();
    accumulate<ROWS, NV, true, false, true>(acc, t.a_batch[0] + t.a_offset, t.a_row_stride,
                                            t.b_batch[0] + t.b_offset, t.b_row_stride, t.b_vector_offset, t.k,
                                            last_mask, t.check_b_sum, &check);
    const __mmask16 rows = lanes_mask(ROWS);
    _mm512_mask_storeu_ps(t.check_reference, rows,
                          _mm512_add_ps(_mm512_maskz_loadu_ps(rows, t.check_reference), check));
  } else if (t.prefetch_lines > 0 && t.batch == 1 && ROWS * NV >= 8 && t.k > 0) {
    // Prefetches between short runs of the same accumulation (see `per_run` below). Tiles of
    // fewer than 8 accumulators sum two sets at the end of each run (accumulate), so splitting
    // their k loop would change their rounding with the prefetch (which the dynamic column chunks
    // hand out by timing): they take the plain path and issue the prefetch after it.
    const float* a = t.a_batch[0] + t.a_offset;
    const float* bp = t.b_batch[0] + t.b_offset;
    const char* line = reinterpret_cast<const char*>(t.prefetch);
    int64_t lines = t.prefetch_lines;
    // `per_run` lines after each run of `step` k steps, so that all of them go out inside the k
    // loop: a share larger than k / 4 used to leave the rest to one burst after the loop, and a
    // burst of a hundred-odd misses to DRAM stalls the core on its fill buffers (a chain of
    // 512-channel 3x3 convolutions on 7x7 planes, weights from DRAM: 2.4-2.6 ms a layer against
    // 1.35 with the weights in L3).
    const int64_t step = std::max<int64_t>(2, t.k / lines);
    const int64_t runs = (t.k + step - 1) / step;
    const int64_t per_run = (lines + runs - 1) / runs;
    for (int64_t k0 = 0; k0 < t.k; k0 += step) {
      const int64_t count = std::min(step, t.k - k0);
      if (mask_b)
        accumulate<ROWS, NV, PACKED_A, true>(acc, a, t.a_row_stride, bp, t.b_row_stride, t.b_vector_offset, count,
                                             last_mask);
      else
        accumulate<ROWS, NV, PACKED_A, false>(acc, a, t.a_row_stride, bp, t.b_row_stride, t.b_vector_offset, count,
                                              last_mask);
      a += (PACKED_A ? kRows : 1) * count;
      bp += t.b_row_stride * count;
      const int64_t now = std::min(per_run, lines);
      prefetch_to_l2(line, now);
      line += 64 * now;
      lines -= now;
    }
    prefetch_to_l2(line, lines);
  } else {
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
    if (t.batch == 1) prefetch_to_l2(reinterpret_cast<const char*>(t.prefetch), t.prefetch_lines);
  }

  // Store step: beta * C, then the epilogue, all on the registers before the one store.
  float beta = t.beta;
  if (t.check_column_sums || t.check_row_partials) {
    // Global ABFT: the sums of the product (old C included) from the registers, so the checked
    // tile is stored once, through the epilogue, instead of stored raw, read back and stored again.
    if (beta != 0.f) {
#pragma GCC unroll 14
      for (int r = 0; r < ROWS; ++r) {
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) acc[r][v] = add_old_c<NV>(t, beta, acc[r][v], r, v, last_mask);
      }
      beta = 0.f;
    }
    // Lanes past `cols` hold zeros (zero-padded or masked B, masked C), so whole vectors add.
    if (t.check_column_sums) {
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) {
        __m512 even = acc[0][v], odd = _mm512_setzero_ps();
#pragma GCC unroll 14
        for (int r = 1; r < ROWS; ++r) {
          if (r % 2) odd = _mm512_add_ps(odd, acc[r][v]);
          else even = _mm512_add_ps(even, acc[r][v]);
        }
        const __mmask16 m = v == NV - 1 ? last_mask : __mmask16(0xffff);
        float* sums = t.check_column_sums + v * kLanes;
        _mm512_mask_storeu_ps(sums, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, sums), _mm512_add_ps(even, odd)));
      }
    }
    if (t.check_row_partials) {
#pragma GCC unroll 14
      for (int r = 0; r < ROWS; ++r) {
        __m512 row = acc[r][0];
#pragma GCC unroll 2
        for (int v = 1; v < NV; ++v) row = _mm512_add_ps(row, acc[r][v]);
        float* partial = t.check_row_partials + r * kLanes;
        _mm512_storeu_ps(partial, _mm512_add_ps(_mm512_loadu_ps(partial), row));
      }
    }
  }
  const GemmEpilogue* e = t.epilogue;
  if (e && e->activation.kind != UnaryKind::identity) {
    // The activation is applied to the whole tile in one call; it gets a copy so that the
    // accumulators' address never escapes (which would pin them to the stack in the k loop).
    __m512 out[ROWS * NV];
#pragma GCC unroll 14
    for (int r = 0; r < ROWS; ++r) {
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) out[r * NV + v] = combine<NV>(t, beta, acc[r][v], r, v, last_mask);
    }
    activation_avx512(e->activation, out, ROWS * NV);
#pragma GCC unroll 14
    for (int r = 0; r < ROWS; ++r) {
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) store<NV>(t, out[r * NV + v], r, v, last_count, last_mask);
    }
  } else if (beta != 0.f || e) {
#pragma GCC unroll 14
    for (int r = 0; r < ROWS; ++r) {
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) {
        store<NV>(t, combine<NV>(t, beta, acc[r][v], r, v, last_mask), r, v, last_count, last_mask);
      }
    }
  } else {
#pragma GCC unroll 14
    for (int r = 0; r < ROWS; ++r) {
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) store<NV>(t, acc[r][v], r, v, last_count, last_mask);
    }
  }
}

// Transposes the 16 x 16 block in v (v[r] = row r) so that v[c] = column c: 64 shuffles for
// 256 elements, which is what makes packing A cheap next to the FMAs that use it.
inline void transpose16(__m512 (&v)[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
  }
  // v[4i + j], 128-bit lane L: rows 4i..4i+3 of column 4L + j.
  for (int i = 0; i < 4; ++i) {
    v[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    v[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
    v[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    v[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
  }
  for (int j = 0; j < 4; ++j) {
    t[j] = _mm512_shuffle_f32x4(v[j], v[4 + j], 0x88);
    t[4 + j] = _mm512_shuffle_f32x4(v[j], v[4 + j], 0xdd);
    t[8 + j] = _mm512_shuffle_f32x4(v[8 + j], v[12 + j], 0x88);
    t[12 + j] = _mm512_shuffle_f32x4(v[8 + j], v[12 + j], 0xdd);
  }
  for (int j = 0; j < 4; ++j) {
    v[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
    v[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
    v[4 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0x88);
    v[12 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0xdd);
  }
}

// A packing for the 14-row tiles: 16 k at a time, 14 rows loaded, transposed in registers and
// stored as 16 k-slices of 14. Transposed A is already k-major: one masked copy per k.
void pack_a_avx512(const float* a, int64_t lda, bool transposed, int64_t rows, int64_t depth, float alpha,
                   float* out) {
  const __m512 scale = _mm512_set1_ps(alpha);
  const bool scaled = alpha != 1.f;
  for (int64_t i0 = 0; i0 < rows; i0 += kRows) {
    const int height = int(rows - i0 < kRows ? rows - i0 : kRows);
    float* panel = out + (i0 / kRows) * depth * kRows;
    const __mmask16 row_mask = lanes_mask(height);
    if (transposed) {
      for (int64_t k = 0; k < depth; ++k) {
        __m512 v = _mm512_maskz_loadu_ps(row_mask, a + k * lda + i0);
        if (scaled) v = _mm512_mul_ps(v, scale);
        _mm512_mask_storeu_ps(panel + k * kRows, row_mask, v);
      }
      continue;
    }
    for (int64_t k0 = 0; k0 < depth; k0 += kLanes) {
      const int width = int(depth - k0 < kLanes ? depth - k0 : kLanes);
      const __mmask16 k_mask = lanes_mask(width);
      __m512 v[16];
      for (int r = 0; r < 16; ++r) {
        v[r] = r < height ? _mm512_maskz_loadu_ps(k_mask, a + (i0 + r) * lda + k0) : _mm512_setzero_ps();
        if (scaled) v[r] = _mm512_mul_ps(v[r], scale);
      }
      transpose16(v);
      for (int j = 0; j < width; ++j) _mm512_mask_storeu_ps(panel + (k0 + j) * kRows, row_mask, v[j]);
    }
  }
}

// Row sums of 16-wide panels, 16 rows at a time: the rows are transposed in registers (as for
// packing A) so that adding the 16 vectors gives the 16 row sums in one vector.
void panel_row_sums_avx512(const float* panels, int64_t panel_count, int64_t panel_stride, int64_t depth,
                           float* sum, float* abs_sum) {
  for (int64_t p = 0; p < panel_count; ++p) {
    const float* panel = panels + p * panel_stride;
    int64_t k = 0;
    for (; k + 16 <= depth; k += 16) {
      __m512 v[16];
      for (int r = 0; r < 16; ++r) v[r] = _mm512_loadu_ps(panel + (k + r) * kLanes);
      if (abs_sum) {
        __m512 w[16];
        for (int r = 0; r < 16; ++r) w[r] = _mm512_abs_ps(v[r]);
        transpose16(w);
        __m512 a = w[0];
        for (int j = 1; j < 16; ++j) a = _mm512_add_ps(a, w[j]);
        _mm512_storeu_ps(abs_sum + p * depth + k, a);
      }
      transpose16(v);
      __m512 s = v[0];
      for (int j = 1; j < 16; ++j) s = _mm512_add_ps(s, v[j]);
      _mm512_storeu_ps(sum + p * depth + k, s);
    }
    for (; k < depth; ++k) {
      const __m512 row = _mm512_loadu_ps(panel + k * kLanes);
      sum[p * depth + k] = _mm512_reduce_add_ps(row);
      if (abs_sum) abs_sum[p * depth + k] = _mm512_reduce_add_ps(_mm512_abs_ps(row));
    }
  }
}

// Global column reference: one panel row is one vector, two FMAs per row. Four panels at a time
// (eight accumulator chains, one broadcast pair per k for all four): with one panel the FMA
// latency bounded the loop to a row every 4 cycles, 1.3% of ResNet-50's time under global ABFT.
template <int PANELS>
inline void column_reference_panels(const float* panels, int64_t panel_stride, int64_t depth, const float* a_sum,
                                    const float* a_abs_sum, float* reference, float* magnitude) {
  __m512 ref[PANELS], mag[PANELS];
  for (int p = 0; p < PANELS; ++p) {
    ref[p] = _mm512_loadu_ps(reference + p * kLanes);
    mag[p] = _mm512_loadu_ps(magnitude + p * kLanes);
  }
  for (int64_t k = 0; k < depth; ++k) {
    const __m512 s = _mm512_set1_ps(a_sum[k]), t = _mm512_set1_ps(a_abs_sum[k]);
    for (int p = 0; p < PANELS; ++p) {
      const __m512 row = _mm512_loadu_ps(panels + p * panel_stride + k * kLanes);
      ref[p] = _mm512_fmadd_ps(s, row, ref[p]);
      mag[p] = _mm512_fmadd_ps(t, _mm512_abs_ps(row), mag[p]);
    }
  }
  for (int p = 0; p < PANELS; ++p) {
    _mm512_storeu_ps(reference + p * kLanes, ref[p]);
    _mm512_storeu_ps(magnitude + p * kLanes, mag[p]);
  }
}

void column_reference_avx512(const float* panels, int64_t panel_count, int64_t panel_stride, int64_t depth,
                             const float* a_sum, const float* a_abs_sum, float* reference, float* magnitude) {
  int64_t p = 0;
  for (; p + 4 <= panel_count; p += 4)
    column_reference_panels<4>(panels + p * panel_stride, panel_stride, depth, a_sum, a_abs_sum,
                               reference + p * kLanes, magnitude + p * kLanes);
  for (; p + 2 <= panel_count; p += 2)
    column_reference_panels<2>(panels + p * panel_stride, panel_stride, depth, a_sum, a_abs_sum,
                               reference + p * kLanes, magnitude + p * kLanes);
  if (p < panel_count)
    column_reference_panels<1>(panels + p * panel_stride, panel_stride, depth, a_sum, a_abs_sum,
                               reference + p * kLanes, magnitude + p * kLanes);
}

// Row sums of a finished tile of up to 14 x 32 (in L1): two masked vectors and one reduction per row.
void tile_row_sums_avx512(const float* c, int64_t ldc, int rows, int cols, float* sums, float* abs_sums) {
  const __mmask16 first = lanes_mask(cols), second = lanes_mask(cols - kLanes > 0 ? cols - kLanes : 0);
  for (int r = 0; r < rows; ++r) {
    const float* row = c + r * ldc;
    const __m512 x = _mm512_maskz_loadu_ps(first, row);
    __m512 s = x, a = _mm512_abs_ps(x);
    if (cols > kLanes) {
      const __m512 y = _mm512_maskz_loadu_ps(second, row + kLanes);
      s = _mm512_add_ps(s, y);
      a = _mm512_add_ps(a, _mm512_abs_ps(y));
    }
    for (int j = 2 * kLanes; j < cols; ++j) {  // wider tiles than 32: not made by this kernel
      const __m512 z = _mm512_maskz_loadu_ps(1, row + j);
      s = _mm512_add_ps(s, z);
      a = _mm512_add_ps(a, _mm512_abs_ps(z));
    }
    sums[r] = _mm512_reduce_add_ps(s);
    abs_sums[r] = _mm512_reduce_add_ps(a);
  }
}

// Column sums of a finished tile: even and odd rows in separate chains and both column vectors
// at once, four independent adds per step instead of one 14-long chain per vector.
void tile_column_sums_avx512(const float* c, int64_t ldc, int rows, int cols, float* sums) {
  for (int j = 0; j < cols; j += 2 * kLanes) {
    const __mmask16 m0 = lanes_mask(cols - j), m1 = lanes_mask(cols - j - kLanes > 0 ? cols - j - kLanes : 0);
    __m512 even0 = _mm512_maskz_loadu_ps(m0, sums + j), even1 = _mm512_maskz_loadu_ps(m1, sums + j + kLanes);
    __m512 odd0 = _mm512_setzero_ps(), odd1 = _mm512_setzero_ps();
    int r = 0;
    for (; r + 2 <= rows; r += 2) {
      const float* row = c + r * ldc + j;
      even0 = _mm512_add_ps(even0, _mm512_maskz_loadu_ps(m0, row));
      even1 = _mm512_add_ps(even1, _mm512_maskz_loadu_ps(m1, row + kLanes));
      odd0 = _mm512_add_ps(odd0, _mm512_maskz_loadu_ps(m0, row + ldc));
      odd1 = _mm512_add_ps(odd1, _mm512_maskz_loadu_ps(m1, row + ldc + kLanes));
    }
    if (r < rows) {
      const float* row = c + r * ldc + j;
      even0 = _mm512_add_ps(even0, _mm512_maskz_loadu_ps(m0, row));
      even1 = _mm512_add_ps(even1, _mm512_maskz_loadu_ps(m1, row + kLanes));
    }
    _mm512_mask_storeu_ps(sums + j, m0, _mm512_add_ps(even0, odd0));
    _mm512_mask_storeu_ps(sums + j + kLanes, m1, _mm512_add_ps(even1, odd1));
  }
}

void tile_partial_row_sums_avx512(const float* c, int64_t ldc, int rows, int cols, float* partial) {
  for (int r = 0; r < rows; ++r) {
    __m512 s = _mm512_loadu_ps(partial + r * kLanes);
    for (int j = 0; j < cols; j += kLanes) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(lanes_mask(cols - j), c + r * ldc + j));
    _mm512_storeu_ps(partial + r * kLanes, s);
  }
}

// Four accumulator pairs over whole vectors (one pair was bound by the FMA latency), the tail
// masked once.
void dot2_avx512(int64_t n, const float* a, const float* x, const float* y, float* s, float* t) {
  __m512 sum[4], magnitude[4];
  for (int j = 0; j < 4; ++j) sum[j] = magnitude[j] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    for (int j = 0; j < 4; ++j) {
      const __m512 v = _mm512_loadu_ps(a + i + j * kLanes);
      sum[j] = _mm512_fmadd_ps(v, _mm512_loadu_ps(x + i + j * kLanes), sum[j]);
      magnitude[j] = _mm512_fmadd_ps(_mm512_abs_ps(v), _mm512_loadu_ps(y + i + j * kLanes), magnitude[j]);
    }
  }
  for (int j = 0; i < n; i += kLanes, j = (j + 1) % 4) {
    const __mmask16 m = lanes_mask(int(n - i < kLanes ? n - i : kLanes));
    const __m512 v = _mm512_maskz_loadu_ps(m, a + i);
    sum[j] = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, x + i), sum[j]);
    magnitude[j] = _mm512_fmadd_ps(_mm512_abs_ps(v), _mm512_maskz_loadu_ps(m, y + i), magnitude[j]);
  }
  *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(sum[0], sum[1]), _mm512_add_ps(sum[2], sum[3])));
  *t = _mm512_reduce_add_ps(
      _mm512_add_ps(_mm512_add_ps(magnitude[0], magnitude[1]), _mm512_add_ps(magnitude[2], magnitude[3])));
}

void axpy2_avx512(int64_t n, const float* a, float s, float t, float* out1, float* out2) {
  const __m512 vs = _mm512_set1_ps(s), vt = _mm512_set1_ps(t);
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 m = lanes_mask(int(n - i < kLanes ? n - i : kLanes));
    const __m512 v = _mm512_maskz_loadu_ps(m, a + i);
    _mm512_mask_storeu_ps(out1 + i, m, _mm512_fmadd_ps(vs, v, _mm512_maskz_loadu_ps(m, out1 + i)));
    _mm512_mask_storeu_ps(out2 + i, m, _mm512_fmadd_ps(vt, _mm512_abs_ps(v), _mm512_maskz_loadu_ps(m, out2 + i)));
  }
}

using TileFn = void (*)(const GemmTileArgs&);

// One instantiation per row count, so edge tiles keep their loops fully unrolled. Plain arrays:
// library templates instantiated here could be the copy the linker keeps for baseline code.
template <bool PACKED_A, int NV, typename Sequence, bool CHECK = false>
struct RowTiles;
template <bool PACKED_A, int NV, int... R, bool CHECK>
struct RowTiles<PACKED_A, NV, std::integer_sequence<int, R...>, CHECK> {
  static constexpr TileFn by_rows[sizeof...(R)] = {&tile<R + 1, NV, PACKED_A, CHECK>...};
};
using AllRows = std::make_integer_sequence<int, kRows>;

void tile_avx512(const GemmTileArgs& t) {
  if (t.rows <= 0 || t.cols <= 0) return;
  const int index = t.rows - 1;
  const bool two = t.cols > kLanes;
  if (t.check_reference) {
    (two ? RowTiles<true, 2, AllRows, true>::by_rows : RowTiles<true, 1, AllRows, true>::by_rows)[index](t);
  } else if (t.a_packed) {
    (two ? RowTiles<true, 2, AllRows>::by_rows : RowTiles<true, 1, AllRows>::by_rows)[index](t);
  } else {
    (two ? RowTiles<false, 2, AllRows>::by_rows : RowTiles<false, 1, AllRows>::by_rows)[index](t);
  }
}

}  // namespace

constinit const GemmKernel kGemmAvx512 = {kRows,          kVectors* kLanes,       kLanes,
                                          tile_avx512,    pack_a_avx512,          true,
                                          tile_reference_scalar, panel_row_sums_avx512, column_reference_avx512,
                                          dot2_avx512,    axpy2_avx512,           tile_column_sums_avx512,
                                          tile_partial_row_sums_avx512,           tile_row_sums_avx512,
                                          /*prefetches_b=*/true,  /*fused_global_sums=*/true};

}  // namespace tessera::primitives::detail
