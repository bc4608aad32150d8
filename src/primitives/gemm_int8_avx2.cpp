// AVX2 int8 microkernel. VPMADDUBSW would saturate its int16 pair sums (255 * 127 * 2 > 32767),
// so both operands are widened to int16 and multiplied with VPMADDWD, whose int32 pair sums are
// exact: half VNNI's rate, but right for every value. Used where AVX-512 VNNI is absent.
#include <immintrin.h>

#include <cstring>

#include "primitives/gemm_int8_kernels.h"

namespace tessera::primitives::detail {

namespace {

constexpr int kMr = 2;

template <int kRows>
void tile_kernel(const Int8TileArgs& args) {
  // Per row and panel, 4 accumulators; accumulator j holds columns 4j..4j+3, each as two int32
  // partial sums (k pairs 0-1 and 2-3) in adjacent lanes, added together at the end.
  alignas(32) int32_t out[kRows][64];
  for (int p = 0; p < args.panels; ++p) {
    __m256i acc[kRows][4];
    for (int r = 0; r < kRows; ++r)
      for (int j = 0; j < 4; ++j) acc[r][j] = _mm256_setzero_si256();
    const int8_t* b = args.b + p * args.b_panel_stride;
    auto step = [&](const __m256i (&x)[kRows]) {
      const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
      const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32));
      const __m256i w[4] = {_mm256_cvtepi8_epi16(_mm256_castsi256_si128(lo)),
                            _mm256_cvtepi8_epi16(_mm256_extracti128_si256(lo, 1)),
                            _mm256_cvtepi8_epi16(_mm256_castsi256_si128(hi)),
                            _mm256_cvtepi8_epi16(_mm256_extracti128_si256(hi, 1))};
      for (int r = 0; r < kRows; ++r)
        for (int j = 0; j < 4; ++j) acc[r][j] = _mm256_add_epi32(acc[r][j], _mm256_madd_epi16(x[r], w[j]));
      b += 64;
    };
    auto widen = [](int32_t quad) {
      // 4 u8 -> 4 int16 in 64 bits, repeated over the register: lanes pair (a0,a1), (a2,a3).
      const __m128i bytes = _mm_cvtsi32_si128(quad);
      return _mm256_broadcastq_epi64(_mm_cvtepu8_epi16(bytes));
    };
    for (int64_t batch = 0; batch < args.batch; ++batch) {
      const uint8_t* a = args.a_batch[batch] + args.a_offset;
      for (int64_t q = 0; q < args.quads_per_batch; ++q) {
        __m256i x[kRows];
        for (int r = 0; r < kRows; ++r) {
          int32_t v;
          std::memcpy(&v, a + r * args.lda + q * 4, 4);
          x[r] = widen(v);
        }
        step(x);
      }
      if (args.k_tail) {
        __m256i x[kRows];
        for (int r = 0; r < kRows; ++r) {
          int32_t v = 0;
          std::memcpy(&v, a + r * args.lda + args.quads_per_batch * 4, size_t(args.k_tail));
          x[r] = widen(v);
        }
        step(x);
      }
    }
    for (int r = 0; r < kRows; ++r) {
      // hadd gives [c0 c1 c4 c5 | c2 c3 c6 c7]; the permute puts the columns in order.
      const __m256i first = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[r][0], acc[r][1]), 0xd8);
      const __m256i second = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[r][2], acc[r][3]), 0xd8);
      _mm256_store_si256(reinterpret_cast<__m256i*>(&out[r][p * 16]), first);
      _mm256_store_si256(reinterpret_cast<__m256i*>(&out[r][p * 16 + 8]), second);
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int col = 0; col < args.cols; ++col) int8_epilogue_store(args, r, col, out[r][col]);
}

void tile(const Int8TileArgs& args) {
  if (args.rows >= 2) return tile_kernel<2>(args);
  return tile_kernel<1>(args);
}

}  // namespace

const Int8GemmKernel kInt8GemmAvx2 = {kMr, 4, tile};

}  // namespace tessera::primitives::detail
