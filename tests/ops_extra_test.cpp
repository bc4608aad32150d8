// Kernel-level tests of the losses, index, sort/scan, quantization, signal, linear-algebra and
// sampling operators, each checked against a plain loop written here (odd sizes, ties, negative indices).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "ops_test_helpers.h"

namespace tessera::testing {
namespace {

Tensor random_floats(Shape shape, uint32_t seed, float lo = -2.f, float hi = 2.f) {
  Tensor t(DType::f32, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

Tensor typed(DType dtype, Shape shape, std::vector<int64_t> values) {
  return Tensor::from_int64(values, std::move(shape)).cast(dtype);
}

Attributes attrs_int(const std::string& name, int64_t v) {
  Attributes a;
  a.set_int(name, v);
  return a;
}

// ---- losses ---------------------------------------------------------------------------------

// Plain NLL over scores [N, C, D] for checking: returns the per-element losses and the weight sum.
double reference_nll(const Tensor& log_prob, const std::vector<int64_t>& target, const Tensor* weight,
                     int64_t ignore, bool has_ignore, std::vector<double>* per_element, double* weight_sum) {
  int64_t n = log_prob.dim(0), c = log_prob.dim(1), d = log_prob.numel() / (n * c);
  double total = 0;
  *weight_sum = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) {
      int64_t t = target[size_t(i * d + j)];
      double loss = 0;
      if (!(has_ignore && t == ignore)) {
        double w = weight ? weight->data<float>()[t] : 1.0;
        loss = -log_prob.data<float>()[(i * c + t) * d + j] * w;
        *weight_sum += w;
      }
      per_element->push_back(loss);
      total += loss;
    }
  return total;
}

TEST(LossOps, NegativeLogLikelihoodWeightedMeanIgnoresIndex) {
  Tensor scores = random_floats({3, 5, 2, 3}, 1);
  std::vector<int64_t> target{0, 4, 2, 1, 3, 3, 4, 4, 0, 2, 1, 0, 3, 2, 2, 1, 4, 0};
  Tensor weight = random_floats({5}, 2, 0.1f, 1.f);
  Attributes a;
  a.set_int("ignore_index", 4);
  a.set_string("reduction", "mean");
  Tensor out = run_op("NegativeLogLikelihoodLoss", 13, {scores, ints({3, 2, 3}, target), weight}, a)[0];
  std::vector<double> per;
  double weight_sum = 0;
  double total = reference_nll(scores, target, &weight, 4, true, &per, &weight_sum);
  EXPECT_EQ(out.shape(), Shape{});
  expect_values(out, {total / weight_sum}, 1e-5);

  a.set_string("reduction", "none");
  Tensor none = run_op("NegativeLogLikelihoodLoss", 13, {scores, ints({3, 2, 3}, target), weight}, a)[0];
  EXPECT_EQ(none.shape(), (Shape{3, 2, 3}));
  expect_values(none, per, 1e-5);
}

TEST(LossOps, SoftmaxCrossEntropyMatchesLogSoftmaxThenNll) {
  Tensor scores = random_floats({4, 3, 5}, 3, -4.f, 4.f);
  std::vector<int64_t> target(20);
  for (size_t i = 0; i < target.size(); ++i) target[i] = int64_t((i * 7) % 3);
  Attributes a;
  a.set_string("reduction", "sum");
  auto out = run_op("SoftmaxCrossEntropyLoss", 13, {scores, ints({4, 5}, target)}, a, 2);
  // log-softmax over the class axis by hand
  Tensor log_prob(DType::f32, {4, 3, 5});
  for (int64_t n = 0; n < 4; ++n)
    for (int64_t d = 0; d < 5; ++d) {
      double peak = -1e30, sum = 0;
      for (int64_t c = 0; c < 3; ++c)
        peak = std::max<double>(peak, scores.data<float>()[(n * 3 + c) * 5 + d]);
      for (int64_t c = 0; c < 3; ++c) sum += std::exp(scores.data<float>()[(n * 3 + c) * 5 + d] - peak);
      for (int64_t c = 0; c < 3; ++c)
        log_prob.data<float>()[(n * 3 + c) * 5 + d] =
            float(scores.data<float>()[(n * 3 + c) * 5 + d] - peak - std::log(sum));
    }
  std::vector<double> per;
  double weight_sum = 0;
  double total = reference_nll(log_prob, target, nullptr, 0, false, &per, &weight_sum);
  expect_values(out[0], {total}, 1e-5, "loss");
  expect_values(out[1], values_of(log_prob), 1e-5, "log_prob");
}

// ---- sort / scan ----------------------------------------------------------------------------

TEST(SortScanOps, TopKBreaksTiesByIndexOnAMiddleAxis) {
  // [2, 6, 3] with many repeated values along axis 1.
  std::vector<int64_t> raw(36);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = int64_t((i * 5) % 4);
  Tensor x = typed(DType::f32, {2, 6, 3}, raw);
  for (bool largest : {true, false}) {
    Attributes a;
    a.set_int("axis", 1);
    a.set_int("largest", largest);
    auto out = run_op("TopK", 11, {x, ints1d({4})}, a, 2);
    ASSERT_EQ(out[0].shape(), (Shape{2, 4, 3}));
    std::vector<double> values(24, 0), indices(24, 0);
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t c = 0; c < 3; ++c) {
        std::vector<int64_t> order(6);
        std::iota(order.begin(), order.end(), 0);
        auto at = [&](int64_t i) { return raw[size_t((n * 6 + i) * 3 + c)]; };
        std::stable_sort(order.begin(), order.end(),
                         [&](int64_t p, int64_t q) { return largest ? at(p) > at(q) : at(p) < at(q); });
        for (int64_t k = 0; k < 4; ++k) {
          values[size_t((n * 4 + k) * 3 + c)] = double(at(order[size_t(k)]));
          indices[size_t((n * 4 + k) * 3 + c)] = double(order[size_t(k)]);
        }
      }
    expect_values(out[0], values, 0, "values");
    expect_values(out[1], indices, 0, "indices");
    EXPECT_EQ(out[1].dtype(), DType::i64);
  }
}

TEST(SortScanOps, CumSumExclusiveReverseOnInts) {
  std::vector<int64_t> raw{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  Tensor x = typed(DType::i32, {3, 4}, raw);
  for (int exclusive : {0, 1})
    for (int reverse : {0, 1}) {
      Attributes a;
      a.set_int("exclusive", exclusive);
      a.set_int("reverse", reverse);
      Tensor out = run_op("CumSum", 14, {x, ints({}, {-1})}, a)[0];
      std::vector<double> expected(12);
      for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 4; ++c) {
          double sum = 0;
          for (int k = 0; k < 4; ++k) {
            bool take = reverse ? (exclusive ? k > c : k >= c) : (exclusive ? k < c : k <= c);
            if (take) sum += double(raw[size_t(r * 4 + k)]);
          }
          expected[size_t(r * 4 + c)] = sum;
        }
      expect_values(out, expected, 0,
                    "exclusive " + std::to_string(exclusive) + " reverse " + std::to_string(reverse));
    }
}

TEST(SortScanOps, HardmaxPicksFirstMaximum) {
  Tensor x = floats({2, 4}, {1, 3, 3, 0, -1, -1, -2, -1});
  expect_values(run_op("Hardmax", 13, {x})[0], {0, 1, 0, 0, 1, 0, 0, 0});
}

// ---- index operators ------------------------------------------------------------------------

TEST(IndexOps, GatherNDWithBatchDimsAndNegativeIndices) {
  Tensor data = random_floats({2, 3, 4, 5}, 4);
  // indices [2, 2, 2]: per batch two (row, col) pairs into data[b] of shape [3, 4, 5].
  std::vector<int64_t> idx{0, 1, -1, -2, 2, 3, 1, 0};
  Tensor out = run_op("GatherND", 13, {data, ints({2, 2, 2}, idx)}, attrs_int("batch_dims", 1))[0];
  ASSERT_EQ(out.shape(), (Shape{2, 2, 5}));
  std::vector<double> expected;
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < 2; ++t) {
      int64_t i = idx[size_t((b * 2 + t) * 2)], j = idx[size_t((b * 2 + t) * 2 + 1)];
      if (i < 0) i += 3;
      if (j < 0) j += 4;
      for (int k = 0; k < 5; ++k) expected.push_back(data.data<float>()[((b * 3 + i) * 4 + j) * 5 + k]);
    }
  expect_values(out, expected, 0);
}

TEST(IndexOps, ScatterNDReductionsApplyInOrder) {
  Tensor data = floats({4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  Tensor updates = floats({3, 2}, {10, 20, 30, 40, 50, 60});
  std::vector<int64_t> idx{1, 3, 1};
  for (std::string reduction : {"none", "add", "mul", "max", "min"}) {
    Attributes a;
    a.set_string("reduction", reduction);
    Tensor out = run_op("ScatterND", 18, {data, ints({3, 1}, idx), updates}, a)[0];
    std::vector<double> expected = values_of(data);
    for (int t = 0; t < 3; ++t)
      for (int k = 0; k < 2; ++k) {
        double& e = expected[size_t(idx[size_t(t)] * 2 + k)];
        double u = updates.data<float>()[t * 2 + k];
        if (reduction == "none") e = u;
        if (reduction == "add") e += u;
        if (reduction == "mul") e *= u;
        if (reduction == "max") e = std::max(e, u);
        if (reduction == "min") e = std::min(e, u);
      }
    expect_values(out, expected, 0, reduction);
  }
}

TEST(IndexOps, ScatterElementsAddOnAxisOneWithDuplicates) {
  Tensor data = floats({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor updates = floats({2, 2}, {1, 10, 100, 1000});
  std::vector<int64_t> idx{2, 2, 0, -3};
  Attributes a;
  a.set_int("axis", 1);
  a.set_string("reduction", "add");
  Tensor out = run_op("ScatterElements", 16, {data, ints({2, 2}, idx), updates}, a)[0];
  std::vector<double> expected = values_of(data);
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 2; ++c) {
      int64_t j = idx[size_t(r * 2 + c)];
      if (j < 0) j += 3;
      expected[size_t(r * 3 + j)] += updates.data<float>()[r * 2 + c];
    }
  expect_values(out, expected, 0);
}

TEST(IndexOps, OneHotOnMiddleAxisWithNegativeAndOutOfRange) {
  std::vector<int64_t> idx{0, -1, 7, 2, 1, -4};
  Tensor values = floats({2}, {-1, 5});
  Tensor out = run_op("OneHot", 11, {ints({2, 3}, idx), ints({}, {4}), values}, attrs_int("axis", 1))[0];
  ASSERT_EQ(out.shape(), (Shape{2, 4, 3}));
  std::vector<double> expected(24, -1);
  for (int a = 0; a < 2; ++a)
    for (int c = 0; c < 3; ++c) {
      int64_t i = idx[size_t(a * 3 + c)];
      if (i < 0) i += 4;
      if (i >= 0 && i < 4) expected[size_t((a * 4 + i) * 3 + c)] = 5;
    }
  expect_values(out, expected, 0);
}

TEST(IndexOps, DepthToSpaceModesAndSpaceToDepthRoundTrip) {
  int64_t n = 2, c = 8, h = 3, w = 2, b = 2, depth = c / (b * b);
  Tensor x = random_floats({n, c, h, w}, 5);
  for (std::string mode : {"DCR", "CRD"}) {
    Attributes a;
    a.set_int("blocksize", b);
    a.set_string("mode", mode);
    Tensor out = run_op("DepthToSpace", 13, {x}, a)[0];
    ASSERT_EQ(out.shape(), (Shape{n, depth, h * b, w * b}));
    std::vector<double> expected;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t d = 0; d < depth; ++d)
        for (int64_t y = 0; y < h * b; ++y)
          for (int64_t z = 0; z < w * b; ++z) {
            int64_t by = y % b, bz = z % b;
            int64_t channel = mode == "DCR" ? (by * b + bz) * depth + d : (d * b + by) * b + bz;
            expected.push_back(x.data<float>()[((i * c + channel) * h + y / b) * w + z / b]);
          }
    expect_values(out, expected, 0, mode);
    if (mode == "DCR") {
      Tensor back = run_op("SpaceToDepth", 13, {out}, attrs_int("blocksize", b))[0];
      expect_values(back, values_of(x), 0, "SpaceToDepth");
    }
  }
}

TEST(IndexOps, ReverseSequenceBatchMajor) {
  Tensor x = floats({2, 4}, {0, 1, 2, 3, 4, 5, 6, 7});
  Attributes a;
  a.set_int("batch_axis", 0);
  a.set_int("time_axis", 1);
  expect_values(run_op("ReverseSequence", 10, {x, ints1d({3, 1})}, a)[0], {2, 1, 0, 3, 4, 5, 6, 7});
}

// ---- quantization ---------------------------------------------------------------------------

TEST(QuantizeOps, QuantizeLinearPerAxisRoundsHalfToEven) {
  Tensor x = floats({2, 3}, {0.5f, 1.5f, 2.5f, -0.5f, 300.f, -300.f});
  Tensor scale = floats({2}, {1.f, 2.f});
  Tensor zp = typed(DType::i8, {2}, {0, 10});
  Tensor out = run_op("QuantizeLinear", 13, {x, scale, zp}, attrs_int("axis", 0))[0];
  EXPECT_EQ(out.dtype(), DType::i8);
  std::vector<double> expected;
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 3; ++c) {
      double q = std::nearbyint(x.data<float>()[r * 3 + c] / scale.data<float>()[r]) + (r == 0 ? 0 : 10);
      expected.push_back(std::clamp(q, -128.0, 127.0));
    }
  expect_values(out, expected, 0);
  Tensor back = run_op("DequantizeLinear", 13, {out, scale, zp}, attrs_int("axis", 0))[0];
  std::vector<double> dequantized;
  for (int i = 0; i < 6; ++i)
    dequantized.push_back((expected[size_t(i)] - (i < 3 ? 0 : 10)) * (i < 3 ? 1 : 2));
  expect_values(back, dequantized, 0);
}

TEST(QuantizeOps, QLinearMatMulMatchesFloatReference) {
  int64_t M = 3, K = 5, N = 4;
  std::vector<int64_t> a_raw, b_raw;
  for (int64_t i = 0; i < M * K; ++i) a_raw.push_back((i * 37) % 256);
  for (int64_t i = 0; i < K * N; ++i) b_raw.push_back((i * 53) % 256 - 128);
  Tensor a = typed(DType::u8, {M, K}, a_raw), b = typed(DType::i8, {K, N}, b_raw);
  float a_scale = 0.02f, b_scale = 0.01f, y_scale = 0.05f;
  int64_t a_zp = 113, b_zp = -3, y_zp = 128;
  Tensor out = run_op("QLinearMatMul", 10,
                      {a, floats({}, {a_scale}), typed(DType::u8, {}, {a_zp}), b, floats({}, {b_scale}),
                       typed(DType::i8, {}, {b_zp}), floats({}, {y_scale}), typed(DType::u8, {}, {y_zp})})[0];
  ASSERT_EQ(out.shape(), (Shape{M, N}));
  std::vector<double> expected;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      int64_t acc = 0;
      for (int64_t k = 0; k < K; ++k)
        acc += (a_raw[size_t(m * K + k)] - a_zp) * (b_raw[size_t(k * N + n)] - b_zp);
      double real = double(acc) * a_scale * b_scale;
      expected.push_back(std::clamp(std::nearbyint(real / y_scale) + double(y_zp), 0.0, 255.0));
    }
  // One step of rounding slack for values that land on a .5 boundary in float.
  expect_values(out, expected, 1.0 / 255);
}

TEST(QuantizeOps, ConvIntegerStridedPaddedGroups) {
  // x [1, 4, 5, 6] uint8, w [2, 2, 3, 2] (2 groups), pads 1, stride 2.
  std::vector<int64_t> x_raw(120), w_raw(24);
  for (size_t i = 0; i < x_raw.size(); ++i) x_raw[i] = int64_t((i * 29) % 256);
  for (size_t i = 0; i < w_raw.size(); ++i) w_raw[i] = int64_t((i * 11) % 17);
  Tensor x = typed(DType::u8, {1, 4, 5, 6}, x_raw), w = typed(DType::u8, {2, 2, 3, 2}, w_raw);
  Attributes a;
  a.set_int("group", 2);
  a.set_ints("pads", {1, 1, 1, 1});
  a.set_ints("strides", {2, 2});
  int64_t x_zp = 7, w_zp = 3;
  Tensor out =
      run_op("ConvInteger", 10, {x, w, typed(DType::u8, {}, {x_zp}), typed(DType::u8, {}, {w_zp})}, a)[0];
  int64_t oh = (5 + 2 - 3) / 2 + 1, ow = (6 + 2 - 2) / 2 + 1;
  ASSERT_EQ(out.shape(), (Shape{1, 2, oh, ow}));
  EXPECT_EQ(out.dtype(), DType::i32);
  std::vector<double> expected;
  for (int64_t oc = 0; oc < 2; ++oc)
    for (int64_t y = 0; y < oh; ++y)
      for (int64_t z = 0; z < ow; ++z) {
        int64_t sum = 0;
        for (int64_t ic = 0; ic < 2; ++ic)
          for (int64_t ky = 0; ky < 3; ++ky)
            for (int64_t kz = 0; kz < 2; ++kz) {
              int64_t iy = y * 2 + ky - 1, iz = z * 2 + kz - 1;
              if (iy < 0 || iy >= 5 || iz < 0 || iz >= 6) continue;
              int64_t channel = oc * 2 + ic;
              sum += (x_raw[size_t((channel * 5 + iy) * 6 + iz)] - x_zp) *
                     (w_raw[size_t(((oc * 2 + ic) * 3 + ky) * 2 + kz)] - w_zp);
            }
        expected.push_back(double(sum));
      }
  expect_values(out, expected, 0);
}

TEST(QuantizeOps, DynamicQuantizeLinearRangeIncludesZero) {
  Tensor x = floats({5}, {1.f, 2.5f, 4.f, 0.5f, 3.f});  // all positive: min is clamped to 0
  auto out = run_op("DynamicQuantizeLinear", 11, {x}, {}, 3);
  float scale = 4.f / 255.f;
  expect_values(out[1], {scale}, 1e-6, "scale");
  expect_values(out[2], {0}, 0, "zero point");
  std::vector<double> expected;
  for (int i = 0; i < 5; ++i)
    expected.push_back(std::clamp(std::nearbyint(x.data<float>()[i] / scale), 0.f, 255.f));
  expect_values(out[0], expected, 0);
}

// ---- signal / linear algebra ----------------------------------------------------------------

TEST(SignalOps, HannWindowPeriodicAndSymmetric) {
  for (int periodic : {0, 1}) {
    Tensor out = run_op("HannWindow", 17, {ints({}, {7})}, attrs_int("periodic", periodic))[0];
    double denominator = periodic ? 7 : 6;
    std::vector<double> expected;
    for (int n = 0; n < 7; ++n) expected.push_back(0.5 - 0.5 * std::cos(2 * M_PI * n / denominator));
    expect_values(out, expected, 1e-6, "periodic " + std::to_string(periodic));
  }
}

TEST(LinearAlgebraOps, DetOfBatchedMatricesNeedingPivoting) {
  // Second matrix has a zero leading entry, so elimination must pivot.
  Tensor x = floats({2, 3, 3}, {2, -1, 0, -1, 2, -1, 0, -1, 2, 0, 1, 2, 3, 4, 5, 6, 7, 9});
  auto det3 = [&](int m) {
    const float* a = x.data<float>() + m * 9;
    return double(a[0]) * (a[4] * a[8] - a[5] * a[7]) - double(a[1]) * (a[3] * a[8] - a[5] * a[6]) +
           double(a[2]) * (a[3] * a[7] - a[4] * a[6]);
  };
  expect_values(run_op("Det", 11, {x})[0], {det3(0), det3(1)}, 1e-5);
}

TEST(LinearAlgebraOps, MeanVarianceNormalizationOverDefaultAxes) {
  Tensor x = random_floats({2, 3, 2, 2}, 6);
  Tensor out = run_op("MeanVarianceNormalization", 13, {x})[0];
  std::vector<double> expected(24);
  for (int c = 0; c < 3; ++c) {
    double sum = 0, squares = 0;
    for (int n = 0; n < 2; ++n)
      for (int s = 0; s < 4; ++s) {
        double v = x.data<float>()[(n * 3 + c) * 4 + s];
        sum += v, squares += v * v;
      }
    double mean = sum / 8, deviation = std::sqrt(squares / 8 - mean * mean);
    for (int n = 0; n < 2; ++n)
      for (int s = 0; s < 4; ++s)
        expected[size_t((n * 3 + c) * 4 + s)] =
            (x.data<float>()[(n * 3 + c) * 4 + s] - mean) / (deviation + 1e-9);
  }
  expect_values(out, expected, 1e-5);
}

// ---- sampling -------------------------------------------------------------------------------

TEST(SamplingOps, GridSampleBilinearMatchesHandInterpolation) {
  // align_corners: grid -1..1 spans pixel centres 0..W-1; points outside read zeros padding.
  Tensor x = random_floats({1, 2, 3, 4}, 7);
  Tensor grid = floats({1, 1, 3, 2}, {-1.f, -1.f, 0.2f, 0.5f, 1.4f, 0.f});
  Attributes a;
  a.set_int("align_corners", 1);
  Tensor out = run_op("GridSample", 16, {x, grid}, a)[0];
  ASSERT_EQ(out.shape(), (Shape{1, 2, 1, 3}));
  std::vector<double> expected;
  for (int c = 0; c < 2; ++c)
    for (int p = 0; p < 3; ++p) {
      double px = (grid.data<float>()[p * 2] + 1) / 2 * 3, py = (grid.data<float>()[p * 2 + 1] + 1) / 2 * 2;
      int x0 = int(std::floor(px)), y0 = int(std::floor(py));
      double sum = 0;
      for (int dy = 0; dy < 2; ++dy)
        for (int dx = 0; dx < 2; ++dx) {
          int r = y0 + dy, col = x0 + dx;
          if (r < 0 || r >= 3 || col < 0 || col >= 4) continue;
          double w = (dy ? py - y0 : 1 - (py - y0)) * (dx ? px - x0 : 1 - (px - x0));
          sum += w * x.data<float>()[(c * 3 + r) * 4 + col];
        }
      expected.push_back(sum);
    }
  expect_values(out, expected, 1e-5);
}

TEST(SamplingOps, MaxUnpoolKeepsCoordinatesInALargerOutputShape) {
  Tensor x = floats({1, 1, 2, 2}, {5, 6, 7, 8});
  Attributes a;
  a.set_ints("kernel_shape", {2, 2});
  a.set_ints("strides", {2, 2});
  std::vector<int64_t> idx{5, 7, 13, 15};  // flat in the natural 4x4 output
  Tensor out = run_op("MaxUnpool", 11, {x, ints({1, 1, 2, 2}, idx), ints1d({1, 1, 5, 5})}, a)[0];
  ASSERT_EQ(out.shape(), (Shape{1, 1, 5, 5}));
  std::vector<double> expected(25, 0);
  for (int i = 0; i < 4; ++i)
    expected[size_t((idx[size_t(i)] / 4) * 5 + idx[size_t(i)] % 4)] = x.data<float>()[i];
  expect_values(out, expected, 0);
}

}  // namespace
}  // namespace tessera::testing
