// BCQ fitting and the LUT-GEMM kernels: fit error against an independent greedy fit and across
// bit widths; every ISA path's products against a plain double loop on the reconstructed weights
// (odd sizes, tails in columns and rows, group sizes, 1 to 4 planes, batch 1 to 16).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "compression/bcq.h"
#include "compression/lut_gemm.h"
#include "tessera/error.h"
#include "test_support.h"

namespace tessera {
namespace {

using compression::BcqMatrix;
using compression::BcqOptions;
using compression::PackedBcq;

std::vector<float> normal_floats(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// The weights the fit stands for, rebuilt here from its signs and alphas.
std::vector<double> reconstruct(const BcqMatrix& m) {
  std::vector<double> w(size_t(m.rows * m.cols), 0.0);
  const int64_t groups = (m.cols + m.group_size - 1) / m.group_size;
  for (int i = 0; i < m.bits; ++i)
    for (int64_t r = 0; r < m.rows; ++r)
      for (int64_t c = 0; c < m.cols; ++c) {
        const int8_t s = m.signs[size_t((i * m.rows + r) * m.cols + c)];
        EXPECT_TRUE(s == 1 || s == -1);
        w[size_t(r * m.cols + c)] += double(m.alphas[size_t((i * m.rows + r) * groups + c / m.group_size)]) * s;
      }
  return w;
}

double squared_error(const std::vector<float>& w, const std::vector<double>& approx) {
  double e = 0;
  for (size_t i = 0; i < w.size(); ++i) e += (w[i] - approx[i]) * (w[i] - approx[i]);
  return e;
}

// Plain greedy BCQ of one group (the paper's initialization), independent of the library.
void greedy_group(const float* w, int64_t n, int q, std::vector<double>& approx_out) {
  std::vector<double> r(w, w + n);
  approx_out.assign(size_t(n), 0.0);
  for (int i = 0; i < q; ++i) {
    double a = 0;
    for (double v : r) a += std::fabs(v);
    a /= double(n);
    for (int64_t e = 0; e < n; ++e) {
      const double s = r[size_t(e)] >= 0 ? 1.0 : -1.0;
      r[size_t(e)] -= a * s;
      approx_out[size_t(e)] += a * s;
    }
  }
}

TEST(Bcq, GreedyMatchesPlainGreedyAndRefinementNeverLoses) {
  const int64_t rows = 23, cols = 300;  // the last group of 64 or 128 is short
  const std::vector<float> w = normal_floats(size_t(rows * cols), 7);
  for (int64_t group : {32, 64, 128}) {
    double previous_refined = 1e300;
    for (int q = 1; q <= 4; ++q) {
      SCOPED_TRACE("group " + std::to_string(group) + " q " + std::to_string(q));
      const BcqMatrix greedy = compression::bcq_fit(w.data(), rows, cols, cols, BcqOptions{q, group, 0});
      const BcqMatrix refined = compression::bcq_fit(w.data(), rows, cols, cols, BcqOptions{q, group, 20});
      // Greedy equals the plain greedy, group by group.
      std::vector<double> plain(size_t(rows * cols)), part;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c0 = 0; c0 < cols; c0 += group) {
          const int64_t n = std::min(group, cols - c0);
          greedy_group(w.data() + r * cols + c0, n, q, part);
          std::copy(part.begin(), part.end(), plain.begin() + r * cols + c0);
        }
      const std::vector<double> greedy_w = reconstruct(greedy), refined_w = reconstruct(refined);
      for (size_t i = 0; i < plain.size(); ++i) ASSERT_NEAR(greedy_w[i], plain[i], 1e-5) << i;
      // Refinement never loses, per group, and wins overall for q >= 2.
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c0 = 0; c0 < cols; c0 += group) {
          double eg = 0, er = 0;
          for (int64_t c = c0; c < std::min(cols, c0 + group); ++c) {
            const size_t k = size_t(r * cols + c);
            eg += (w[k] - greedy_w[k]) * (w[k] - greedy_w[k]);
            er += (w[k] - refined_w[k]) * (w[k] - refined_w[k]);
          }
          ASSERT_LE(er, eg * (1 + 1e-6) + 1e-9) << "row " << r << " column " << c0;
        }
      const double e_greedy = squared_error(w, greedy_w), e_refined = squared_error(w, refined_w);
      if (q >= 2) {
        EXPECT_LT(e_refined, e_greedy);
      }
      std::printf("group %ld q %d: squared error greedy %.4f refined %.4f (%.1f%% less)\n", long(group), q, e_greedy,
                  e_refined, 100 * (1 - e_refined / e_greedy));
      // More planes, less error.
      EXPECT_LT(e_refined, previous_refined);
      previous_refined = e_refined;
      // dequantize() agrees with the rebuild here.
      const std::vector<float> dq = refined.dequantize();
      for (size_t i = 0; i < dq.size(); ++i) ASSERT_NEAR(dq[i], refined_w[i], 1e-5);
    }
  }
}

TEST(Bcq, OnePlaneIsTheClosedFormOptimum) {
  // For q = 1 the least-squares optimum is b = sign(w), alpha = mean |w|.
  const std::vector<float> w = normal_floats(5 * 64, 11);
  const BcqMatrix m = compression::bcq_fit(w.data(), 5, 64, 64, BcqOptions{1, 64, 20});
  for (int64_t r = 0; r < 5; ++r) {
    double mean = 0;
    for (int64_t c = 0; c < 64; ++c) mean += std::fabs(w[size_t(r * 64 + c)]);
    EXPECT_NEAR(m.alpha(0, r, 0), mean / 64, 1e-5);
    for (int64_t c = 0; c < 64; ++c) EXPECT_EQ(m.sign(0, r, c), w[size_t(r * 64 + c)] >= 0 ? 1 : -1);
  }
}

TEST(Bcq, BadOptionsAndShapesAreErrors) {
  const std::vector<float> w(64, 1.f);
  EXPECT_THROW(compression::bcq_fit(w.data(), 1, 64, 64, BcqOptions{5, 64, 1}), Error);
  EXPECT_THROW(compression::bcq_fit(w.data(), 1, 64, 64, BcqOptions{0, 64, 1}), Error);
  EXPECT_THROW(compression::bcq_fit(w.data(), 1, 64, 64, BcqOptions{2, 48, 1}), Error);
  EXPECT_THROW(compression::bcq_fit(w.data(), 1, 64, 32, BcqOptions{2, 32, 1}), Error);
  EXPECT_THROW(PackedBcq(3, 64, 2, 32, std::vector<uint32_t>(5), std::vector<float>(5)), Error);
  EXPECT_THROW(compression::lut_gemm(PackedBcq(), 1, w.data(), 64, nullptr, false, nullptr, 1), Error);
}

// y = W x + bias (+ y) in double on the reconstructed weights; `scale` gets sum_k |W_nk x_k|-like
// magnitudes to bound the kernels' rounding.
void reference_product(const std::vector<double>& w, int64_t rows, int64_t cols, int64_t batch,
                       const std::vector<float>& x, int64_t ldx, const float* bias, bool accumulate,
                       const std::vector<float>& y_before, int64_t ldy, std::vector<double>& y,
                       std::vector<double>& scale) {
  y.assign(size_t(batch * ldy), 0.0);
  scale.assign(size_t(batch * ldy), 0.0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t n = 0; n < rows; ++n) {
      double s = 0, m = 0;
      for (int64_t k = 0; k < cols; ++k) {
        s += w[size_t(n * cols + k)] * x[size_t(b * ldx + k)];
        m += std::fabs(w[size_t(n * cols + k)]) * std::fabs(x[size_t(b * ldx + k)]) + std::fabs(x[size_t(b * ldx + k)]) * 1e-3;
      }
      if (bias) s += bias[n];
      if (accumulate) s += y_before[size_t(b * ldy + n)];
      y[size_t(b * ldy + n)] = s;
      scale[size_t(b * ldy + n)] = m;
    }
}

struct KernelCase {
  int64_t rows, cols, group;
};

TEST(LutGemm, EveryIsaMatchesPlainProductOnReconstructedWeights) {
  const KernelCase cases[] = {{1, 32, 32},  {16, 64, 32},   {17, 100, 32},  {33, 257, 64},
                              {45, 1000, 128}, {70, 384, 128}, {5, 31, 64}, {40, 4096, 128}};
  ThreadPool pool(2);
  uint32_t seed = 100;
  for (const KernelCase& kc : cases)
    for (int q = 1; q <= 4; ++q) {
      const std::vector<float> w = normal_floats(size_t(kc.rows * kc.cols), seed++, 0.05f);
      const BcqMatrix fit = compression::bcq_fit(w.data(), kc.rows, kc.cols, kc.cols, BcqOptions{q, kc.group, 3});
      const std::vector<double> wq = reconstruct(fit);
      const PackedBcq packed(fit);
      for (int64_t batch : {1, 2, 3, 4, 5, 8, 13, 16}) {
        if (kc.cols >= 4096 && batch > 4 && batch != 16) continue;  // keep the run short
        const int64_t ldx = kc.cols + 3, ldy = kc.rows + 5;
        const std::vector<float> x = testing::random_floats(size_t(batch * ldx), seed++);
        const std::vector<float> bias = testing::random_floats(size_t(kc.rows), seed++);
        const std::vector<float> y0 = testing::random_floats(size_t(batch * ldy), seed++);
        for (int variant = 0; variant < 2; ++variant) {
          const bool with_bias = variant == 1, accumulate = variant == 1;
          std::vector<double> expected, scale;
          reference_product(wq, kc.rows, kc.cols, batch, x, ldx, with_bias ? bias.data() : nullptr, accumulate, y0,
                            ldy, expected, scale);
          testing::for_each_isa([&](primitives::Isa isa) {
            for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
              std::vector<float> y = y0;
              compression::lut_gemm(isa, packed, batch, x.data(), ldx, with_bias ? bias.data() : nullptr,
                                    accumulate, y.data(), ldy, p);
              for (int64_t b = 0; b < batch; ++b)
                for (int64_t n = 0; n < ldy; ++n) {
                  const size_t i = size_t(b * ldy + n);
                  if (n >= kc.rows) {
                    ASSERT_EQ(y[i], y0[i]) << "wrote past the rows: " << n;  // padding untouched
                    continue;
                  }
                  ASSERT_NEAR(y[i], expected[i], 2e-5 * scale[i] + 1e-5)
                      << kc.rows << "x" << kc.cols << " g" << kc.group << " q" << q << " batch " << batch
                      << " row " << b << " col " << n << " bias/acc " << variant;
                }
            }
          });
        }
      }
    }
}

TEST(LutGemm, DispatchFollowsActiveIsaAndArraysRoundTrip) {
  const int64_t rows = 37, cols = 200;
  const std::vector<float> w = normal_floats(size_t(rows * cols), 3);
  const BcqMatrix fit = compression::bcq_fit(w.data(), rows, cols, cols, BcqOptions{3, 64, 5});
  const PackedBcq packed(fit);
  // Rebuilt from its arrays (as a graph's constants would be): same products.
  const PackedBcq again(rows, cols, 3, 64, packed.sign_words(), packed.alphas());
  const std::vector<double> wq = reconstruct(fit);
  const std::vector<float> x = testing::random_floats(size_t(cols), 5);
  std::vector<double> expected, scale;
  reference_product(wq, rows, cols, 1, x, cols, nullptr, false, {}, rows, expected, scale);
  testing::for_each_isa([&](primitives::Isa isa) {
    std::vector<float> y(static_cast<size_t>(rows));
    compression::lut_gemm(again, 1, x.data(), cols, nullptr, false, y.data(), rows);
    for (int64_t n = 0; n < rows; ++n) ASSERT_NEAR(y[size_t(n)], expected[size_t(n)], 2e-5 * scale[size_t(n)] + 1e-5);
  });
}

}  // namespace
}  // namespace tessera
