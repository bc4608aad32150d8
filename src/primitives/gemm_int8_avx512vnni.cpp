// AVX-512 VNNI int8 microkernel: VPDPBUSD multiplies 4 broadcast u8 activations with the 4 s8
// weights of each of 16 columns and adds the products into int32 lanes, so one instruction is
// 64 multiply-adds (4x the f32 FMA's 16). The epilogue dequantizes/requantizes in registers.
#include <immintrin.h>

#include <cstring>

#include "primitives/gemm_int8_kernels.h"

namespace tessera::primitives::detail {

namespace {

inline __m512i clamp_u8(__m512i q) {
  return _mm512_min_epi32(_mm512_max_epi32(q, _mm512_setzero_si512()), _mm512_set1_epi32(255));
}

// round_half_even(x * inverse) + zero_point as int32; x * inverse is clamped first so that a
// huge value saturates (to 0 or 255 after clamp_u8) instead of converting to INT_MIN.
inline __m512i quantize(__m512 x, __m512 inverse, __m512i zero_point) {
  __m512 scaled = _mm512_mul_ps(x, inverse);
  scaled = _mm512_min_ps(_mm512_max_ps(scaled, _mm512_set1_ps(-1024.f)), _mm512_set1_ps(1024.f));
  return clamp_u8(_mm512_add_epi32(_mm512_cvtps_epi32(scaled), zero_point));
}

void store_vector(const Int8TileArgs& args, int r, int col, __m512i acc) {
  const Int8Epilogue& e = *args.epilogue;
  const int valid = args.cols - col;
  const __mmask16 mask = valid >= 16 ? __mmask16(0xffff) : __mmask16((1u << valid) - 1);
  const int64_t n = args.col0 + col;
  if (e.output == Int8Epilogue::Output::s32) {
    _mm512_mask_storeu_epi32(static_cast<int32_t*>(args.c) + r * args.ldc + col, mask, acc);
    return;
  }
  if (args.column_offsets) acc = _mm512_add_epi32(acc, _mm512_maskz_loadu_epi32(mask, args.column_offsets + n));
  if (e.b_zero_points)
    acc = _mm512_sub_epi32(acc, _mm512_mullo_epi32(_mm512_maskz_loadu_epi32(mask, e.b_zero_points + n),
                                                   _mm512_set1_epi32(args.tile_row_sums[r])));
  const __m512 scale = e.scale_per_tensor ? _mm512_set1_ps(e.scale[0]) : _mm512_maskz_loadu_ps(mask, e.scale + n);
  __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), scale);
  if (e.bias) f = _mm512_add_ps(f, _mm512_maskz_loadu_ps(mask, e.bias + n));
  if (e.relu) f = _mm512_max_ps(f, _mm512_setzero_ps());
  if (e.output == Int8Epilogue::Output::f32) {
    _mm512_mask_storeu_ps(static_cast<float*>(args.c) + r * args.ldc + col, mask, f);
    return;
  }
  const __m512i out_zero = _mm512_set1_epi32(e.output_zero_point);
  __m512i q = quantize(f, _mm512_set1_ps(1.f / e.output_scale), out_zero);
  if (e.residual) {
    const __m128i r_bytes = _mm_maskz_loadu_epi8(mask, e.residual + (args.row0 + r) * e.ld_residual + n);
    const __m512 r_value =
        _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(r_bytes), _mm512_set1_epi32(e.residual_zero_point)));
    __m512 g = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, out_zero)), _mm512_set1_ps(e.output_scale));
    g = _mm512_fmadd_ps(r_value, _mm512_set1_ps(e.residual_scale), g);
    if (e.relu_after_residual) g = _mm512_max_ps(g, _mm512_setzero_ps());
    q = quantize(g, _mm512_set1_ps(1.f / e.sum_scale), _mm512_set1_epi32(e.sum_zero_point));
  }
  _mm_mask_storeu_epi8(static_cast<uint8_t*>(args.c) + r * args.ldc + col, mask, _mm512_cvtusepi32_epi8(q));
}

inline __m512i broadcast_quad(const uint8_t* a) {
  int32_t v;
  std::memcpy(&v, a, 4);
  return _mm512_set1_epi32(v);
}

template <int kRows, int kPanels>
void tile_kernel(const Int8TileArgs& args) {
  __m512i acc[kRows][kPanels];
  for (int r = 0; r < kRows; ++r)
    for (int p = 0; p < kPanels; ++p) acc[r][p] = _mm512_setzero_si512();
  const int8_t* b = args.b;
  const int64_t stride = args.b_panel_stride;
  for (int64_t batch = 0; batch < args.batch; ++batch) {
    const uint8_t* a = args.a_batch[batch] + args.a_offset;
    for (int64_t q = 0; q < args.quads_per_batch; ++q, b += 64) {
      __m512i w[kPanels];
      for (int p = 0; p < kPanels; ++p) w[p] = _mm512_loadu_si512(b + p * stride);
      for (int r = 0; r < kRows; ++r) {
        const __m512i x = broadcast_quad(a + r * args.lda + q * 4);
        for (int p = 0; p < kPanels; ++p) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], x, w[p]);
      }
    }
    if (args.k_tail) {  // batch == 1: the last partial quad (B is zero padded past K)
      __m512i w[kPanels];
      for (int p = 0; p < kPanels; ++p) w[p] = _mm512_loadu_si512(b + p * stride);
      for (int r = 0; r < kRows; ++r) {
        int32_t v = 0;
        std::memcpy(&v, a + r * args.lda + args.quads_per_batch * 4, size_t(args.k_tail));
        const __m512i x = _mm512_set1_epi32(v);
        for (int p = 0; p < kPanels; ++p) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], x, w[p]);
      }
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int p = 0; p < kPanels && p * 16 < args.cols; ++p) store_vector(args, r, p * 16, acc[r][p]);
}

constexpr int kMr = 7;
constexpr int kMaxPanels = 4;

template <int kRows>
void tile_rows(const Int8TileArgs& args) {
  switch (args.panels) {
    case 1:
      return tile_kernel<kRows, 1>(args);
    case 2:
      return tile_kernel<kRows, 2>(args);
    case 3:
      return tile_kernel<kRows, 3>(args);
    default:
      return tile_kernel<kRows, 4>(args);
  }
}

void tile(const Int8TileArgs& args) {
  switch (args.rows) {
    case 1:
      return tile_rows<1>(args);
    case 2:
      return tile_rows<2>(args);
    case 3:
      return tile_rows<3>(args);
    case 4:
      return tile_rows<4>(args);
    case 5:
      return tile_rows<5>(args);
    case 6:
      return tile_rows<6>(args);
    default:
      return tile_rows<7>(args);
  }
}

}  // namespace

const Int8GemmKernel kInt8GemmAvx512Vnni = {kMr, kMaxPanels, tile};

}  // namespace tessera::primitives::detail
