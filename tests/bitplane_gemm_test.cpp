// Bit-plane GEMM (src/compression/bitplane_gemm.h) against a plain scalar integer GEMM on the
// unpacked values: every bit width pair 1..8 x 1..8, each encoding, odd shapes, each kernel.
#include "compression/bitplane_gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "primitives/primitives.h"
#include "tessera/error.h"

using namespace tessera;
using namespace tessera::compression;

namespace {

std::vector<BitplaneKernel> available_kernels() {
  std::vector<BitplaneKernel> kernels;
  for (BitplaneKernel k : {BitplaneKernel::portable, BitplaneKernel::avx2, BitplaneKernel::avx512_vpopcntdq})
    if (bitplane_kernel_available(k)) kernels.push_back(k);
  return kernels;
}

int32_t low_of(int bits, BitplaneEncoding e) {
  return e == BitplaneEncoding::signed_int ? -(1 << (bits - 1)) : e == BitplaneEncoding::binary ? -1 : 0;
}
int32_t high_of(int bits, BitplaneEncoding e) {
  return e == BitplaneEncoding::signed_int ? (1 << (bits - 1)) - 1 : e == BitplaneEncoding::binary ? 1 : (1 << bits) - 1;
}

// Values spread over the whole range, extremes included (they exercise the sign plane).
std::vector<int32_t> random_values(int64_t count, int bits, BitplaneEncoding e, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> dist(low_of(bits, e), high_of(bits, e));
  std::vector<int32_t> v(static_cast<size_t>(count));
  for (auto& x : v) {
    x = dist(rng);
    if (e == BitplaneEncoding::binary) x = x >= 0 ? 1 : -1;
  }
  return v;
}

std::vector<int64_t> reference_gemm(const std::vector<int32_t>& x, const std::vector<int32_t>& y, int64_t M,
                                    int64_t N, int64_t K) {
  std::vector<int64_t> c(size_t(M * N), 0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      int64_t sum = 0;
      for (int64_t k = 0; k < K; ++k) sum += int64_t(x[size_t(m * K + k)]) * y[size_t(n * K + k)];
      c[size_t(m * N + n)] = sum;
    }
  return c;
}

struct Case {
  int x_bits, y_bits;
  BitplaneEncoding x_encoding, y_encoding;
};

// Checks one case on one kernel and shape; returns the number of wrong elements.
int64_t check_case(const Case& c, BitplaneKernel kernel, int64_t M, int64_t N, int64_t K, ThreadPool* pool,
                   unsigned seed) {
  std::mt19937 rng(seed);
  const auto x = random_values(M * K, c.x_bits, c.x_encoding, rng);
  const auto y = random_values(N * K, c.y_bits, c.y_encoding, rng);
  const BitplaneMatrix px = pack_bitplanes(x.data(), M, K, K, c.x_bits, c.x_encoding, kernel);
  const BitplaneMatrix py = pack_bitplanes(y.data(), N, K, K, c.y_bits, c.y_encoding, kernel);
  const auto expected = reference_gemm(x, y, M, N, K);
  std::vector<int64_t> got(size_t(M * N), -12345);
  bitplane_gemm_i64(px, py, got.data(), N, pool, kernel);
  int64_t wrong = 0;
  for (size_t i = 0; i < got.size(); ++i) wrong += got[i] != expected[i];
  return wrong;
}

std::string describe(const Case& c, BitplaneKernel kernel, int64_t M, int64_t N, int64_t K) {
  return std::string(bitplane_kernel_name(kernel)) + " x " + std::to_string(c.x_bits) + "-bit " +
         bitplane_encoding_name(c.x_encoding) + ", y " + std::to_string(c.y_bits) + "-bit " +
         bitplane_encoding_name(c.y_encoding) + ", M=" + std::to_string(M) + " N=" + std::to_string(N) +
         " K=" + std::to_string(K);
}

}  // namespace

TEST(BitplaneGemm, PackedValuesDecodeToTheInput) {
  std::mt19937 rng(7);
  for (BitplaneKernel kernel : available_kernels())
    for (auto e : {BitplaneEncoding::unsigned_int, BitplaneEncoding::signed_int, BitplaneEncoding::binary})
      for (int bits = 1; bits <= (e == BitplaneEncoding::binary ? 1 : 8); ++bits) {
        const int64_t rows = 3, depth = 131;
        const auto v = random_values(rows * depth, bits, e, rng);
        const BitplaneMatrix m = pack_bitplanes(v.data(), rows, depth, depth, bits, e, kernel);
        EXPECT_EQ(m.words_per_plane(), 8);
        for (int64_t r = 0; r < rows; ++r) {
          int64_t sum = 0;
          for (int64_t k = 0; k < depth; ++k) {
            ASSERT_EQ(m.value(r, k), v[size_t(r * depth + k)]) << bitplane_kernel_name(kernel) << " " << bits;
            sum += v[size_t(r * depth + k)];
          }
          EXPECT_EQ(m.row_sum(r), sum);
          // Padding past the depth is zero in every plane.
          for (int b = 0; b < bits; ++b) EXPECT_EQ(m.plane(r, b)[2] >> (131 - 128), 0u);
        }
      }
}

// Every (x bits, y bits) in 1..8 x 1..8, unsigned x unsigned, signed x signed and signed x
// unsigned, on every kernel, with M, N not multiples of any tile and K not a multiple of 64.
TEST(BitplaneGemm, AllBitWidthsMatchScalarGemm) {
  const int64_t M = 9, N = 13, K = 147;
  for (BitplaneKernel kernel : available_kernels())
    for (int xb = 1; xb <= 8; ++xb)
      for (int yb = 1; yb <= 8; ++yb)
        for (auto [xe, ye] : {std::pair{BitplaneEncoding::unsigned_int, BitplaneEncoding::unsigned_int},
                              {BitplaneEncoding::signed_int, BitplaneEncoding::signed_int},
                              {BitplaneEncoding::signed_int, BitplaneEncoding::unsigned_int}}) {
          const Case c{xb, yb, xe, ye};
          EXPECT_EQ(check_case(c, kernel, M, N, K, nullptr, unsigned(xb * 10 + yb)), 0)
              << describe(c, kernel, M, N, K);
        }
}

// The binary {-1,+1} encoding: XOR mode when both are binary, the 2b - 1 correction when one is.
TEST(BitplaneGemm, BinaryEncodingMatchesScalarGemm) {
  for (BitplaneKernel kernel : available_kernels())
    for (int64_t K : {1, 63, 64, 65, 511, 513, 1000}) {
      const Case both{1, 1, BitplaneEncoding::binary, BitplaneEncoding::binary};
      EXPECT_EQ(check_case(both, kernel, 11, 7, K, nullptr, unsigned(K)), 0) << describe(both, kernel, 11, 7, K);
      for (int bits : {1, 3, 8}) {
        const Case left{1, bits, BitplaneEncoding::binary, BitplaneEncoding::unsigned_int};
        const Case right{bits, 1, BitplaneEncoding::signed_int, BitplaneEncoding::binary};
        EXPECT_EQ(check_case(left, kernel, 5, 14, K, nullptr, 3), 0) << describe(left, kernel, 5, 14, K);
        EXPECT_EQ(check_case(right, kernel, 6, 9, K, nullptr, 4), 0) << describe(right, kernel, 6, 9, K);
      }
    }
}

// Depths over several 512-bit vectors and past the AVX2 kernel's byte-counter block (31 x 256
// bits), odd everywhere, single-threaded and on a pool (blocks split over tasks).
TEST(BitplaneGemm, LongDepthsAndThreadsMatchScalarGemm) {
  ThreadPool pool(2);
  for (BitplaneKernel kernel : available_kernels())
    for (int64_t K : {1537, 8001}) {
      const Case signed_case{4, 3, BitplaneEncoding::signed_int, BitplaneEncoding::signed_int};
      const Case binary_case{1, 1, BitplaneEncoding::binary, BitplaneEncoding::binary};
      for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
        EXPECT_EQ(check_case(signed_case, kernel, 17, 23, K, p, 11), 0) << describe(signed_case, kernel, 17, 23, K);
        EXPECT_EQ(check_case(binary_case, kernel, 5, 30, K, p, 12), 0) << describe(binary_case, kernel, 5, 30, K);
      }
    }
  // Many blocks: more rows than one row block and more columns than the thread split.
  const Case wide{2, 2, BitplaneEncoding::unsigned_int, BitplaneEncoding::signed_int};
  EXPECT_EQ(check_case(wide, BitplaneKernel::automatic, 301, 97, 200, &pool, 13), 0)
      << describe(wide, BitplaneKernel::automatic, 301, 97, 200);
}

// `automatic` follows primitives::set_isa: lowering the ISA lowers the kernel.
TEST(BitplaneGemm, AutomaticKernelFollowsActiveIsa) {
  namespace prim = tessera::primitives;
  const prim::Isa saved = prim::active_isa();
  for (prim::Isa isa : {prim::Isa::scalar, prim::Isa::avx2, prim::Isa::avx512}) {
    if (prim::set_isa(isa) != isa) continue;
    const BitplaneKernel expected = isa == prim::Isa::scalar ? BitplaneKernel::portable
                                    : isa == prim::Isa::avx2 ? BitplaneKernel::avx2
                                    : prim::detected_extensions().avx512_vpopcntdq ? BitplaneKernel::avx512_vpopcntdq
                                                                                    : BitplaneKernel::avx2;
    EXPECT_EQ(bitplane_kernel_in_use(), expected) << prim::isa_name(isa);
    const Case c{3, 5, BitplaneEncoding::signed_int, BitplaneEncoding::unsigned_int};
    EXPECT_EQ(check_case(c, BitplaneKernel::automatic, 6, 8, 300, nullptr, 5), 0) << prim::isa_name(isa);
  }
  prim::set_isa(saved);
}

// The int32 store and the dequantizing f32 epilogue (scales per row and column, zero points on
// both sides, biases, ReLU) against plain float loops on the dequantized values.
TEST(BitplaneGemm, Int32AndDequantizingEpilogue) {
  std::mt19937 rng(21);
  const int64_t M = 10, N = 7, K = 300;
  const auto x = random_values(M * K, 4, BitplaneEncoding::unsigned_int, rng);
  const auto y = random_values(N * K, 3, BitplaneEncoding::signed_int, rng);
  const BitplaneMatrix px = pack_bitplanes(x.data(), M, K, K, 4, BitplaneEncoding::unsigned_int);
  const BitplaneMatrix py = pack_bitplanes(y.data(), N, K, K, 3, BitplaneEncoding::signed_int);
  const auto expected = reference_gemm(x, y, M, N, K);
  std::vector<int32_t> c32(size_t(M * N));
  bitplane_gemm_i32(px, py, c32.data(), N, nullptr);
  for (size_t i = 0; i < c32.size(); ++i) EXPECT_EQ(c32[i], expected[i]);

  std::vector<float> x_scales(static_cast<size_t>(M)), y_scales(static_cast<size_t>(N)), row_bias(static_cast<size_t>(M)),
      col_bias(static_cast<size_t>(N));
  std::uniform_real_distribution<float> dist(0.01f, 0.1f);
  for (auto* v : {&x_scales, &y_scales, &row_bias, &col_bias})
    for (float& s : *v) s = dist(rng);
  for (float& b : col_bias) b -= 0.3f;  // some outputs negative, so ReLU matters
  BitplaneEpilogue e;
  e.scale = 0.5f;
  e.x_scales = x_scales.data();
  e.y_scales = y_scales.data();
  e.x_zero_point = 6;
  e.y_zero_point = -1;
  e.bias_per_row = row_bias.data();
  e.bias_per_column = col_bias.data();
  for (bool relu : {false, true}) {
    e.relu = relu;
    std::vector<float> got(size_t(M * N));
    bitplane_gemm_f32(px, py, got.data(), N, e, nullptr);
    int negatives = 0;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double sum = 0;
        for (int64_t k = 0; k < K; ++k)
          sum += (double(x_scales[m]) * (x[size_t(m * K + k)] - 6)) * (double(y_scales[n]) * (y[size_t(n * K + k)] + 1));
        double want = 0.5 * sum + row_bias[m] + col_bias[n];
        negatives += want < 0;
        if (relu) want = std::max(want, 0.0);
        EXPECT_NEAR(got[size_t(m * N + n)], want, 1e-4 * (1 + std::abs(want))) << m << " " << n;
      }
    EXPECT_GT(negatives, 0);
  }
}

TEST(BitplaneGemm, BadInputsGiveClearErrors) {
  const std::vector<int32_t> values = {0, 1, 2, 8};
  EXPECT_THROW(pack_bitplanes(values.data(), 1, 4, 4, 3, BitplaneEncoding::unsigned_int), Error);  // 8 > 7
  EXPECT_THROW(pack_bitplanes(values.data(), 1, 4, 4, 4, BitplaneEncoding::signed_int), Error);    // 8 > 7
  EXPECT_THROW(pack_bitplanes(values.data(), 1, 4, 4, 1, BitplaneEncoding::binary), Error);        // 0 not +-1
  EXPECT_THROW(BitplaneMatrix(1, 4, 9, BitplaneEncoding::unsigned_int), Error);
  EXPECT_THROW(BitplaneMatrix(1, 4, 2, BitplaneEncoding::binary), Error);
  EXPECT_THROW(BitplaneMatrix(1, 0, 2, BitplaneEncoding::unsigned_int), Error);
  try {
    pack_bitplanes(values.data(), 1, 4, 4, 3, BitplaneEncoding::unsigned_int);
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("value 8 at (0, 3)"), std::string::npos) << error.what();
  }
  const BitplaneMatrix a(2, 10, 2, BitplaneEncoding::unsigned_int), b(2, 11, 2, BitplaneEncoding::unsigned_int);
  std::vector<int64_t> c(4);
  EXPECT_THROW(bitplane_gemm_i64(a, b, c.data(), 2, nullptr), Error);
  // 8-bit x 8-bit over 40000 terms can exceed int32: refused, the int64 form works.
  const BitplaneMatrix big(1, 40000, 8, BitplaneEncoding::unsigned_int);
  std::vector<int32_t> c32(1);
  EXPECT_THROW(bitplane_gemm_i32(big, big, c32.data(), 1, nullptr), Error);
  std::vector<int64_t> c64(1, -1);
  bitplane_gemm_i64(big, big, c64.data(), 1, nullptr);
  EXPECT_EQ(c64[0], 0);
}

// The vectorized activation quantizer of each kernel against the rule written out here: ties
// (exact halves round to even), values past both ends, infinities and NaN, odd lengths.
TEST(BitplaneGemm, QuantizeToCodesMatchesTheRule) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-3.f, 5.f);
  const float scale = 0.25f;
  std::vector<float> x;
  for (int i = 0; i < 200; ++i) x.push_back(dist(rng));
  for (int k = -12; k < 40; ++k) x.push_back((float(k) + 0.5f) * scale);  // exact ties
  x.push_back(std::numeric_limits<float>::infinity());
  x.push_back(-std::numeric_limits<float>::infinity());
  x.push_back(std::numeric_limits<float>::quiet_NaN());
  x.push_back(1e30f);
  for (BitplaneKernel kernel : available_kernels())
    for (int bits : {1, 2, 4, 8})
      for (int32_t zero_point : {0, 1, (1 << bits) - 1}) {
        const int64_t n = int64_t(x.size()) - (bits % 3);  // odd tails too
        std::vector<uint8_t> codes(x.size(), 0xEE);
        quantize_to_codes(x.data(), n, scale, zero_point, bits, codes.data(), kernel);
        const double levels = (1 << bits) - 1;
        for (int64_t i = 0; i < n; ++i) {
          double expected = 0;
          if (!std::isnan(x[i])) {
            const double ratio = double(x[i] / scale);  // the float quotient, then half-to-even
            double rounded = std::floor(ratio);
            const double fraction = ratio - rounded;
            if (fraction > 0.5 || (fraction == 0.5 && std::fmod(rounded, 2.0) != 0)) rounded += 1;
            expected = std::clamp(rounded + zero_point, 0.0, levels);
          }
          ASSERT_EQ(int(codes[size_t(i)]), int(expected))
              << bitplane_kernel_name(kernel) << " x=" << x[i] << " bits=" << bits << " zp=" << zero_point;
        }
        EXPECT_EQ(codes[size_t(n)], 0xEE) << "wrote past n";
      }
}
