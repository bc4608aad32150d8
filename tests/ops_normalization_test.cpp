// Normalization kernels against direct formulas: BatchNormalization (constant and run-time
// statistics), InstanceNormalization, LayerNormalization, Softmax/LogSoftmax for both opset rules.
#include <gtest/gtest.h>

#include <cmath>

#include "ops_kernel_harness.h"
#include "test_support.h"

namespace tessera {
namespace {

using testing::random_tensor;
using testing::relative_l2_error;
using testing::run_node;

TEST(NormalizationOp, BatchNormConstantAndRuntimeStatistics) {
  Tensor x = random_tensor({2, 3, 4, 5}, 1);
  Tensor scale = random_tensor({3}, 2), bias = random_tensor({3}, 3), mean = random_tensor({3}, 4);
  Tensor var = random_tensor({3}, 5, 0.1f, 2.f);
  Tensor expected(DType::f32, x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t c = (i / 20) % 3;
    expected.data<float>()[i] = (x.data<float>()[i] - mean.data<float>()[c]) /
                                    std::sqrt(var.data<float>()[c] + 1e-3f) * scale.data<float>()[c] +
                                bias.data<float>()[c];
  }
  Node node;
  node.op_type = "BatchNormalization";
  node.attributes.set_float("epsilon", 1e-3f);
  for (bool constant : {true, false}) {
    auto result = run_node(node, 15, {x, scale, bias, mean, var}, 1,
                           {false, constant, constant, constant, constant});
    EXPECT_LT(relative_l2_error(result.outputs[0], expected), 1e-6);
  }
  node.attributes.set_int("training_mode", 1);
  EXPECT_THROW(run_node(node, 15, {x, scale, bias, mean, var}), Error);
}

TEST(NormalizationOp, LayerAndInstanceNorm) {
  Tensor x = random_tensor({2, 3, 4, 5}, 1);
  for (int64_t axis : {1, 2, -1}) {
    int64_t a = axis < 0 ? axis + 4 : axis;
    int64_t inner = 1;
    for (int64_t d = a; d < 4; ++d) inner *= x.dim(int(d));
    Tensor scale = random_tensor(Shape(x.shape().begin() + a, x.shape().end()), 2);
    Tensor bias = random_tensor(scale.shape(), 3);
    Tensor expected(DType::f32, x.shape());
    for (int64_t r = 0; r < x.numel() / inner; ++r) {
      double mean = 0, var = 0;
      for (int64_t i = 0; i < inner; ++i) mean += x.data<float>()[r * inner + i];
      mean /= double(inner);
      for (int64_t i = 0; i < inner; ++i) var += std::pow(x.data<float>()[r * inner + i] - mean, 2);
      var /= double(inner);
      for (int64_t i = 0; i < inner; ++i)
        expected.data<float>()[r * inner + i] =
            float((x.data<float>()[r * inner + i] - mean) / std::sqrt(var + 1e-5)) *
                scale.data<float>()[i] + bias.data<float>()[i];
    }
    Node node;
    node.op_type = "LayerNormalization";
    node.attributes.set_int("axis", axis);
    auto result = run_node(node, 17, {x, scale, bias});
    EXPECT_LT(relative_l2_error(result.outputs[0], expected), 1e-5) << axis;
  }
  // InstanceNormalization = per (n, c) plane normalization with per-channel scale and bias.
  Tensor scale = random_tensor({3}, 4), bias = random_tensor({3}, 5);
  Node node;
  node.op_type = "InstanceNormalization";
  auto result = run_node(node, 6, {x, scale, bias});
  for (int64_t p = 0; p < 6; ++p) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < 20; ++i) mean += x.data<float>()[p * 20 + i];
    mean /= 20;
    for (int64_t i = 0; i < 20; ++i) var += std::pow(x.data<float>()[p * 20 + i] - mean, 2);
    var /= 20;
    for (int64_t i = 0; i < 20; ++i) {
      double want = (x.data<float>()[p * 20 + i] - mean) / std::sqrt(var + 1e-5) *
                        scale.data<float>()[p % 3] + bias.data<float>()[p % 3];
      EXPECT_NEAR(result.outputs[0].data<float>()[p * 20 + i], want, 1e-4);
    }
  }
}

// Softmax along `axis` of [outer, n, inner] views.
Tensor reference_softmax(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool log) {
  Tensor y(DType::f32, x.shape());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double best = -INFINITY, sum = 0;
      for (int64_t k = 0; k < n; ++k) best = std::max(best, double(x.data<float>()[(o * n + k) * inner + i]));
      for (int64_t k = 0; k < n; ++k) sum += std::exp(x.data<float>()[(o * n + k) * inner + i] - best);
      for (int64_t k = 0; k < n; ++k) {
        double v = x.data<float>()[(o * n + k) * inner + i] - best;
        y.data<float>()[(o * n + k) * inner + i] = float(log ? v - std::log(sum) : std::exp(v) / sum);
      }
    }
  return y;
}

TEST(NormalizationOp, SoftmaxAndLogSoftmaxBothOpsetRules) {
  Tensor x = random_tensor({3, 4, 5}, 7, -20.f, 20.f);
  for (bool log : {false, true}) {
    Node node;
    node.op_type = log ? "LogSoftmax" : "Softmax";
    for (int64_t axis : {0, 1, 2, -1}) {
      node.attributes.set_int("axis", axis);
      int64_t a = axis < 0 ? axis + 3 : axis;
      int64_t outer = 1, inner = 1;
      for (int64_t d = 0; d < a; ++d) outer *= x.dim(int(d));
      for (int64_t d = a + 1; d < 3; ++d) inner *= x.dim(int(d));
      auto modern = run_node(node, 13, {x});
      EXPECT_LT(relative_l2_error(modern.outputs[0], reference_softmax(x, outer, x.dim(int(a)), inner, log)), 1e-5)
          << node.op_type << " axis " << axis;
      auto legacy = run_node(node, 11, {x});  // coerced to 2-D at axis
      EXPECT_LT(relative_l2_error(legacy.outputs[0],
                                  reference_softmax(x, outer, x.numel() / outer, 1, log)), 1e-5)
          << node.op_type << " legacy axis " << axis;
    }
  }
}

}  // namespace
}  // namespace tessera
