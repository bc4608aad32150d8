// AVX-512 element-wise kernels: the templates of eltwise_vector.h instantiated with 16-lane
// zmm traits, plus the activation entry the AVX-512 GEMM epilogue calls.
#include "primitives/eltwise_vector.h"
#include "primitives/vector_activation.h"

namespace tessera::primitives::detail {

namespace {
using Kernels = EltwiseVector<Avx512>;
}  // namespace

void activation_avx512(const UnaryParams& params, __m512* values, int count) {
  Kernels::activation(params, values, count);
}

namespace {

// One 16 x 16 block in registers: 32-bit and 64-bit interleaves of row pairs, then two rounds of
// 128-bit lane shuffles (lanes 0, 2 | 1, 3 of two registers) put column j of the block in row j.
void transpose_16x16(const uint32_t* src, int64_t ld_src, uint32_t* dst, int64_t ld_dst) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * ld_src);
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  // Per 128-bit lane L, r[4g + q] holds rows 4g..4g+3 of column 4L + q.
  for (int g = 0; g < 4; ++g) {
    const __m512d lo = _mm512_castps_pd(t[4 * g]), hi = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d lo2 = _mm512_castps_pd(t[4 * g + 2]), hi2 = _mm512_castps_pd(t[4 * g + 3]);
    r[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo, lo2));
    r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo, lo2));
    r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi, hi2));
    r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi, hi2));
  }
  for (int q = 0; q < 4; ++q) {
    const __m512 even01 = _mm512_shuffle_f32x4(r[q], r[4 + q], 0x88);
    const __m512 odd01 = _mm512_shuffle_f32x4(r[q], r[4 + q], 0xdd);
    const __m512 even23 = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0x88);
    const __m512 odd23 = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0xdd);
    _mm512_storeu_ps(dst + (0 + q) * ld_dst, _mm512_shuffle_f32x4(even01, even23, 0x88));
    _mm512_storeu_ps(dst + (8 + q) * ld_dst, _mm512_shuffle_f32x4(even01, even23, 0xdd));
    _mm512_storeu_ps(dst + (4 + q) * ld_dst, _mm512_shuffle_f32x4(odd01, odd23, 0x88));
    _mm512_storeu_ps(dst + (12 + q) * ld_dst, _mm512_shuffle_f32x4(odd01, odd23, 0xdd));
  }
}

}  // namespace

constinit const EltwiseKernels kEltwiseAvx512 = {Kernels::unary, Kernels::binary_row, Kernels::reduce_rows,
                                                 Kernels::reduce_cols, Kernels::online_softmax_block,
                                                 Kernels::add_layer_norm_rows,
                                                 transpose_4byte_by_blocks<16, transpose_16x16>};

}  // namespace tessera::primitives::detail
