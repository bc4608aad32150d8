// Bit-plane GEMM microkernel with AVX-512 VPOPCNTQ (one 512-bit AND/XOR + popcount + add per
// 512 products of one plane pair: 64 bits of one row against eight columns), the code packer with
// VPTESTMB (one plane word per test), the activation quantizer and a vector popcount.
#include <immintrin.h>

#include "compression/bitplane_kernels.h"

namespace tessera::compression::detail {

namespace {

// Broadcast form, like an f32 GEMM microkernel: one 64-bit word of an X row broadcast to all
// lanes, against one vector holding the same word of eight Y columns (column-interleaved planes),
// so each accumulator lane is one output and nothing is summed across lanes at the end.
// 3 rows x 8 groups of 8 columns: 24 accumulators + 3 broadcasts + 1 Y vector of 32 zmm.
constexpr int kRows = 3, kGroups = 8, kCols = 8 * kGroups;

template <int MR, int NV, bool XOR, bool NEGATIVE>
__attribute__((always_inline)) inline void accumulate(__m512i (&acc)[MR][NV], const uint64_t* const (&x)[MR],
                                                      const uint64_t* const (&y)[NV], int64_t words) {
  for (int64_t w = 0; w < words; ++w) {
    __m512i xv[MR];
    for (int r = 0; r < MR; ++r) xv[r] = _mm512_set1_epi64(int64_t(x[r][w]));
    for (int v = 0; v < NV; ++v) {
      const __m512i yv = _mm512_load_si512(y[v] + w * 8);
      for (int r = 0; r < MR; ++r) {
        const __m512i both = XOR ? _mm512_xor_si512(xv[r], yv) : _mm512_and_si512(xv[r], yv);
        const __m512i count = _mm512_popcnt_epi64(both);
        acc[r][v] = NEGATIVE ? _mm512_sub_epi64(acc[r][v], count) : _mm512_add_epi64(acc[r][v], count);
      }
    }
  }
}

// Rows x (8 NV) raw products (columns past t.cols are zero padding of the last group).
template <int MR, int NV>
void tile(const BitplaneTileArgs& t) {
  __m512i acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_si512();
  const int64_t group_plane_words = t.words * 8;  // one plane of one group
  if (t.xor_mode) {
    const uint64_t* x[MR];
    const uint64_t* y[NV];
    for (int r = 0; r < MR; ++r) x[r] = t.x_rows[r];
    for (int v = 0; v < NV; ++v) y[v] = t.y_groups[v];
    accumulate<MR, NV, true, false>(acc, x, y, t.words);
  } else {
    // The pairs of for_each_plane_pair (bitplane_kernels.h), written out so the accumulators stay
    // in registers between pairs.
    const int top = t.x_bits + t.y_bits - 2;
    for (int s = top; s >= 0; --s) {
      if (s != top)
        for (int r = 0; r < MR; ++r)
          for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_add_epi64(acc[r][v], acc[r][v]);
      const int i_begin = s - (t.x_bits - 1) > 0 ? s - (t.x_bits - 1) : 0;
      const int i_end = s < t.y_bits - 1 ? s : t.y_bits - 1;
      for (int i = i_begin; i <= i_end; ++i) {
        const int j = s - i;
        const bool negative = (t.y_signed && i == t.y_bits - 1) != (t.x_signed && j == t.x_bits - 1);
        const uint64_t* x[MR];
        const uint64_t* y[NV];
        for (int r = 0; r < MR; ++r) x[r] = t.x_rows[r] + j * t.words;
        for (int v = 0; v < NV; ++v) y[v] = t.y_groups[v] + i * group_plane_words;
        if (negative)
          accumulate<MR, NV, false, true>(acc, x, y, t.words);
        else
          accumulate<MR, NV, false, false>(acc, x, y, t.words);
      }
    }
  }
  const __m512i depth = _mm512_set1_epi64(t.depth);
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) {
      __m512i sums = acc[r][v];
      if (t.xor_mode) sums = _mm512_sub_epi64(depth, _mm512_add_epi64(sums, sums));
      _mm512_storeu_si512(t.raw + r * t.raw_ld + 8 * v, sums);
    }
}

template <int MR>
void tile_for_groups(const BitplaneTileArgs& t) {
  switch (t.groups) {
    case 1: tile<MR, 1>(t); break;
    case 2: tile<MR, 2>(t); break;
    case 3: tile<MR, 3>(t); break;
    case 4: tile<MR, 4>(t); break;
    case 5: tile<MR, 5>(t); break;
    case 6: tile<MR, 6>(t); break;
    case 7: tile<MR, 7>(t); break;
    default: tile<MR, 8>(t); break;
  }
}

void tile_any(const BitplaneTileArgs& t) {
  switch (t.rows) {
    case 1: tile_for_groups<1>(t); break;
    case 2: tile_for_groups<2>(t); break;
    default: tile_for_groups<3>(t); break;
  }
}

void pack(const uint8_t* codes, int64_t ld, int64_t rows, int64_t depth, int bits, int64_t words,
          uint64_t* planes) {
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* src = codes + r * ld;
    uint64_t* dst = planes + r * bits * words;
    for (int64_t w = 0; w < words; ++w) {
      const int64_t k0 = w * 64;
      if (k0 >= depth) {
        for (int b = 0; b < bits; ++b) dst[b * words + w] = 0;
        continue;
      }
      const __mmask64 valid = depth - k0 >= 64 ? ~__mmask64(0) : (__mmask64(1) << (depth - k0)) - 1;
      const __m512i v = _mm512_maskz_loadu_epi8(valid, src + k0);
      for (int b = 0; b < bits; ++b)
        dst[b * words + w] = _mm512_test_epi8_mask(v, _mm512_set1_epi8(char(1 << b)));
    }
  }
}

void quantize(const float* x, int64_t n, float scale, float zero_point, float levels, uint8_t* codes) {
  const __m512 vscale = _mm512_set1_ps(scale), vzero_point = _mm512_set1_ps(zero_point),
               vlevels = _mm512_set1_ps(levels);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 valid = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
    __m512 code = _mm512_roundscale_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(valid, x + i), vscale),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    // max(code, 0) returns its second operand for NaN, as the scalar rule's 0.
    code = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(code, vzero_point), _mm512_setzero_ps()), vlevels);
    _mm512_mask_cvtepi32_storeu_epi8(codes + i, valid, _mm512_cvtps_epi32(code));
  }
}

int64_t popcount(const uint64_t* words, int64_t n) {
  __m512i ones = _mm512_setzero_si512();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) ones = _mm512_add_epi64(ones, _mm512_popcnt_epi64(_mm512_loadu_si512(words + i)));
  alignas(64) int64_t lanes[8];
  _mm512_store_si512(lanes, ones);
  int64_t total = lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
  for (; i < n; ++i) total += _mm_popcnt_u64(words[i]);
  return total;
}

}  // namespace

const BitplaneKernelTable kBitplaneAvx512Popcnt = {kRows, kCols, true, tile_any, pack, quantize, popcount};

}  // namespace tessera::compression::detail
