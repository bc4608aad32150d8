// Conv and ConvTranspose kernels against plain direct loops on random shapes: odd sizes, groups,
// depthwise, dilation, stride, asymmetric and automatic pads, 1-D/3-D, fused relu and residual.
#include <gtest/gtest.h>

#include <cmath>

// Test cases name only the fields they set; the rest keep their defaults on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <atomic>
#include <chrono>

#include "ops/conv.h"
#include "ops/fused_activation.h"
#include "primitives/primitives.h"
#include "ops_kernel_harness.h"
#include "test_support.h"

namespace tessera {
namespace {

using testing::random_tensor;
using testing::relative_l2_error;
using testing::run_node;

struct ConvCase {
  Shape x, w;                  // N x C x spatial, C_out x C_in/group x kernel
  std::vector<int64_t> strides, dilations, pads;  // empty = defaults
  int64_t group = 1;
  std::string auto_pad;       // empty = NOTSET with explicit pads
  bool bias = true;
  bool relu = false;
  bool residual = false;
  bool constant_weights = true;
  std::string algorithm;      // when set, the algorithm the plan must pick
};

// Direct convolution over up to 3 spatial dims, accumulating in double.
Tensor reference_conv(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* residual,
                      bool relu, std::vector<int64_t> strides, std::vector<int64_t> dilations,
                      std::vector<int64_t> pad_begin, std::vector<int64_t> pad_end, int64_t group) {
  const size_t rank = size_t(x.rank() - 2);
  std::vector<int64_t> in(3, 1), k(3, 1), s(3, 1), d(3, 1), pb(3, 0), out(3, 1);
  Shape out_shape = {x.dim(0), w.dim(0)};
  for (size_t i = 0; i < rank; ++i) {
    size_t j = 3 - rank + i;
    in[j] = x.dim(int(2 + i));
    k[j] = w.dim(int(2 + i));
    s[j] = strides[i];
    d[j] = dilations[i];
    pb[j] = pad_begin[i];
    out[j] = (in[j] + pad_begin[i] + pad_end[i] - ((k[j] - 1) * d[j] + 1)) / s[j] + 1;
    out_shape.push_back(out[j]);
  }
  Tensor y(DType::f32, out_shape);
  const int64_t cin = x.dim(1), cout = w.dim(0), cin_g = cin / group, cout_g = cout / group;
  const float* xv = x.data<float>();
  const float* wv = w.data<float>();
  float* yv = y.data<float>();
  int64_t index = 0;
  for (int64_t n = 0; n < x.dim(0); ++n)
    for (int64_t co = 0; co < cout; ++co)
      for (int64_t o0 = 0; o0 < out[0]; ++o0)
        for (int64_t o1 = 0; o1 < out[1]; ++o1)
          for (int64_t o2 = 0; o2 < out[2]; ++o2, ++index) {
            double acc = bias ? bias->data<float>()[co] : 0.0;
            const int64_t g = co / cout_g;
            for (int64_t c = 0; c < cin_g; ++c)
              for (int64_t k0 = 0; k0 < k[0]; ++k0)
                for (int64_t k1 = 0; k1 < k[1]; ++k1)
                  for (int64_t k2 = 0; k2 < k[2]; ++k2) {
                    int64_t i0 = o0 * s[0] + k0 * d[0] - pb[0];
                    int64_t i1 = o1 * s[1] + k1 * d[1] - pb[1];
                    int64_t i2 = o2 * s[2] + k2 * d[2] - pb[2];
                    if (i0 < 0 || i0 >= in[0] || i1 < 0 || i1 >= in[1] || i2 < 0 || i2 >= in[2])
                      continue;
                    double xval = xv[(((n * cin + g * cin_g + c) * in[0] + i0) * in[1] + i1) * in[2] + i2];
                    double wval = wv[(((co * cin_g + c) * k[0] + k0) * k[1] + k1) * k[2] + k2];
                    acc += xval * wval;
                  }
            if (residual) acc += residual->data<float>()[index];
            if (relu && acc < 0) acc = 0;
            yv[index] = float(acc);
          }
  return y;
}

void check_conv(const ConvCase& c, uint32_t seed) {
  const size_t rank = c.x.size() - 2;
  Tensor x = random_tensor(c.x, seed);
  Tensor w = random_tensor(c.w, seed + 1);
  Tensor b = c.bias ? random_tensor({c.w[0]}, seed + 2) : Tensor();
  std::vector<int64_t> strides = c.strides.empty() ? std::vector<int64_t>(rank, 1) : c.strides;
  std::vector<int64_t> dilations = c.dilations.empty() ? std::vector<int64_t>(rank, 1) : c.dilations;
  std::vector<int64_t> pads = c.pads.empty() ? std::vector<int64_t>(2 * rank, 0) : c.pads;
  std::vector<int64_t> pad_begin(pads.begin(), pads.begin() + long(rank));
  std::vector<int64_t> pad_end(pads.begin() + long(rank), pads.end());
  Node node;
  node.op_type = "Conv";
  node.attributes.set_int("group", c.group);
  if (!c.strides.empty()) node.attributes.set_ints("strides", c.strides);
  if (!c.dilations.empty()) node.attributes.set_ints("dilations", c.dilations);
  if (!c.auto_pad.empty()) {
    node.attributes.set_string("auto_pad", c.auto_pad);
    // The test's own reading of the ONNX rule for the pads that auto_pad implies.
    for (size_t i = 0; i < rank; ++i) {
      int64_t in = c.x[2 + i], dk = (c.w[2 + i] - 1) * dilations[i] + 1;
      if (c.auto_pad == "VALID") {
        pad_begin[i] = pad_end[i] = 0;
        continue;
      }
      int64_t out = (in + strides[i] - 1) / strides[i];
      int64_t total = std::max<int64_t>(0, (out - 1) * strides[i] + dk - in);
      pad_begin[i] = c.auto_pad == "SAME_UPPER" ? total / 2 : (total + 1) / 2;
      pad_end[i] = total - pad_begin[i];
    }
  } else if (!c.pads.empty()) {
    node.attributes.set_ints("pads", c.pads);
  }
  if (c.relu) node.attributes.set_string(kFusedActivationAttribute, "Relu");
  // These cases check the direct paths; tests/ops_winograd_test.cpp covers Winograd.
  node.attributes.set_string("tessera.conv_algorithm", "direct");
  std::vector<Tensor> inputs = {x, w, b};
  Tensor expected_no_residual = reference_conv(x, w, c.bias ? &b : nullptr, nullptr, false, strides,
                                               dilations, pad_begin, pad_end, c.group);
  Tensor residual;
  if (c.residual) {
    residual = random_tensor(expected_no_residual.shape(), seed + 3);
    inputs.push_back(residual);
    node.attributes.set_int("tessera.residual_input", 3);
  }
  Tensor expected = reference_conv(x, w, c.bias ? &b : nullptr, c.residual ? &residual : nullptr,
                                   c.relu, strides, dilations, pad_begin, pad_end, c.group);
  std::vector<bool> constant(inputs.size(), false);
  constant[1] = c.constant_weights;
  constant[2] = true;
  auto result = run_node(node, 13, inputs, 1, constant);
  if (!c.algorithm.empty()) EXPECT_EQ(conv_algorithm_name(*result.kernel), c.algorithm);
  ASSERT_EQ(result.outputs[0].shape(), expected.shape());
  EXPECT_LT(relative_l2_error(result.outputs[0], expected), 1e-5)
      << "x " << shape_to_string(c.x) << " w " << shape_to_string(c.w);
  const float* got = result.outputs[0].data<float>();
  const float* want = expected.data<float>();
  EXPECT_LT(testing::max_abs_difference(got, want, size_t(expected.numel())), 1e-3);
}

TEST(ConvOp, Basic3x3WithPadding) {
  check_conv({.x = {2, 5, 9, 11}, .w = {7, 5, 3, 3}, .pads = {1, 1, 1, 1}}, 1);
}

TEST(ConvOp, StrideDilationAsymmetricPads) {
  check_conv({.x = {1, 4, 13, 10}, .w = {6, 4, 3, 2}, .strides = {2, 3}, .dilations = {2, 1},
              .pads = {0, 1, 2, 1}}, 2);
  check_conv({.x = {1, 3, 7, 8}, .w = {5, 3, 5, 5}, .strides = {1, 2}, .pads = {2, 0, 1, 3}}, 3);
}

TEST(ConvOp, Groups) {
  check_conv({.x = {2, 6, 8, 7}, .w = {9, 2, 3, 3}, .pads = {1, 1, 1, 1}, .group = 3}, 4);
  check_conv({.x = {1, 8, 5, 9}, .w = {4, 4, 1, 1}, .group = 2, .relu = true}, 5);
}

TEST(ConvOp, DepthwiseStrideOneAndTwo) {
  check_conv({.x = {1, 8, 10, 13}, .w = {8, 1, 3, 3}, .pads = {1, 1, 1, 1}, .group = 8,
              .relu = true}, 6);
  check_conv({.x = {2, 8, 11, 17}, .w = {8, 1, 3, 3}, .strides = {2, 2}, .pads = {1, 1, 1, 1},
              .group = 8}, 7);
  check_conv({.x = {1, 6, 9, 12}, .w = {6, 1, 5, 5}, .strides = {2, 1}, .dilations = {1, 2},
              .pads = {2, 3, 1, 0}, .group = 6, .residual = true}, 8);
  // Channel multiplier 2 and a kernel wider than the input row.
  check_conv({.x = {1, 4, 6, 2}, .w = {8, 1, 3, 3}, .pads = {1, 1, 1, 1}, .group = 4}, 9);
  check_conv({.x = {1, 3, 5, 7}, .w = {3, 1, 3, 3}, .group = 3, .bias = false}, 10);
}

TEST(ConvOp, PointwiseFastPathWithResidualAndRelu) {
  check_conv({.x = {2, 16, 7, 9}, .w = {12, 16, 1, 1}, .relu = true, .residual = true}, 11);
  check_conv({.x = {1, 5, 9, 9}, .w = {3, 5, 1, 1}, .strides = {2, 2}}, 12);
  check_conv({.x = {1, 5, 4, 4}, .w = {3, 5, 1, 1}, .pads = {1, 0, 0, 1}}, 13);
}

TEST(ConvOp, GenericWithResidualAndRelu) {
  check_conv({.x = {2, 5, 9, 10}, .w = {6, 5, 3, 3}, .pads = {1, 1, 1, 1}, .relu = true,
              .residual = true}, 14);
}

TEST(ConvOp, AutoPad) {
  for (const char* mode : {"SAME_UPPER", "SAME_LOWER", "VALID"}) {
    check_conv({.x = {1, 3, 10, 9}, .w = {4, 3, 4, 3}, .strides = {2, 2}, .auto_pad = mode}, 15);
    check_conv({.x = {1, 4, 7, 8}, .w = {4, 1, 2, 3}, .strides = {3, 1}, .group = 4,
                .auto_pad = mode}, 16);
  }
}

TEST(ConvOp, OneAndThreeSpatialDims) {
  check_conv({.x = {2, 3, 17}, .w = {5, 3, 4}, .strides = {2}, .pads = {2, 1}}, 17);
  check_conv({.x = {1, 4, 19}, .w = {4, 1, 3}, .dilations = {3}, .pads = {3, 3}, .group = 4}, 18);
  check_conv({.x = {1, 2, 5, 6, 7}, .w = {3, 2, 3, 2, 3}, .strides = {1, 2, 1},
              .pads = {1, 0, 1, 1, 1, 0}}, 19);
  check_conv({.x = {1, 3, 4, 5, 6}, .w = {3, 1, 3, 3, 3}, .pads = {1, 1, 1, 1, 1, 1}, .group = 3}, 20);
}

TEST(ConvOp, LargePlanesUseWeightMajorGemm) {
  // Output planes above 100 pixels take the weight-major GEMM (smaller ones run pixel-major with
  // weights packed at plan time, which the cases above cover); direct forced, so no Winograd.
  check_conv({.x = {2, 6, 13, 17}, .w = {10, 6, 3, 3}, .pads = {1, 1, 1, 1}, .relu = true,
              .residual = true}, 23);
  check_conv({.x = {1, 12, 11, 12}, .w = {20, 12, 1, 1}, .relu = true, .residual = true}, 24);
  check_conv({.x = {1, 8, 12, 12}, .w = {6, 4, 3, 3}, .pads = {1, 1, 1, 1}, .group = 2}, 25);
}

TEST(ConvOp, WeightsKnownOnlyAtRunTime) {
  check_conv({.x = {1, 4, 6, 6}, .w = {5, 4, 3, 3}, .pads = {1, 1, 1, 1}, .constant_weights = false},
             21);
  check_conv({.x = {1, 4, 6, 6}, .w = {5, 4, 1, 1}, .constant_weights = false}, 22);
}

TEST(ConvOp, LargerTiledProblem) {
  // Big enough that the im2col buffer is tiled and the tiles run on several threads.
  check_conv({.x = {1, 32, 30, 30}, .w = {40, 32, 3, 3}, .pads = {1, 1, 1, 1}, .relu = true}, 23);
  check_conv({.x = {2, 64, 9, 9}, .w = {64, 64, 3, 3}, .strides = {2, 2}, .pads = {1, 1, 1, 1}}, 24);
  check_conv({.x = {1, 48, 20, 20}, .w = {48, 1, 3, 3}, .pads = {1, 1, 1, 1}, .group = 48}, 25);
}

// Stride 2 along the width with windows wider than one column reads the input's column phases
// (split once per run): odd and even widths, a left pad that starts on the odd phase, 2- and
// 3-wide windows, groups, batch, weight-major (over 100 output pixels) and pixel-major planes.
TEST(ConvOp, StrideTwoColumnPhases) {
  check_conv({.x = {1, 8, 30, 31}, .w = {6, 8, 3, 3}, .strides = {2, 2}, .pads = {1, 1, 0, 1}}, 26);
  check_conv({.x = {2, 10, 24, 26}, .w = {4, 5, 2, 3}, .strides = {1, 2}, .pads = {0, 2, 1, 0}, .group = 2}, 27);
  check_conv({.x = {1, 6, 22, 23}, .w = {5, 6, 3, 2}, .strides = {2, 2}, .relu = true}, 28);
  check_conv({.x = {1, 12, 13, 13}, .w = {7, 12, 3, 3}, .strides = {2, 2}, .pads = {1, 1, 1, 1}}, 29);
}

// The paths whose work is split over the (2-thread) harness pool, on every ISA: pixel-major
// planes (<= 100 pixels: input transpose by channels, GEMM grid, output transpose by channels)
// with groups, batch, residual and relu; im2col tiles whose count is evened out for the threads
// (odd row counts, tiles that differ by one row).
TEST(ConvOp, ThreadSplitsOnEveryIsa) {
  const primitives::Isa original = primitives::active_isa();
  for (primitives::Isa isa :
       {primitives::Isa::scalar, primitives::Isa::avx2, primitives::Isa::avx512}) {
    if (primitives::set_isa(isa) != isa) continue;  // not supported by this CPU
    SCOPED_TRACE(primitives::isa_name(isa));
    check_conv({.x = {2, 36, 7, 7}, .w = {52, 18, 1, 1}, .group = 2, .relu = true, .residual = true}, 40);
    check_conv({.x = {1, 19, 9, 11}, .w = {33, 19, 1, 1}, .relu = true, .residual = true}, 41);
    check_conv({.x = {1, 21, 13, 15}, .w = {35, 21, 3, 3}, .strides = {2, 2}, .pads = {1, 1, 1, 1},
                .relu = true, .residual = true}, 42);
    check_conv({.x = {2, 10, 9, 9}, .w = {12, 5, 3, 3}, .pads = {1, 1, 1, 1}, .group = 2}, 43);
    check_conv({.x = {1, 40, 29, 27}, .w = {37, 40, 3, 3}, .pads = {1, 1, 1, 1}, .relu = true,
                .residual = true}, 44);
    check_conv({.x = {1, 3, 45, 41}, .w = {17, 3, 7, 7}, .strides = {2, 2}, .pads = {3, 3, 3, 3}}, 45);
    check_conv({.x = {3, 24, 23, 19}, .w = {30, 24, 3, 3}, .strides = {2, 1}, .pads = {1, 1, 1, 1}}, 46);
  }
  primitives::set_isa(original);
}

// Few input channels (network stems) take the direct kernel of conv_small_channels.h on AVX-512
// and im2col elsewhere: strides 1 to 4, asymmetric pads, kernels wider than the row, output rows
// of whole and partial 48- and 16-wide blocks, output channels not a multiple of 8, batch,
// residual, relu, no bias, 1-D.
TEST(ConvOp, SmallInputChannelsOnEveryIsa) {
  const primitives::Isa original = primitives::active_isa();
  const std::string name = "small_channels";
  for (primitives::Isa isa :
       {primitives::Isa::scalar, primitives::Isa::avx2, primitives::Isa::avx512}) {
    if (primitives::set_isa(isa) != isa) continue;  // not supported by this CPU
    SCOPED_TRACE(primitives::isa_name(isa));
    check_conv({.x = {1, 3, 38, 50}, .w = {32, 3, 3, 3}, .strides = {2, 2}, .pads = {1, 1, 1, 1}, .relu = true,
                .algorithm = name}, 50);
    check_conv({.x = {2, 3, 40, 36}, .w = {20, 3, 7, 7}, .strides = {2, 2}, .pads = {3, 3, 3, 3}, .relu = true,
                .residual = true, .algorithm = name}, 51);
    check_conv({.x = {1, 2, 20, 70}, .w = {5, 2, 5, 3}, .pads = {2, 1, 2, 1}, .algorithm = name}, 52);
    check_conv({.x = {1, 4, 31, 53}, .w = {9, 4, 3, 4}, .strides = {3, 3}, .pads = {0, 2, 1, 1}, .algorithm = name},
               53);
    check_conv({.x = {1, 2, 41, 67}, .w = {3, 2, 1, 1}, .strides = {4, 4}, .bias = false, .algorithm = name}, 54);
    check_conv({.x = {1, 3, 20, 96}, .w = {8, 3, 3, 3}, .pads = {1, 1, 1, 1}, .residual = true, .algorithm = name},
               55);
    check_conv({.x = {1, 2, 30, 5}, .w = {4, 2, 3, 7}, .pads = {1, 3, 1, 3}, .relu = true, .algorithm = name}, 56);
    check_conv({.x = {2, 3, 300}, .w = {6, 3, 5}, .strides = {2}, .pads = {2, 2}, .algorithm = name}, 57);
    check_conv({.x = {1, 3, 19, 130}, .w = {16, 3, 2, 5}, .strides = {1, 2}, .pads = {0, 0, 1, 4}, .relu = true,
                .algorithm = name}, 58);
  }
  primitives::set_isa(original);
}

// The fault injector's hook-only check keeps a small-input-channel layer on its direct kernel
// (the clean run's arithmetic): the hook sees every output's raw sum once, and what it changes
// reaches exactly that output. An ABFT check moves the layer to im2col + GEMM, whose checks pass.
TEST(ConvOp, SmallInputChannelsFaultHookAndChecks) {
  Node node;
  node.op_type = "Conv";
  node.attributes.set_ints("strides", {2, 2});
  node.attributes.set_ints("pads", {1, 1, 1, 1});
  const Tensor x = random_tensor({1, 3, 30, 40}, 60), w = random_tensor({10, 3, 3, 3}, 61), b = random_tensor({10}, 62);
  auto clean = run_node(node, 13, {x, w, b});
  ASSERT_EQ(conv_algorithm_name(*clean.kernel), "small_channels");
  const Tensor& want = clean.outputs[0];
  const int64_t plane = want.dim(2) * want.dim(3), target_channel = 7, target_pixel = 123;

  struct Hook {
    std::atomic<int64_t> seen{0};
    int64_t channel = 0, pixel = 0;
    static void corrupt(void* context, int64_t row0, int64_t col0, int rows, int cols, float* c, int64_t ldc) {
      auto* self = static_cast<Hook*>(context);
      self->seen += int64_t(rows) * cols;
      if (self->channel >= row0 && self->channel < row0 + rows && self->pixel >= col0 && self->pixel < col0 + cols)
        c[(self->channel - row0) * ldc + (self->pixel - col0)] += 1000.f;
    }
  } hook;
  hook.channel = target_channel;
  hook.pixel = target_pixel;
  primitives::GemmCheckCounters counters;
  primitives::GemmCheck check;
  check.scheme = primitives::GemmCheckScheme::hook_only;
  check.counters = &counters;
  check.fault_hook = &Hook::corrupt;
  check.fault_context = &hook;
  std::vector<const Tensor*> in = {&x, &w, &b};
  Tensor hooked(DType::f32, want.shape());
  std::vector<Tensor*> out = {&hooked};
  ExecContext hooked_context{testing::harness_pool(), &check};
  clean.kernel->run(in, out, hooked_context);
  EXPECT_EQ(hook.seen.load(), want.numel());
  const float* got = hooked.data<float>();
  const float* clean_values = want.data<float>();
  for (int64_t i = 0; i < want.numel(); ++i) {
    if (i == target_channel * plane + target_pixel)
      EXPECT_NEAR(got[i], clean_values[i] + 1000.f, 1e-3f);
    else
      ASSERT_EQ(got[i], clean_values[i]) << "element " << i;
  }

  check = primitives::GemmCheck{};
  check.counters = &counters;
  Tensor checked(DType::f32, want.shape());
  out = {&checked};
  ExecContext checked_context{testing::harness_pool(), &check};
  clean.kernel->run(in, out, checked_context);
  EXPECT_GT(counters.checks.load(), 0);
  EXPECT_EQ(counters.detections.load(), 0);
  EXPECT_LT(relative_l2_error(checked, want), 1e-5);
}

TEST(ConvOp, DepthwiseOnEveryIsa) {
  const primitives::Isa original = primitives::active_isa();
  for (primitives::Isa isa :
       {primitives::Isa::scalar, primitives::Isa::avx2, primitives::Isa::avx512}) {
    if (primitives::set_isa(isa) != isa) continue;  // not supported by this CPU
    SCOPED_TRACE(primitives::isa_name(isa));
    check_conv({.x = {1, 5, 9, 23}, .w = {5, 1, 3, 3}, .pads = {1, 1, 1, 1}, .group = 5}, 30);
    check_conv({.x = {1, 5, 9, 23}, .w = {5, 1, 3, 3}, .strides = {2, 2}, .pads = {0, 1, 1, 0},
                .group = 5, .relu = true}, 31);
    check_conv({.x = {1, 3, 8, 21}, .w = {3, 1, 5, 5}, .strides = {1, 3}, .pads = {2, 2, 2, 2},
                .group = 3}, 32);
    check_conv({.x = {1, 6, 9, 12}, .w = {12, 6, 1, 1}, .relu = true, .residual = true}, 33);
    check_conv({.x = {1, 6, 9, 12}, .w = {12, 6, 3, 3}, .pads = {1, 1, 1, 1}}, 34);
  }
  primitives::set_isa(original);
}

// Throughput of typical ResNet-50 / MobileNetV2 layers; run with --gtest_also_run_disabled_tests.
TEST(ConvOp, DISABLED_Throughput) {
  struct Layer {
    const char* name;
    Shape x, w;
    std::vector<int64_t> strides, pads;
    int64_t group;
  };
  std::vector<Layer> layers = {
      {"resnet 3x3 64->64 56x56", {1, 64, 56, 56}, {64, 64, 3, 3}, {1, 1}, {1, 1, 1, 1}, 1},
      {"resnet 1x1 64->256 56x56", {1, 64, 56, 56}, {256, 64, 1, 1}, {1, 1}, {0, 0, 0, 0}, 1},
      {"resnet 3x3 256->256 14x14", {1, 256, 14, 14}, {256, 256, 3, 3}, {1, 1}, {1, 1, 1, 1}, 1},
      {"resnet 7x7 s2 stem", {1, 3, 224, 224}, {64, 3, 7, 7}, {2, 2}, {3, 3, 3, 3}, 1},
      {"mobilenet dw 3x3 144 56x56", {1, 144, 56, 56}, {144, 1, 3, 3}, {1, 1}, {1, 1, 1, 1}, 144},
      {"mobilenet dw 3x3 s2 144 56x56", {1, 144, 56, 56}, {144, 1, 3, 3}, {2, 2}, {1, 1, 1, 1}, 144},
  };
  for (const Layer& l : layers) {
    Node node;
    node.op_type = "Conv";
    node.attributes.set_ints("strides", l.strides);
    node.attributes.set_ints("pads", l.pads);
    node.attributes.set_int("group", l.group);
    Tensor x = random_tensor(l.x, 1), w = random_tensor(l.w, 2);
    auto result = run_node(node, 13, {x, w});
    std::vector<const Tensor*> in = {&x, &w};
    std::vector<Tensor*> out = {&result.outputs[0]};
    ExecContext exec{testing::harness_pool()};
    const int reps = 20;
    auto start = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) result.kernel->run(in, out, exec);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / reps;
    std::printf("%-32s %8.3f ms %8.1f GFLOP/s\n", l.name, seconds * 1e3,
                result.kernel->flops() / seconds * 1e-9);
  }
}

TEST(ConvOp, RejectsBadShapesWithNodeName) {
  Node node;
  node.op_type = "Conv";
  node.name = "bad_conv";
  node.attributes.set_int("group", 3);
  try {
    run_node(node, 13, {random_tensor({1, 4, 5, 5}, 1), random_tensor({3, 2, 3, 3}, 2)});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad_conv"), std::string::npos) << e.what();
  }
  node.attributes.set_int("group", 1);
  EXPECT_THROW(run_node(node, 13, {random_tensor({1, 4, 2, 2}, 1), random_tensor({3, 4, 3, 3}, 2)}),
               Error);  // kernel larger than the input
}

// ---------------------------------------------------------------- ConvTranspose

// Scatter form: every input pixel adds w * x to the outputs it reaches.
Tensor reference_conv_transpose(const Tensor& x, const Tensor& w, const Tensor* bias,
                                std::vector<int64_t> strides, std::vector<int64_t> dilations,
                                std::vector<int64_t> pad_begin, std::vector<int64_t> out_spatial,
                                int64_t group) {
  const size_t rank = size_t(x.rank() - 2);
  std::vector<int64_t> in(3, 1), k(3, 1), s(3, 1), d(3, 1), pb(3, 0), out(3, 1);
  const int64_t cin = x.dim(1), cin_g = cin / group, cout_g = w.dim(1), cout = cout_g * group;
  Shape out_shape = {x.dim(0), cout};
  for (size_t i = 0; i < rank; ++i) {
    size_t j = 3 - rank + i;
    in[j] = x.dim(int(2 + i));
    k[j] = w.dim(int(2 + i));
    s[j] = strides[i];
    d[j] = dilations[i];
    pb[j] = pad_begin[i];
    out[j] = out_spatial[i];
    out_shape.push_back(out[j]);
  }
  std::vector<double> acc(size_t(shape_numel(out_shape)), 0.0);
  const float* xv = x.data<float>();
  const float* wv = w.data<float>();
  const int64_t out_plane = out[0] * out[1] * out[2];
  for (int64_t n = 0; n < x.dim(0); ++n)
    for (int64_t ci = 0; ci < cin; ++ci) {
      const int64_t g = ci / cin_g;
      for (int64_t i0 = 0; i0 < in[0]; ++i0)
        for (int64_t i1 = 0; i1 < in[1]; ++i1)
          for (int64_t i2 = 0; i2 < in[2]; ++i2) {
            double xval = xv[(((n * cin + ci) * in[0] + i0) * in[1] + i1) * in[2] + i2];
            for (int64_t co = 0; co < cout_g; ++co)
              for (int64_t k0 = 0; k0 < k[0]; ++k0)
                for (int64_t k1 = 0; k1 < k[1]; ++k1)
                  for (int64_t k2 = 0; k2 < k[2]; ++k2) {
                    int64_t o0 = i0 * s[0] + k0 * d[0] - pb[0];
                    int64_t o1 = i1 * s[1] + k1 * d[1] - pb[1];
                    int64_t o2 = i2 * s[2] + k2 * d[2] - pb[2];
                    if (o0 < 0 || o0 >= out[0] || o1 < 0 || o1 >= out[1] || o2 < 0 || o2 >= out[2])
                      continue;
                    double wval = wv[(((ci * cout_g + co) * k[0] + k0) * k[1] + k1) * k[2] + k2];
                    acc[size_t(((n * cout + g * cout_g + co) * out[0] + o0) * out[1] * out[2] +
                                o1 * out[2] + o2)] += xval * wval;
                  }
          }
    }
  Tensor y(DType::f32, out_shape);
  for (size_t i = 0; i < acc.size(); ++i) {
    int64_t co = (int64_t(i) / out_plane) % cout;
    y.data<float>()[i] = float(acc[i] + (bias ? bias->data<float>()[co] : 0.0));
  }
  return y;
}

TEST(ConvTransposeOp, StridesPadsDilationsGroupsOutputPadding) {
  struct Case {
    Shape x, w;
    std::vector<int64_t> strides, dilations, pads, output_padding;
    int64_t group;
  };
  std::vector<Case> cases = {
      {{1, 3, 4, 5}, {3, 2, 3, 3}, {1, 1}, {1, 1}, {0, 0, 0, 0}, {0, 0}, 1},
      {{2, 4, 3, 4}, {4, 3, 3, 2}, {2, 3}, {1, 1}, {1, 0, 0, 1}, {1, 0}, 1},
      {{1, 4, 5, 3}, {4, 2, 2, 3}, {2, 1}, {2, 2}, {0, 1, 1, 0}, {0, 0}, 2},
      {{1, 2, 7}, {2, 3, 3}, {3}, {1}, {1, 2}, {2}, 1},
      {{1, 2, 2, 3, 2}, {2, 2, 2, 2, 2}, {2, 1, 2}, {1, 1, 1}, {0, 0, 0, 0, 0, 0}, {0, 0, 1}, 1},
  };
  uint32_t seed = 100;
  for (const Case& c : cases) {
    const size_t rank = c.x.size() - 2;
    Node node;
    node.op_type = "ConvTranspose";
    node.attributes.set_ints("strides", c.strides);
    node.attributes.set_ints("dilations", c.dilations);
    node.attributes.set_ints("pads", c.pads);
    node.attributes.set_ints("output_padding", c.output_padding);
    node.attributes.set_int("group", c.group);
    Tensor x = random_tensor(c.x, seed++), w = random_tensor(c.w, seed++);
    Tensor b = random_tensor({c.w[1] * c.group}, seed++);
    std::vector<int64_t> pad_begin(c.pads.begin(), c.pads.begin() + long(rank)), out_spatial;
    for (size_t i = 0; i < rank; ++i)
      out_spatial.push_back(c.strides[i] * (c.x[2 + i] - 1) + c.output_padding[i] +
                            (c.w[2 + i] - 1) * c.dilations[i] + 1 - c.pads[i] - c.pads[i + rank]);
    Tensor expected =
        reference_conv_transpose(x, w, &b, c.strides, c.dilations, pad_begin, out_spatial, c.group);
    auto result = run_node(node, 13, {x, w, b});
    ASSERT_EQ(result.outputs[0].shape(), expected.shape()) << shape_to_string(c.x);
    EXPECT_LT(relative_l2_error(result.outputs[0], expected), 1e-5) << shape_to_string(c.x);
  }
}

TEST(ConvTransposeOp, OutputShapeAndSameAutoPad) {
  Tensor x = random_tensor({1, 2, 3, 3}, 7), w = random_tensor({2, 3, 3, 3}, 8);
  {
    Node node;
    node.op_type = "ConvTranspose";
    node.attributes.set_ints("strides", {3, 2});
    node.attributes.set_ints("output_shape", {10, 8});
    auto result = run_node(node, 13, {x, w});
    // Full extent is 9 x 7; the requested 10 x 8 leaves the extra row/column at zero.
    Tensor expected = reference_conv_transpose(x, w, nullptr, {3, 2}, {1, 1}, {0, 0}, {10, 8}, 1);
    ASSERT_EQ(result.outputs[0].shape(), (Shape{1, 3, 10, 8}));
    EXPECT_LT(relative_l2_error(result.outputs[0], expected), 1e-5);
  }
  {
    Node node;
    node.op_type = "ConvTranspose";
    node.attributes.set_ints("strides", {2, 2});
    node.attributes.set_string("auto_pad", "SAME_UPPER");
    auto result = run_node(node, 13, {x, w});
    // Full extent 7, wanted 6: one pad, at the end for SAME_UPPER.
    Tensor expected = reference_conv_transpose(x, w, nullptr, {2, 2}, {1, 1}, {0, 0}, {6, 6}, 1);
    ASSERT_EQ(result.outputs[0].shape(), (Shape{1, 3, 6, 6}));
    EXPECT_LT(relative_l2_error(result.outputs[0], expected), 1e-5);
  }
}

}  // namespace
}  // namespace tessera
