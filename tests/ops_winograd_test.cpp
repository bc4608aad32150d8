// Winograd F(2x2,3x3) and F(4x4,3x3) Conv against a plain direct convolution written here: odd
// sizes (tail tiles), channel counts 1..64, pads 0/1/asymmetric, batch 2, bias, residual, relu.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "ops/conv.h"
#include "ops/fused_activation.h"
#include "ops/winograd.h"
#include "ops_kernel_harness.h"
#include "primitives/primitives.h"
#include "test_support.h"

namespace tessera {
namespace {

using testing::random_tensor;
using testing::relative_l2_error;
using testing::run_node;

// Direct 2-D 3x3 convolution, stride 1, accumulating in double.
Tensor reference_conv3x3(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* residual,
                         bool relu, int64_t pad_top, int64_t pad_left, int64_t pad_bottom,
                         int64_t pad_right) {
  const int64_t batch = x.dim(0), cin = x.dim(1), h = x.dim(2), wd = x.dim(3), cout = w.dim(0);
  const int64_t oh = h + pad_top + pad_bottom - 2, ow = wd + pad_left + pad_right - 2;
  Tensor y(DType::f32, {batch, cout, oh, ow});
  const float* xv = x.data<float>();
  const float* wv = w.data<float>();
  float* yv = y.data<float>();
  int64_t index = 0;
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t co = 0; co < cout; ++co)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j, ++index) {
          double acc = bias ? bias->data<float>()[co] : 0.0;
          for (int64_t ci = 0; ci < cin; ++ci)
            for (int64_t ki = 0; ki < 3; ++ki)
              for (int64_t kj = 0; kj < 3; ++kj) {
                const int64_t ih = i + ki - pad_top, iw = j + kj - pad_left;
                if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
                acc += double(xv[((n * cin + ci) * h + ih) * wd + iw]) *
                       double(wv[((co * cin + ci) * 3 + ki) * 3 + kj]);
              }
          if (residual) acc += residual->data<float>()[index];
          if (relu && acc < 0) acc = 0;
          yv[index] = float(acc);
        }
  return y;
}

struct WinogradCase {
  int64_t batch, cin, cout, h, w;
  int64_t pads[4];  // top, left, bottom, right (ONNX order)
  bool bias = true, residual = false, relu = false;
};

// Runs the Conv node with the algorithm forced by attribute and returns its relative L2 error
// against the reference; also checks the kernel reports the algorithm it was forced to.
double conv_error(const WinogradCase& c, const std::string& algorithm, const std::string& expected_name,
                  uint32_t seed) {
  Tensor x = random_tensor({c.batch, c.cin, c.h, c.w}, seed);
  Tensor w = random_tensor({c.cout, c.cin, 3, 3}, seed + 1);
  Tensor b = c.bias ? random_tensor({c.cout}, seed + 2) : Tensor();
  Node node;
  node.op_type = "Conv";
  node.attributes.set_ints("pads", {c.pads[0], c.pads[1], c.pads[2], c.pads[3]});
  node.attributes.set_ints("kernel_shape", {3, 3});
  if (!algorithm.empty()) node.attributes.set_string(kConvAlgorithmAttribute, algorithm);
  if (c.relu) node.attributes.set_string(kFusedActivationAttribute, "Relu");
  const Tensor expected_plain = reference_conv3x3(x, w, c.bias ? &b : nullptr, nullptr, false, c.pads[0],
                                                  c.pads[1], c.pads[2], c.pads[3]);
  std::vector<Tensor> inputs = {x, w, b};
  Tensor residual;
  if (c.residual) {
    residual = random_tensor(expected_plain.shape(), seed + 3);
    inputs.push_back(residual);
    node.attributes.set_int("tessera.residual_input", 3);
  }
  const Tensor expected = reference_conv3x3(x, w, c.bias ? &b : nullptr, c.residual ? &residual : nullptr,
                                            c.relu, c.pads[0], c.pads[1], c.pads[2], c.pads[3]);
  auto result = run_node(node, 13, inputs);
  EXPECT_EQ(conv_algorithm_name(*result.kernel), expected_name);
  EXPECT_EQ(result.outputs[0].shape(), expected.shape());
  if (result.outputs[0].shape() != expected.shape()) return 1.0;
  return relative_l2_error(result.outputs[0], expected);
}

// The cases every variant runs: tails in both directions (H, W not multiples of 2 or 4),
// single-tile and single-channel problems, channel counts off the 16-lane blocks.
const WinogradCase kCases[] = {
    {1, 1, 1, 5, 5, {1, 1, 1, 1}},
    {2, 3, 17, 9, 11, {1, 1, 1, 1}, true, true, true},
    {2, 17, 3, 7, 13, {0, 0, 0, 0}},
    {1, 17, 64, 11, 6, {0, 1, 2, 1}, false, false, true},
    {2, 64, 17, 13, 9, {1, 0, 0, 2}, true, true, false},
    {1, 64, 64, 14, 14, {1, 1, 1, 1}, true, true, true},
    {1, 3, 1, 3, 3, {0, 0, 0, 0}},  // one output pixel
    {2, 16, 32, 23, 4, {2, 2, 1, 0}, true, false, true},
};

// F(2x2) is within a few ulps of direct convolution; F(4x4) amplifies rounding through the
// larger transform constants (up to 8 and 1/24), so its bound is an order looser.
constexpr double kF2Tolerance = 1e-5;
constexpr double kF4Tolerance = 1e-4;

TEST(WinogradConv, F2x2MatchesDirect) {
  uint32_t seed = 100;
  for (const WinogradCase& c : kCases) {
    EXPECT_LT(conv_error(c, "winograd2", "winograd_f2x2", seed), kF2Tolerance)
        << "cin " << c.cin << " cout " << c.cout << " h " << c.h << " w " << c.w;
    seed += 10;
  }
}

TEST(WinogradConv, F4x4MatchesDirect) {
  uint32_t seed = 200;
  for (const WinogradCase& c : kCases) {
    EXPECT_LT(conv_error(c, "winograd4", "winograd_f4x4", seed), kF4Tolerance)
        << "cin " << c.cin << " cout " << c.cout << " h " << c.h << " w " << c.w;
    seed += 10;
  }
}

TEST(WinogradConv, EveryIsaMatchesDirect) {
  const primitives::Isa original = primitives::active_isa();
  for (primitives::Isa isa : {primitives::Isa::scalar, primitives::Isa::avx2, primitives::Isa::avx512}) {
    if (isa > primitives::detected_isa()) continue;
    primitives::set_isa(isa);
    const WinogradCase c = {2, 17, 19, 10, 7, {1, 1, 1, 1}, true, true, true};
    EXPECT_LT(conv_error(c, "winograd2", "winograd_f2x2", 300), kF2Tolerance) << primitives::isa_name(isa);
    EXPECT_LT(conv_error(c, "winograd4", "winograd_f4x4", 301), kF4Tolerance) << primitives::isa_name(isa);
  }
  primitives::set_isa(original);
}

TEST(WinogradConv, LargerImageManyBands) {
  // Enough tiles that the work is split into several bands and run on both pool threads.
  const WinogradCase c = {2, 32, 48, 57, 45, {1, 1, 1, 1}, true, true, true};
  EXPECT_LT(conv_error(c, "winograd2", "winograd_f2x2", 400), kF2Tolerance);
  EXPECT_LT(conv_error(c, "winograd4", "winograd_f4x4", 401), kF4Tolerance);
}

TEST(WinogradConv, ForcedDirectAndIneligibleShapesRunDirect) {
  const WinogradCase c = {1, 8, 8, 9, 9, {1, 1, 1, 1}};
  EXPECT_LT(conv_error(c, "direct", "im2col", 500), 1e-5);
  // A forced Winograd request on a stride-2 convolution falls back to the direct path.
  Node node;
  node.op_type = "Conv";
  node.attributes.set_ints("strides", {2, 2});
  node.attributes.set_string(kConvAlgorithmAttribute, "winograd4");
  auto result = run_node(node, 13, {random_tensor({1, 4, 9, 9}, 501), random_tensor({4, 4, 3, 3}, 502)});
  EXPECT_EQ(conv_algorithm_name(*result.kernel), "im2col");
}

TEST(WinogradConv, EnvironmentSwitchForcesAlgorithm) {
  const WinogradCase c = {1, 16, 16, 12, 12, {1, 1, 1, 1}};
  ::setenv("TESSERA_CONV_ALGO", "winograd4", 1);
  EXPECT_LT(conv_error(c, "", "winograd_f4x4", 600), kF4Tolerance);
  ::setenv("TESSERA_CONV_ALGO", "winograd2", 1);
  EXPECT_LT(conv_error(c, "", "winograd_f2x2", 601), kF2Tolerance);
  ::setenv("TESSERA_CONV_ALGO", "direct", 1);
  EXPECT_LT(conv_error(c, "", "im2col", 602), 1e-5);
  // The node attribute wins over the environment.
  EXPECT_LT(conv_error(c, "winograd2", "winograd_f2x2", 603), kF2Tolerance);
  ::setenv("TESSERA_CONV_ALGO", "bogus", 1);
  EXPECT_THROW(conv_error(c, "", "", 604), Error);
  ::unsetenv("TESSERA_CONV_ALGO");
}

// The cost model divides the arithmetic over the threads but not the streaming of weights that
// do not fit in L2: ResNet-50's 512-channel 7x7 layers (F(2x2) streams 16.8 MB of transformed
// weights against 9.4 MB direct) go direct on 2 threads, its 256-channel 14x14 layers stay on
// Winograd, and a layer whose weights fit in L2 estimates exactly half the time on 2 threads.
TEST(WinogradConv, CostModelSplitsArithmeticButNotWeightStreaming) {
  auto problem = [](int64_t channels, int64_t size) {
    WinogradProblem p;
    p.batch = 1;
    p.in_channels = p.out_channels = channels;
    p.in_h = p.in_w = p.out_h = p.out_w = size;
    p.pad_top = p.pad_left = 1;
    return p;
  };
  auto best = [](const WinogradProblem& p, int threads) {
    int variant = 0;
    double seconds = estimate_conv3x3_seconds(p, 0, threads);
    for (int candidate : {2, 4}) {
      const double s = estimate_conv3x3_seconds(p, candidate, threads);
      if (s < seconds) seconds = s, variant = candidate;
    }
    return variant;
  };
  EXPECT_EQ(best(problem(512, 7), 2), 0);
  EXPECT_NE(best(problem(256, 14), 2), 0);
  EXPECT_NE(best(problem(64, 56), 2), 0);
  const WinogradProblem small = problem(64, 56);  // 147 KB of weights, 2.4 MB transformed
  EXPECT_DOUBLE_EQ(estimate_conv3x3_seconds(small, 0, 2), estimate_conv3x3_seconds(small, 0, 1) / 2);
  const WinogradProblem large = problem(512, 7);
  EXPECT_GT(estimate_conv3x3_seconds(large, 2, 2), estimate_conv3x3_seconds(large, 2, 1) / 2);
}

TEST(WinogradConv, WeightsKnownOnlyAtRunTimeRunDirect) {
  Node node;
  node.op_type = "Conv";
  node.attributes.set_ints("pads", {1, 1, 1, 1});
  node.attributes.set_string(kConvAlgorithmAttribute, "winograd2");
  Tensor x = random_tensor({1, 4, 6, 6}, 700), w = random_tensor({5, 4, 3, 3}, 701);
  auto result = run_node(node, 13, {x, w}, 1, {false, false});
  EXPECT_EQ(conv_algorithm_name(*result.kernel), "im2col");
  EXPECT_LT(
      relative_l2_error(result.outputs[0], reference_conv3x3(x, w, nullptr, nullptr, false, 1, 1, 1, 1)),
      1e-5);
}

}  // namespace
}  // namespace tessera
