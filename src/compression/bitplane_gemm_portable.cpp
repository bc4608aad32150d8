// Bit-plane GEMM microkernel and packer in plain C++ (std::popcount on 64-bit words), for CPUs
// without AVX2; also the model the vector kernels follow.
#include <bit>
#include <cmath>

#include "compression/bitplane_kernels.h"

namespace tessera::compression::detail {

namespace {

constexpr int kRows = 4, kCols = 4;

void tile(const BitplaneTileArgs& t) {
  int64_t acc[kRows][kCols] = {};
  auto accumulate = [&](const uint64_t* const* x, const uint64_t* const* y, bool xor_mode, bool negative) {
    for (int r = 0; r < t.rows; ++r)
      for (int c = 0; c < t.cols; ++c) {
        int64_t count = 0;
        for (int64_t w = 0; w < t.words; ++w)
          count += std::popcount(xor_mode ? x[r][w] ^ y[c][w] : x[r][w] & y[c][w]);
        acc[r][c] += negative ? -count : count;
      }
  };
  if (t.xor_mode) {
    accumulate(t.x_rows, t.y_rows, true, false);
  } else {
    for_each_plane_pair(t, [&](int i, int j, bool negative, bool doubling) {
      if (doubling)
        for (auto& row : acc)
          for (int64_t& value : row) value *= 2;
      const uint64_t* x[kRows];
      const uint64_t* y[kCols];
      for (int r = 0; r < t.rows; ++r) x[r] = t.x_rows[r] + j * t.words;
      for (int c = 0; c < t.cols; ++c) y[c] = t.y_rows[c] + i * t.words;
      accumulate(x, y, false, negative);
    });
  }
  for (int r = 0; r < t.rows; ++r)
    for (int c = 0; c < t.cols; ++c) t.raw[r * t.raw_ld + c] = t.xor_mode ? t.depth - 2 * acc[r][c] : acc[r][c];
}

void pack(const uint8_t* codes, int64_t ld, int64_t rows, int64_t depth, int bits, int64_t words,
          uint64_t* planes) {
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* src = codes + r * ld;
    uint64_t* dst = planes + r * bits * words;
    for (int64_t w = 0; w < words; ++w) {
      uint64_t plane_words[8] = {};
      for (int64_t e = 0; e < 64 && w * 64 + e < depth; ++e) {
        const unsigned code = src[w * 64 + e];
        for (int b = 0; b < bits; ++b) plane_words[b] |= uint64_t((code >> b) & 1u) << e;
      }
      for (int b = 0; b < bits; ++b) dst[b * words + w] = plane_words[b];
    }
  }
}

void quantize(const float* x, int64_t n, float scale, float zero_point, float levels, uint8_t* codes) {
  for (int64_t i = 0; i < n; ++i) {
    const float code = std::nearbyint(x[i] / scale) + zero_point;
    codes[i] = !(code > 0.f) ? 0 : code >= levels ? uint8_t(levels) : uint8_t(code);
  }
}

int64_t popcount(const uint64_t* words, int64_t n) {
  int64_t ones = 0;
  for (int64_t i = 0; i < n; ++i) ones += std::popcount(words[i]);
  return ones;
}

}  // namespace

const BitplaneKernelTable kBitplanePortable = {kRows, kCols, false, tile, pack, quantize, popcount};

}  // namespace tessera::compression::detail
