// Bit-plane GEMM microkernel with AVX-512 VPOPCNTQ (one 512-bit AND/XOR + popcount + add per
// 512 products of one plane pair) and the code packer with VPTESTMB (one plane word per test).
#include <immintrin.h>

#include "compression/bitplane_kernels.h"

namespace tessera::compression::detail {

namespace {

// 24 accumulators + 3 X vectors + 1 Y vector of 32 zmm. Eight columns, so each row's eight
// accumulators reduce into one vector of eight sums, stored at once.
constexpr int kRows = 3, kCols = 8;

template <int MR, int NR, bool XOR, bool NEGATIVE>
__attribute__((always_inline)) inline void accumulate(__m512i (&acc)[MR][NR], const uint64_t* const (&x)[MR],
                                                      const uint64_t* const (&y)[NR], int64_t words) {
  for (int64_t w = 0; w < words; w += 8) {
    __m512i xv[MR];
    for (int r = 0; r < MR; ++r) xv[r] = _mm512_load_si512(x[r] + w);
    for (int c = 0; c < NR; ++c) {
      const __m512i yv = _mm512_load_si512(y[c] + w);
      for (int r = 0; r < MR; ++r) {
        const __m512i both = XOR ? _mm512_xor_si512(xv[r], yv) : _mm512_and_si512(xv[r], yv);
        const __m512i count = _mm512_popcnt_epi64(both);
        acc[r][c] = NEGATIVE ? _mm512_sub_epi64(acc[r][c], count) : _mm512_add_epi64(acc[r][c], count);
      }
    }
  }
}

// Eight vectors -> one vector of their eight lane sums (lane l = sum of v[l]), in 21 operations
// instead of 8 separate reductions (about 7 each). Two-source permutes throughout: GCC 12's
// unpack/shuffle/extract intrinsics warn (-Wuninitialized) on their undefined pass-through operand.
__attribute__((always_inline)) inline __m512i sum_lanes_of_eight(const __m512i* v) {
  const __m512i even = _mm512_setr_epi64(0, 8, 2, 10, 4, 12, 6, 14), odd = _mm512_setr_epi64(1, 9, 3, 11, 5, 13, 7, 15);
  const __m512i low_halves = _mm512_setr_epi64(0, 1, 4, 5, 8, 9, 12, 13);
  const __m512i high_halves = _mm512_setr_epi64(2, 3, 6, 7, 10, 11, 14, 15);
  __m512i pair[4];
  for (int p = 0; p < 4; ++p)
    pair[p] = _mm512_add_epi64(_mm512_permutex2var_epi64(v[2 * p], even, v[2 * p + 1]),
                               _mm512_permutex2var_epi64(v[2 * p], odd, v[2 * p + 1]));
  __m512i quad[2];
  for (int q = 0; q < 2; ++q)
    quad[q] = _mm512_add_epi64(_mm512_permutex2var_epi64(pair[2 * q], low_halves, pair[2 * q + 1]),
                               _mm512_permutex2var_epi64(pair[2 * q], high_halves, pair[2 * q + 1]));
  return _mm512_add_epi64(_mm512_permutex2var_epi64(quad[0], low_halves, quad[1]),
                          _mm512_permutex2var_epi64(quad[0], high_halves, quad[1]));
}

// Rows x 8 raw products; columns past t.cols repeat column 0 (computed, not stored by the driver).
template <int MR>
void tile(const BitplaneTileArgs& t) {
  constexpr int NR = kCols;
  __m512i acc[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) acc[r][c] = _mm512_setzero_si512();
  const uint64_t* x[MR];
  const uint64_t* y[NR];
  for (int c = 0; c < NR; ++c) y[c] = t.y_rows[c < t.cols ? c : 0];
  if (t.xor_mode) {
    for (int r = 0; r < MR; ++r) x[r] = t.x_rows[r];
    accumulate<MR, NR, true, false>(acc, x, y, t.words);
  } else {
    // The pairs of for_each_plane_pair (bitplane_kernels.h), written out so the accumulators stay
    // in registers between pairs.
    const int top = t.x_bits + t.y_bits - 2;
    for (int s = top; s >= 0; --s) {
      if (s != top)
        for (int r = 0; r < MR; ++r)
          for (int c = 0; c < NR; ++c) acc[r][c] = _mm512_add_epi64(acc[r][c], acc[r][c]);
      const int i_begin = s - (t.x_bits - 1) > 0 ? s - (t.x_bits - 1) : 0;
      const int i_end = s < t.y_bits - 1 ? s : t.y_bits - 1;
      for (int i = i_begin; i <= i_end; ++i) {
        const int j = s - i;
        const bool negative = (t.y_signed && i == t.y_bits - 1) != (t.x_signed && j == t.x_bits - 1);
        const uint64_t* xp[MR];
        const uint64_t* yp[NR];
        for (int r = 0; r < MR; ++r) xp[r] = t.x_rows[r] + j * t.words;
        for (int c = 0; c < NR; ++c) yp[c] = y[c] + i * t.words;
        if (negative)
          accumulate<MR, NR, false, true>(acc, xp, yp, t.words);
        else
          accumulate<MR, NR, false, false>(acc, xp, yp, t.words);
      }
    }
  }
  const __m512i depth = _mm512_set1_epi64(t.depth);
  for (int r = 0; r < MR; ++r) {
    __m512i sums = sum_lanes_of_eight(acc[r]);
    if (t.xor_mode) sums = _mm512_sub_epi64(depth, _mm512_add_epi64(sums, sums));
    _mm512_storeu_si512(t.raw + r * t.raw_ld, sums);
  }
}

void tile_any(const BitplaneTileArgs& t) {
  switch (t.rows) {
    case 1: tile<1>(t); break;
    case 2: tile<2>(t); break;
    default: tile<3>(t); break;
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

const BitplaneKernelTable kBitplaneAvx512Popcnt = {kRows, kCols, tile_any, pack, quantize, popcount};

}  // namespace tessera::compression::detail
