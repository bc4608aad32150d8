// The int8 GEMM primitive (u8 x s8 -> int32 with dequantize / requantize epilogues) on every
// kernel path (AVX-512 VNNI, AVX2, portable) against plain loops written here in double precision.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <random>
#include <vector>

#include "primitives/gemm_int8.h"
#include "primitives/primitives.h"
#include "tessera/thread_pool.h"

namespace tessera {
namespace {

namespace prim = primitives;
using Output = prim::Int8Epilogue::Output;

struct Problem {
  int64_t M, N, K;
  std::vector<uint8_t> a;
  std::vector<int8_t> b;  // K x N
  std::vector<uint8_t> residual;
  std::vector<float> scale, bias;
  std::vector<int32_t> b_zero;
};

Problem make_problem(int64_t M, int64_t N, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  Problem p{M, N, K, {}, {}, {}, {}, {}, {}};
  p.a.resize(size_t(M * K));
  p.b.resize(size_t(K * N));
  p.residual.resize(size_t(M * N));
  for (auto& v : p.a) v = uint8_t(rng() & 255);
  for (auto& v : p.b) v = int8_t(int(rng() & 255) - 128);
  for (auto& v : p.residual) v = uint8_t(rng() & 255);
  std::uniform_real_distribution<float> unit(0.5f, 1.5f), signed_unit(-1.f, 1.f);
  for (int64_t n = 0; n < N; ++n) {
    p.scale.push_back(1e-4f * unit(rng));
    p.bias.push_back(signed_unit(rng));
    p.b_zero.push_back(int32_t(rng() % 21) - 10);
  }
  return p;
}

// The epilogue's definition (gemm_int8.h), evaluated in double from the integers.
double dequantized(const Problem& p, const prim::Int8Epilogue& e, int64_t m, int64_t n) {
  double sum = 0;
  for (int64_t k = 0; k < p.K; ++k)
    sum += (double(p.a[size_t(m * p.K + k)]) - e.a_zero_point) *
           (double(p.b[size_t(k * p.N + n)]) - (e.b_zero_points ? e.b_zero_points[n] : 0));
  double f = sum * e.scale[e.scale_per_tensor ? 0 : n] + (e.bias ? e.bias[n] : 0.0);
  return e.relu ? std::max(f, 0.0) : f;
}

double quantize(double x, double scale, int zero) {
  return std::clamp(std::nearbyint(x / scale) + zero, 0.0, 255.0);
}

void expect_matches(const Problem& p, const prim::Int8Epilogue& e, const void* c, const std::string& what) {
  int64_t off_by_one = 0;
  for (int64_t m = 0; m < p.M; ++m)
    for (int64_t n = 0; n < p.N; ++n) {
      const size_t i = size_t(m * p.N + n);
      if (e.output == Output::s32) {
        int64_t acc = 0;
        for (int64_t k = 0; k < p.K; ++k) acc += int64_t(p.a[size_t(m * p.K + k)]) * p.b[size_t(k * p.N + n)];
        ASSERT_EQ(static_cast<const int32_t*>(c)[i], acc) << what << " m=" << m << " n=" << n;
        continue;
      }
      const double f = dequantized(p, e, m, n);
      if (e.output == Output::f32) {
        const float got = static_cast<const float*>(c)[i];
        ASSERT_NEAR(got, f, 1e-5 * (1 + std::abs(f))) << what << " m=" << m << " n=" << n;
        continue;
      }
      double q = quantize(f, e.output_scale, e.output_zero_point);
      if (e.residual) {
        double g = (q - e.output_zero_point) * e.output_scale +
                   (double(p.residual[i]) - e.residual_zero_point) * e.residual_scale;
        if (e.relu_after_residual) g = std::max(g, 0.0);
        q = quantize(g, e.sum_scale, e.sum_zero_point);
      }
      const int got = static_cast<const uint8_t*>(c)[i];
      // Multiplying by the reciprocal may move a value within an ulp of a half by one step.
      ASSERT_LE(std::abs(got - q), 1.0) << what << " m=" << m << " n=" << n;
      if (got != q && std::getenv("TESSERA_DEBUG_INT8")) std::printf("%s m=%ld n=%ld got %d want %g f=%g\n", what.c_str(), long(m), long(n), got, q, f);
      off_by_one += got != q;
    }
  if (e.output == Output::u8) EXPECT_LE(off_by_one, p.M * p.N / 100 + 1) << what;
}

std::vector<prim::Int8Epilogue> epilogues(const Problem& p) {
  std::vector<prim::Int8Epilogue> list;
  prim::Int8Epilogue raw;
  raw.output = Output::s32;
  list.push_back(raw);
  prim::Int8Epilogue f32;
  f32.scale = p.scale.data();
  f32.bias = p.bias.data();
  f32.a_zero_point = 119;
  list.push_back(f32);
  prim::Int8Epilogue asymmetric = f32;
  asymmetric.b_zero_points = p.b_zero.data();
  asymmetric.relu = true;
  asymmetric.scale_per_tensor = true;
  list.push_back(asymmetric);
  prim::Int8Epilogue u8 = f32;
  u8.output = Output::u8;
  u8.relu = true;
  // Output scale about the spread of the outputs, so values cover the whole u8 range and clip.
  u8.output_scale = 0.0211f * float(std::sqrt(double(p.K)));
  u8.output_zero_point = 37;
  list.push_back(u8);
  prim::Int8Epilogue skip = u8;
  skip.relu = false;
  skip.residual = p.residual.data();
  skip.ld_residual = p.N;
  // Scales with no simple ratio between them (as calibrated scales are): with round ratios such as
  // 2/3 and 5/6 many sums land exactly on a half and the rounding of ties decides them.
  skip.residual_scale = 0.0517f;
  skip.residual_zero_point = 128;
  skip.relu_after_residual = true;
  skip.sum_scale = 0.0313f * float(std::sqrt(double(p.K)));
  skip.sum_zero_point = 3;
  list.push_back(skip);
  return list;
}

std::vector<prim::Isa> isas() {
  std::vector<prim::Isa> list = {prim::Isa::scalar};
  if (prim::detected_isa() >= prim::Isa::avx2) list.push_back(prim::Isa::avx2);
  if (prim::detected_isa() >= prim::Isa::avx512) list.push_back(prim::Isa::avx512);
  return list;
}

std::string isa_label(prim::Isa isa) {
  std::string label = prim::isa_name(isa);
  if (isa == prim::Isa::avx512) label += prim::active_extensions().avx512_vnni ? "+vnni" : " (no vnni: avx2 kernel)";
  return label;
}

TEST(GemmInt8, EveryPathOutputAndShapeMatchesPlainLoops) {
  const prim::Isa saved = prim::active_isa();
  ThreadPool pool(2);
  const int64_t shapes[][3] = {{1, 1, 1}, {7, 16, 4}, {13, 37, 67}, {29, 64, 129}, {50, 80, 256}, {3, 130, 1000}};
  uint32_t seed = 1;
  for (prim::Isa isa : isas()) {
    prim::set_isa(isa);
    for (const auto& shape : shapes) {
      const Problem p = make_problem(shape[0], shape[1], shape[2], seed++);
      const prim::PackedInt8B packed(p.K, p.N, p.b.data(), p.N, false);
      for (const auto& e : epilogues(p)) {
        std::vector<int32_t> c(size_t(p.M * p.N));
        for (ThreadPool* threads : {static_cast<ThreadPool*>(nullptr), &pool}) {
          prim::gemm_u8s8_packed(p.M, p.a.data(), p.K, packed, c.data(), p.N, e, threads);
          expect_matches(p, e, c.data(),
                         isa_label(isa) + " " + std::to_string(p.M) + "x" + std::to_string(p.N) + "x" +
                             std::to_string(p.K) + " output " + std::to_string(int(e.output)));
        }
      }
    }
  }
  prim::set_isa(saved);
}

TEST(GemmInt8, TransposedPackingEqualsRowMajor) {
  const Problem p = make_problem(9, 23, 45, 99);
  std::vector<int8_t> bt(size_t(p.N * p.K));
  for (int64_t k = 0; k < p.K; ++k)
    for (int64_t n = 0; n < p.N; ++n) bt[size_t(n * p.K + k)] = p.b[size_t(k * p.N + n)];
  const prim::PackedInt8B packed(p.K, p.N, bt.data(), p.K, true);
  prim::Int8Epilogue raw;
  raw.output = Output::s32;
  std::vector<int32_t> c(size_t(p.M * p.N));
  prim::gemm_u8s8_packed(p.M, p.a.data(), p.K, packed, c.data(), p.N, raw, nullptr);
  expect_matches(p, raw, c.data(), "transposed");
}

// The extremes: 255 x -128 summed over a long K overflows int16 many times over (the AVX2 path
// must not saturate) and stays exact in int32.
TEST(GemmInt8, ExtremeValuesDoNotSaturate) {
  const prim::Isa saved = prim::active_isa();
  Problem p = make_problem(3, 20, 4100, 5);
  std::fill(p.a.begin(), p.a.end(), uint8_t(255));
  for (size_t i = 0; i < p.b.size(); ++i) p.b[i] = (i % 3) ? int8_t(-128) : int8_t(127);
  const prim::PackedInt8B packed(p.K, p.N, p.b.data(), p.N, false);
  prim::Int8Epilogue raw;
  raw.output = Output::s32;
  for (prim::Isa isa : isas()) {
    prim::set_isa(isa);
    std::vector<int32_t> c(size_t(p.M * p.N));
    prim::gemm_u8s8_packed(p.M, p.a.data(), p.K, packed, c.data(), p.N, raw, nullptr);
    expect_matches(p, raw, c.data(), "extremes " + isa_label(isa));
  }
  prim::set_isa(saved);
}

// Batch-reduce over shifted row windows, as an implicit 3-tap convolution along one axis:
// row m reads a[(m + tap) * channels ...] for each tap, against the explicit concatenation.
TEST(GemmInt8, BatchReduceEqualsConcatenatedRows) {
  const prim::Isa saved = prim::active_isa();
  const int64_t rows = 11, channels = 24, taps = 3, N = 40;
  std::mt19937 rng(7);
  std::vector<uint8_t> input(size_t((rows + taps) * channels));
  for (auto& v : input) v = uint8_t(rng() & 255);
  Problem p = make_problem(rows, N, taps * channels, 8);
  for (int64_t m = 0; m < rows; ++m)  // the explicit im2col rows
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t c = 0; c < channels; ++c) p.a[size_t(m * p.K + t * channels + c)] = input[size_t((m + t) * channels + c)];
  const prim::PackedInt8B packed(p.K, p.N, p.b.data(), p.N, false);
  const uint8_t* windows[taps];
  for (int64_t t = 0; t < taps; ++t) windows[t] = input.data() + t * channels;
  for (prim::Isa isa : isas()) {
    prim::set_isa(isa);
    for (const auto& e : epilogues(p)) {
      if (e.b_zero_points) continue;  // covered by the GEMM test; needs row sums of A
      std::vector<int32_t> c(size_t(rows * N));
      const prim::PreparedInt8Epilogue prepared(packed, e);
      prim::brgemm_u8s8(rows, windows, taps, channels, channels, packed, c.data(), N, prepared, e.residual, N,
                        nullptr);
      expect_matches(p, e, c.data(), "brgemm " + isa_label(isa));
    }
  }
  prim::set_isa(saved);
}

TEST(GemmInt8, BadArgumentsAreErrors) {
  const int8_t b[4] = {1, 2, 3, 4};
  EXPECT_THROW(prim::PackedInt8B(0, 4, b, 4, false), std::invalid_argument);
  const prim::PackedInt8B packed(1, 4, b, 4, false);
  prim::Int8Epilogue no_scale;
  uint8_t a[1] = {1};
  float c[4];
  EXPECT_THROW(prim::gemm_u8s8_packed(1, a, 1, packed, c, 4, no_scale, nullptr), std::invalid_argument);
  EXPECT_THROW(prim::gemm_u8s8_packed(1, a, 1, prim::PackedInt8B(), c, 4, no_scale, nullptr), std::invalid_argument);
}

}  // namespace
}  // namespace tessera
