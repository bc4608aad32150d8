// Bit-plane GEMM microkernel for AVX2 CPUs (no vector popcount): bytes are counted with a 16-entry
// nibble table through VPSHUFB, summed as bytes for up to 31 vectors, then widened by VPSADBW.
#include <immintrin.h>

#include <cmath>

#include "compression/bitplane_kernels.h"

namespace tessera::compression::detail {

namespace {

constexpr int kRows = 2, kCols = 3;  // 6 qword + 6 byte accumulators, table, mask, operands: 16 ymm
// Each byte counts at most 8 per vector: 31 vectors stay below 256.
constexpr int64_t kByteBlockVectors = 31;

__attribute__((always_inline)) inline __m256i byte_popcount(__m256i v, __m256i table, __m256i low_nibbles) {
  const __m256i low = _mm256_and_si256(v, low_nibbles);
  const __m256i high = _mm256_and_si256(_mm256_srli_epi16(v, 4), low_nibbles);
  return _mm256_add_epi8(_mm256_shuffle_epi8(table, low), _mm256_shuffle_epi8(table, high));
}

template <int MR, int NR, bool XOR, bool NEGATIVE>
__attribute__((always_inline)) inline void accumulate(__m256i (&acc)[MR][NR], const uint64_t* const (&x)[MR],
                                                      const uint64_t* const (&y)[NR], int64_t words) {
  const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3,
                                         1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low_nibbles = _mm256_set1_epi8(0x0f);
  for (int64_t block = 0; block < words; block += 4 * kByteBlockVectors) {
    const int64_t block_end = block + 4 * kByteBlockVectors < words ? block + 4 * kByteBlockVectors : words;
    __m256i bytes[MR][NR];
    for (int r = 0; r < MR; ++r)
      for (int c = 0; c < NR; ++c) bytes[r][c] = _mm256_setzero_si256();
    for (int64_t w = block; w < block_end; w += 4) {
      __m256i xv[MR];
      for (int r = 0; r < MR; ++r) xv[r] = _mm256_load_si256(reinterpret_cast<const __m256i*>(x[r] + w));
      for (int c = 0; c < NR; ++c) {
        const __m256i yv = _mm256_load_si256(reinterpret_cast<const __m256i*>(y[c] + w));
        for (int r = 0; r < MR; ++r) {
          const __m256i both = XOR ? _mm256_xor_si256(xv[r], yv) : _mm256_and_si256(xv[r], yv);
          bytes[r][c] = _mm256_add_epi8(bytes[r][c], byte_popcount(both, table, low_nibbles));
        }
      }
    }
    for (int r = 0; r < MR; ++r)
      for (int c = 0; c < NR; ++c) {
        const __m256i wide = _mm256_sad_epu8(bytes[r][c], _mm256_setzero_si256());
        acc[r][c] = NEGATIVE ? _mm256_sub_epi64(acc[r][c], wide) : _mm256_add_epi64(acc[r][c], wide);
      }
  }
}

template <int MR, int NR>
void tile(const BitplaneTileArgs& t) {
  __m256i acc[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) acc[r][c] = _mm256_setzero_si256();
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
          for (int c = 0; c < NR; ++c) acc[r][c] = _mm256_slli_epi64(acc[r][c], 1);
      for (int r = 0; r < MR; ++r) x[r] = t.x_rows[r] + j * t.words;
      for (int c = 0; c < NR; ++c) y[c] = t.y_rows[c] + i * t.words;
      if (negative)
        accumulate<MR, NR, false, true>(acc, x, y, t.words);
      else
        accumulate<MR, NR, false, false>(acc, x, y, t.words);
    });
  }
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) {
      const __m128i half = _mm_add_epi64(_mm256_castsi256_si128(acc[r][c]), _mm256_extracti128_si256(acc[r][c], 1));
      const int64_t count = _mm_cvtsi128_si64(half) + _mm_extract_epi64(half, 1);
      t.raw[r * t.raw_ld + c] = t.xor_mode ? t.depth - 2 * count : count;
    }
}

template <int MR>
BitplaneTileFn tile_for_cols(int cols) {
  switch (cols) {
    case 1: return tile<MR, 1>;
    case 2: return tile<MR, 2>;
    default: return tile<MR, 3>;
  }
}

void tile_any(const BitplaneTileArgs& t) { (t.rows == 1 ? tile_for_cols<1>(t.cols) : tile_for_cols<2>(t.cols))(t); }

void pack(const uint8_t* codes, int64_t ld, int64_t rows, int64_t depth, int bits, int64_t words,
          uint64_t* planes) {
  alignas(32) uint8_t tail[64];
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* src = codes + r * ld;
    uint64_t* dst = planes + r * bits * words;
    for (int64_t w = 0; w < words; ++w) {
      const int64_t k0 = w * 64;
      if (k0 >= depth) {
        for (int b = 0; b < bits; ++b) dst[b * words + w] = 0;
        continue;
      }
      const uint8_t* block = src + k0;
      if (depth - k0 < 64) {
        for (int e = 0; e < 64; ++e) tail[e] = k0 + e < depth ? src[k0 + e] : 0;
        block = tail;
      }
      const __m256i low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block));
      const __m256i high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 32));
      for (int b = 0; b < bits; ++b) {
        // Bit b of each byte moves to the byte's sign bit (the 16-bit shift carries only the low
        // byte's high bits into the high byte's low bits, which movemask ignores).
        const uint32_t low_bits = uint32_t(_mm256_movemask_epi8(_mm256_slli_epi16(low, 7 - b)));
        const uint32_t high_bits = uint32_t(_mm256_movemask_epi8(_mm256_slli_epi16(high, 7 - b)));
        dst[b * words + w] = uint64_t(low_bits) | (uint64_t(high_bits) << 32);
      }
    }
  }
}

void quantize(const float* x, int64_t n, float scale, float zero_point, float levels, uint8_t* codes) {
  const __m256 vscale = _mm256_set1_ps(scale), vzero_point = _mm256_set1_ps(zero_point),
               vlevels = _mm256_set1_ps(levels);
  int64_t i = 0;
  alignas(32) int32_t lanes[8];
  for (; i + 8 <= n; i += 8) {
    __m256 code = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x + i), vscale),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    // max(code, 0) returns its second operand for NaN, as the scalar rule's 0.
    code = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(code, vzero_point), _mm256_setzero_ps()), vlevels);
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_cvtps_epi32(code));
    for (int l = 0; l < 8; ++l) codes[i + l] = uint8_t(lanes[l]);
  }
  for (; i < n; ++i) {
    const float code = std::nearbyint(x[i] / scale) + zero_point;
    codes[i] = !(code > 0.f) ? 0 : code >= levels ? uint8_t(levels) : uint8_t(code);
  }
}

// Every AVX2 CPU has POPCNT; this file is only run on those.
__attribute__((target("popcnt"))) int64_t popcount(const uint64_t* words, int64_t n) {
  int64_t ones = 0;
  for (int64_t i = 0; i < n; ++i) ones += __builtin_popcountll(words[i]);
  return ones;
}

}  // namespace

const BitplaneKernelTable kBitplaneAvx2 = {kRows, kCols, false, tile_any, pack, quantize, popcount};

}  // namespace tessera::compression::detail
