// AVX-512 VNNI int8 microkernel: VPDPBUSD multiplies 4 broadcast u8 activations with the 4 s8
// weights of each of 16 columns and adds the products into int32 lanes, so one instruction is
// 64 multiply-adds (4x the f32 FMA's 16). Tile 6 x 64: 24 accumulators, 4 weight vectors and the broadcast fit the 32 registers. The epilogue dequantizes/requantizes in registers.
#include <immintrin.h>


#include "primitives/gemm_int8_kernels.h"

namespace tessera::primitives::detail {

namespace {

// The epilogue of one panel (16 columns) for every row of the tile, from the folded constants
// of PreparedInt8Epilogue: f = (acc + offset) * multiplier + addend is the f32 output, or the
// output in units of the output scale, rounded half to even by the conversion.
template <int kRows>
void store_panel(const Int8TileArgs& args, int col, const __m512i (&acc)[kRows]) {
  // Everything the rows need is read into locals first: the u8 stores below may alias any
  // memory as far as the compiler knows, so fields read inside the loop would be reloaded (and
  // the scale ratios recomputed) for every row.
  const Int8Epilogue& e = *args.epilogue;
  const Int8Epilogue::Output output = e.output;
  const int valid = args.cols - col;
  const __mmask16 mask = valid >= 16 ? __mmask16(0xffff) : __mmask16((1u << valid) - 1);
  const int64_t n = args.col0 + col, ldc = args.ldc;
  if (output == Int8Epilogue::Output::s32) {
    int32_t* c = static_cast<int32_t*>(args.c) + col;
    for (int r = 0; r < kRows; ++r) _mm512_mask_storeu_epi32(c + r * ldc, mask, acc[r]);
    return;
  }
  // The folded arrays are padded to whole panels, so full loads stay inside them.
  const __m512i offset = args.column_offsets ? _mm512_loadu_si512(args.column_offsets + n) : _mm512_setzero_si512();
  const __m512 multiplier = _mm512_loadu_ps(args.multipliers + n), addend = _mm512_loadu_ps(args.addends + n);
  const bool asymmetric_b = e.b_zero_points != nullptr;
  const __m512i b_zero = asymmetric_b ? _mm512_maskz_loadu_epi32(mask, e.b_zero_points + n) : _mm512_setzero_si512();
  int32_t row_sums[kRows] = {};
  if (asymmetric_b)
    for (int r = 0; r < kRows; ++r) row_sums[r] = args.tile_row_sums[r];
  const bool relu = e.relu;
  if (output == Int8Epilogue::Output::f32) {
    float* c = static_cast<float*>(args.c) + col;
    for (int r = 0; r < kRows; ++r) {
      __m512i corrected = _mm512_add_epi32(acc[r], offset);
      if (asymmetric_b) corrected = _mm512_sub_epi32(corrected, _mm512_mullo_epi32(b_zero, _mm512_set1_epi32(row_sums[r])));
      __m512 f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(corrected), multiplier, addend);
      if (relu) f = _mm512_max_ps(f, _mm512_setzero_ps());
      _mm512_mask_storeu_ps(c + r * ldc, mask, f);
    }
    return;
  }
  const __m512i out_zero = _mm512_set1_epi32(e.output_zero_point);
  const __m512i low = relu ? out_zero : _mm512_setzero_si512(), high = _mm512_set1_epi32(255);
  const __m512 limit = _mm512_set1_ps(1024.f);
  const uint8_t* residual = args.residual ? args.residual + col : nullptr;
  const int64_t ld_residual = args.ld_residual;
  const __m512 output_ratio = _mm512_set1_ps(e.output_scale / e.sum_scale);
  const __m512 residual_ratio = _mm512_set1_ps(e.residual_scale / e.sum_scale);
  const __m512i residual_zero = _mm512_set1_epi32(e.residual_zero_point), sum_zero = _mm512_set1_epi32(e.sum_zero_point);
  const __m512i sum_low = e.relu_after_residual ? sum_zero : _mm512_setzero_si512();
  uint8_t* c = static_cast<uint8_t*>(args.c) + col;
  for (int r = 0; r < kRows; ++r) {
    __m512i corrected = _mm512_add_epi32(acc[r], offset);
    if (asymmetric_b) corrected = _mm512_sub_epi32(corrected, _mm512_mullo_epi32(b_zero, _mm512_set1_epi32(row_sums[r])));
    // Clamped first so that a huge value saturates at 255 instead of converting to INT_MIN
    // (negative overflow converts to INT_MIN, which the lower clamp takes to 0 as it should).
    const __m512 f = _mm512_min_ps(_mm512_fmadd_ps(_mm512_cvtepi32_ps(corrected), multiplier, addend), limit);
    __m512i q = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(f), out_zero), low), high);
    if (residual) {
      // In units of the sum's scale: (q - zo) so / ss + (r - zr) sr / ss.
      const __m128i r_bytes = _mm_maskz_loadu_epi8(mask, residual + r * ld_residual);
      const __m512 r_value = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(r_bytes), residual_zero));
      __m512 g = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, out_zero)), output_ratio);
      g = _mm512_min_ps(_mm512_fmadd_ps(r_value, residual_ratio, g), limit);
      q = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(g), sum_zero), sum_low), high);
    }
    _mm_mask_storeu_epi8(c + r * ldc, mask, _mm512_cvtusepi32_epi8(q));
  }
}

// A 4-byte activation quad, read without alignment or aliasing assumptions.
typedef int32_t unaligned_int32 __attribute__((aligned(1), may_alias));

inline __m512i broadcast_quad(const uint8_t* a) {
  return _mm512_set1_epi32(*reinterpret_cast<const unaligned_int32*>(a));
}

template <int kRows, int kPanels>
void tile_kernel(const Int8TileArgs& args) {
  __m512i acc[kRows][kPanels];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 4
    for (int p = 0; p < kPanels; ++p) acc[r][p] = _mm512_setzero_si512();
  const int8_t* b = args.b;
  const int64_t stride = args.b_panel_stride, lda = args.lda, quads = args.quads_per_batch;
  const uint8_t* a = nullptr;
  for (int64_t batch = 0; batch < args.batch; ++batch) {
    a = args.a_batch[batch] + args.a_offset;
    for (int64_t q = 0; q < quads; ++q) {
      __m512i w[kPanels];
#pragma GCC unroll 4
      for (int p = 0; p < kPanels; ++p) w[p] = _mm512_loadu_si512(b + p * stride);
#pragma GCC unroll 8
      for (int r = 0; r < kRows; ++r) {
        const __m512i x = broadcast_quad(a + r * lda + q * 4);
#pragma GCC unroll 4
        for (int p = 0; p < kPanels; ++p) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], x, w[p]);
      }
      b += 64;
    }
  }
  if (args.k_tail) {  // batch == 1: the last partial quad (B is zero padded past K)
    __m512i w[kPanels];
    for (int p = 0; p < kPanels; ++p) w[p] = _mm512_loadu_si512(b + p * stride);
    for (int r = 0; r < kRows; ++r) {
      int32_t v = 0;
      for (int t = 0; t < args.k_tail; ++t) v |= int32_t(a[r * lda + quads * 4 + t]) << (8 * t);
      const __m512i x = _mm512_set1_epi32(v);
      for (int p = 0; p < kPanels; ++p) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], x, w[p]);
    }
  }
  for (int p = 0; p < kPanels && p * 16 < args.cols; ++p) {
    __m512i column[kRows];
    for (int r = 0; r < kRows; ++r) column[r] = acc[r][p];
    store_panel<kRows>(args, p * 16, column);
  }
}

constexpr int kMr = 6;
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
    default:
      return tile_rows<6>(args);
  }
}

}  // namespace

const Int8GemmKernel kInt8GemmAvx512Vnni = {kMr, kMaxPanels, tile};

}  // namespace tessera::primitives::detail
