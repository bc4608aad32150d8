// Bit-plane GEMM microkernel with AVX-512 VPOPCNTQ (one 512-bit AND/XOR + popcount + add per
// 512 products of one plane pair) and the code packer with VPTESTMB (one plane word per test).
#include <immintrin.h>

#include "compression/bitplane_kernels.h"

namespace tessera::compression::detail {

namespace {

constexpr int kRows = 4, kCols = 6;  // 24 accumulators + 4 X vectors + 1 Y vector of 32 zmm

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

template <int MR, int NR>
void tile(const BitplaneTileArgs& t) {
  __m512i acc[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) acc[r][c] = _mm512_setzero_si512();
  const uint64_t* x[MR];
  const uint64_t* y[NR];
  if (t.xor_mode) {
    for (int r = 0; r < MR; ++r) x[r] = t.x_rows[r];
    for (int c = 0; c < NR; ++c) y[c] = t.y_rows[c];
    accumulate<MR, NR, true, false>(acc, x, y, t.words);
  } else {
    for_each_plane_pair(t, [&](int i, int j, bool negative, bool doubling) {
      if (doubling)
        for (int r = 0; r < MR; ++r)
          for (int c = 0; c < NR; ++c) acc[r][c] = _mm512_add_epi64(acc[r][c], acc[r][c]);
      for (int r = 0; r < MR; ++r) x[r] = t.x_rows[r] + j * t.words;
      for (int c = 0; c < NR; ++c) y[c] = t.y_rows[c] + i * t.words;
      if (negative)
        accumulate<MR, NR, false, true>(acc, x, y, t.words);
      else
        accumulate<MR, NR, false, false>(acc, x, y, t.words);
    });
  }
  const __m512i* flat = &acc[0][0];
  constexpr int count = MR * NR;
  int done = 0;
  for (; done + 8 <= count; done += 8) _mm512_storeu_si512(t.raw + done, sum_lanes_of_eight(flat + done));
  for (; done < count; ++done) {
    alignas(64) int64_t lanes[8];
    _mm512_store_si512(lanes, flat[done]);
    t.raw[done] = lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
  }
}

template <int MR>
BitplaneTileFn tile_for_cols(int cols) {
  switch (cols) {
    case 1: return tile<MR, 1>;
    case 2: return tile<MR, 2>;
    case 3: return tile<MR, 3>;
    case 4: return tile<MR, 4>;
    case 5: return tile<MR, 5>;
    default: return tile<MR, 6>;
  }
}

void tile_any(const BitplaneTileArgs& t) {
  BitplaneTileFn fn = nullptr;
  switch (t.rows) {
    case 1: fn = tile_for_cols<1>(t.cols); break;
    case 2: fn = tile_for_cols<2>(t.cols); break;
    case 3: fn = tile_for_cols<3>(t.cols); break;
    default: fn = tile_for_cols<4>(t.cols); break;
  }
  fn(t);
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

}  // namespace

const BitplaneKernelTable kBitplaneAvx512Popcnt = {kRows, kCols, tile_any, pack};

}  // namespace tessera::compression::detail
