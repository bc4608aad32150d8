// Channels-last convolutions against plain loops summing in double, on every ISA and 1-3
// threads: the direct NHWC kernel (primitives/conv_nhwc.h) on 1x1 and KxK kernels, strides,
// dilations, pads that leave edge pixels with some taps outside, channel counts that fill no
// register tile evenly, and the bias + residual + ReLU epilogue; Winograd F(2x2) and F(4x4) on
// NHWC activations (ops/winograd.h, channels_last) with tile tails and pads.
#include "primitives/conv_nhwc.h"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/winograd.h"
#include "test_support.h"

namespace tessera {
namespace {

namespace prim = tessera::primitives;

struct NhwcCase {
  prim::ConvNhwcShape shape;
  bool bias, residual, relu;
};

// Output size from ONNX's rule with symmetric pads (pad_top == pad_bottom, left == right).
prim::ConvNhwcShape make_shape(int64_t batch, int64_t h, int64_t w, int64_t ci, int64_t co, int64_t k,
                               int64_t stride, int64_t pad, int64_t dilation = 1) {
  prim::ConvNhwcShape s;
  s.batch = batch;
  s.in_h = h;
  s.in_w = w;
  s.in_channels = ci;
  s.out_channels = co;
  s.kernel_h = s.kernel_w = k;
  s.stride_h = s.stride_w = stride;
  s.dilation_h = s.dilation_w = dilation;
  s.pad_top = s.pad_left = pad;
  s.out_h = (h + 2 * pad - dilation * (k - 1) - 1) / stride + 1;
  s.out_w = (w + 2 * pad - dilation * (k - 1) - 1) / stride + 1;
  return s;
}

// Every element written and within element_tolerance * (1 + |expected|) (a skipped tap or pixel
// is far off in its own element), and the relative L2 error under l2_tolerance.
void expect_close(const std::vector<float>& y, const std::vector<float>& expected, double element_tolerance,
                  double l2_tolerance) {
  double diff = 0, norm = 0;
  int wrong = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double d = double(y[i]) - expected[i];
    diff += d * d;
    norm += double(expected[i]) * expected[i];
    if (!(std::fabs(d) <= element_tolerance * (1 + std::fabs(expected[i]))) && ++wrong <= 3)
      ADD_FAILURE() << "element " << i << ": " << y[i] << " against " << expected[i];
  }
  EXPECT_LT(std::sqrt(diff / std::max(norm, 1e-30)), l2_tolerance);
}

void check_case(const NhwcCase& c, uint32_t seed) {
  const prim::ConvNhwcShape& s = c.shape;
  SCOPED_TRACE(std::to_string(s.batch) + "x" + std::to_string(s.in_h) + "x" + std::to_string(s.in_w) + "x" +
               std::to_string(s.in_channels) + " -> " + std::to_string(s.out_channels) + " k" +
               std::to_string(s.kernel_h) + "x" + std::to_string(s.kernel_w) + " s" +
               std::to_string(s.stride_h) + " p" + std::to_string(s.pad_top) + " d" +
               std::to_string(s.dilation_h));
  const size_t in_size = size_t(s.batch * s.in_h * s.in_w * s.in_channels);
  const size_t out_size = size_t(s.output_pixels() * s.out_channels);
  const std::vector<float> x = testing::random_floats(in_size, seed, -1, 1);
  const std::vector<float> w =
      testing::random_floats(size_t(s.out_channels * s.in_channels * s.taps()), seed + 1, -0.5f, 0.5f);
  const std::vector<float> bias = testing::random_floats(size_t(s.out_channels), seed + 2);
  const std::vector<float> residual = testing::random_floats(out_size, seed + 3);
  std::vector<float> expected(out_size);
  prim::conv_nhwc_reference_f32(s, w.data(), x.data(), c.bias ? bias.data() : nullptr,
                                c.residual ? residual.data() : nullptr, c.relu, expected.data());
  prim::GemmEpilogue epilogue;
  if (c.bias) epilogue.bias_per_column = bias.data();
  if (c.residual) {
    epilogue.residual = residual.data();
    epilogue.ld_residual = s.out_channels;
  }
  if (c.relu) epilogue.activation.kind = prim::UnaryKind::relu;
  const prim::ConvNhwcWeights packed(s, w.data());
  for (int threads : {1, 2, 3}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    ThreadPool pool(threads);
    std::vector<float> y(out_size, std::nanf(""));
    prim::conv_nhwc_f32(s, packed, x.data(), &epilogue, y.data(), &pool);
    expect_close(y, expected, 1e-4, 1e-6);
  }
}

TEST(ConvNhwc, MatchesPlainLoopsOnEveryIsa) {
  const NhwcCase cases[] = {
      // ResNet-style 1x1 (stride 1 and the stride-2 downsample), 3x3 pad 1 at stride 1 and 2.
      {make_shape(1, 9, 11, 32, 48, 1, 1, 0), true, true, true},
      {make_shape(1, 9, 11, 24, 40, 1, 2, 0), true, false, false},
      {make_shape(2, 7, 13, 20, 36, 3, 1, 1), true, true, true},
      {make_shape(1, 12, 15, 17, 64, 3, 2, 1), false, false, true},
      // A stem: 3 input channels, 7x7 stride 2 pad 3 (several edge pixels per side).
      {make_shape(1, 23, 21, 3, 16, 7, 2, 3), true, false, true},
      // Dilation 2, pads wider than a tap, a row narrower than the register tile.
      {make_shape(1, 10, 9, 5, 7, 3, 1, 2, 2), true, true, false},
      {make_shape(1, 3, 4, 8, 33, 3, 1, 1), false, true, false},
      // One output pixel wide; more output channels than the threads have tiles.
      {make_shape(1, 5, 1, 6, 100, 1, 1, 0), true, false, false},
      // One output row (fewer rows than threads): columns split, or one thread for one tile.
      {make_shape(1, 1, 9, 8, 100, 1, 1, 0), true, true, true},
      {make_shape(1, 1, 9, 8, 20, 1, 1, 0), true, false, false},
      {make_shape(1, 4, 4, 64, 200, 3, 1, 1), true, true, true},
  };
  testing::for_each_isa([&](prim::Isa) {
    uint32_t seed = 11;
    for (const NhwcCase& c : cases) check_case(c, seed += 10);
  });
}

TEST(WinogradNhwc, MatchesPlainLoopsOnEveryIsa) {
  struct Case {
    int64_t batch, h, w, ci, co, pad;
  };
  // Tile tails (out sizes not multiples of 2 or 4), no pad, a pad of 2, channel counts off 16.
  const Case cases[] = {{2, 9, 11, 20, 36, 1},
                        {1, 14, 14, 64, 64, 1},
                        {1, 7, 7, 16, 24, 1},
                        {1, 10, 13, 3, 17, 0},
                        {1, 6, 6, 8, 8, 2}};
  testing::for_each_isa([&](prim::Isa) {
    uint32_t seed = 900;
    for (const Case& c : cases)
      for (WinogradVariant variant : {WinogradVariant::f2x2, WinogradVariant::f4x4}) {
        const prim::ConvNhwcShape s = make_shape(c.batch, c.h, c.w, c.ci, c.co, 3, 1, c.pad);
        SCOPED_TRACE(std::to_string(c.h) + "x" + std::to_string(c.w) + " " + std::to_string(c.ci) + "->" +
                     std::to_string(c.co) + " pad " + std::to_string(c.pad) + " F" +
                     std::to_string(int(variant)));
        seed += 10;
        const size_t out_size = size_t(s.output_pixels() * s.out_channels);
        const std::vector<float> x = testing::random_floats(size_t(c.batch * c.h * c.w * c.ci), seed);
        const std::vector<float> w = testing::random_floats(size_t(c.co * c.ci * 9), seed + 1, -0.5f, 0.5f);
        const std::vector<float> bias = testing::random_floats(size_t(c.co), seed + 2);
        const std::vector<float> residual = testing::random_floats(out_size, seed + 3);
        std::vector<float> expected(out_size);
        prim::conv_nhwc_reference_f32(s, w.data(), x.data(), bias.data(), residual.data(), true,
                                      expected.data());
        const WinogradProblem problem = channels_last_winograd_problem(s);
        for (int threads : {1, 2, 3}) {
          SCOPED_TRACE("threads " + std::to_string(threads));
          ThreadPool pool(threads);
          const WinogradConvolution conv(problem, variant, w.data(), threads);
          std::vector<float> y(out_size, std::nanf(""));
          conv.run(x.data(), bias.data(), residual.data(), prim::UnaryParams{prim::UnaryKind::relu}, y.data(),
                   pool);
          expect_close(y, expected, 1e-3, 1e-5);
        }
      }
  });
}

TEST(ConvNhwc, RectangularKernelsAndStrides) {
  prim::ConvNhwcShape s = make_shape(1, 11, 14, 9, 20, 1, 1, 0);
  s.kernel_h = 3;
  s.kernel_w = 5;
  s.stride_h = 2;
  s.stride_w = 1;
  s.pad_top = 1;
  s.pad_left = 2;
  s.out_h = (11 + 2 - 3) / 2 + 1;
  s.out_w = (14 + 4 - 5) / 1 + 1;
  check_case({s, true, false, true}, 500);
}

TEST(ConvNhwc, RefusesBadShapes) {
  prim::ConvNhwcShape s = make_shape(1, 4, 4, 3, 8, 3, 1, 1);
  const std::vector<float> w(size_t(8 * 3 * 9), 0.f);
  prim::ConvNhwcShape bad = s;
  bad.stride_w = 0;
  EXPECT_THROW(prim::ConvNhwcWeights(bad, w.data()), std::invalid_argument);
  bad = s;
  bad.pad_left = -1;
  EXPECT_THROW(prim::ConvNhwcWeights(bad, w.data()), std::invalid_argument);
  bad = s;
  bad.in_channels = int64_t(1) << 40;
  EXPECT_THROW(prim::validate_conv_nhwc_shape(bad), std::invalid_argument);
  // Weights packed for one shape refused for another.
  const prim::ConvNhwcWeights packed(s, w.data());
  prim::ConvNhwcShape other = s;
  other.out_channels = 16;
  std::vector<float> x(size_t(16 * 3)), y(size_t(16 * 16));
  EXPECT_THROW(prim::conv_nhwc_f32(other, packed, x.data(), nullptr, y.data(), nullptr),
               std::invalid_argument);
}

}  // namespace
}  // namespace tessera
