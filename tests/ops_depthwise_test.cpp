// The depthwise plane kernels of every ISA against a plain direct loop: strides, pads, dilations,
// odd sizes 1..33, tails, fused residual and clamp, guard words; plus the Conv op with multipliers.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "ops/conv_depthwise.h"
#include "ops/fused_activation.h"
#include "ops_kernel_harness.h"
#include "primitives/primitives.h"
#include "test_support.h"

namespace tessera {
namespace {

using PlaneFn = void (*)(const DepthwisePlaneShape&, const float*, const float*, float,
                         const DepthwiseEpilogue&, float*);

struct IsaKernel {
  primitives::Isa isa;
  PlaneFn fn;
};

// The kernels this CPU can run; calling one it cannot would fault.
std::vector<IsaKernel> runnable_kernels() {
  std::vector<IsaKernel> all = {{primitives::Isa::scalar, depthwise_scalar::plane_fused},
                                {primitives::Isa::avx2, depthwise_avx2::plane_fused},
                                {primitives::Isa::avx512, depthwise_avx512::plane_fused}};
  std::vector<IsaKernel> result;
  for (const IsaKernel& k : all)
    if (int(k.isa) <= int(primitives::detected_isa())) result.push_back(k);
  return result;
}

struct PlaneCase {
  int64_t in[3], kernel[3], stride[3], dilation[3], pad_begin[3], pad_end[3];
};

DepthwisePlaneShape make_shape(const PlaneCase& c) {
  DepthwisePlaneShape s{};
  for (int i = 0; i < 3; ++i) {
    s.input[i] = c.in[i];
    s.kernel[i] = c.kernel[i];
    s.stride[i] = c.stride[i];
    s.dilation[i] = c.dilation[i];
    s.pad_begin[i] = c.pad_begin[i];
    s.output[i] = (c.in[i] + c.pad_begin[i] + c.pad_end[i] - ((c.kernel[i] - 1) * c.dilation[i] + 1)) /
                      c.stride[i] + 1;
  }
  return s;
}

// The definition, in double: bias + taps over the zero-padded input, + residual, then clamp.
std::vector<float> reference_plane(const DepthwisePlaneShape& s, const std::vector<float>& x,
                                   const std::vector<float>& w, float bias,
                                   const DepthwiseEpilogue& e) {
  std::vector<float> y;
  for (int64_t o0 = 0; o0 < s.output[0]; ++o0)
    for (int64_t o1 = 0; o1 < s.output[1]; ++o1)
      for (int64_t o2 = 0; o2 < s.output[2]; ++o2) {
        double acc = bias;
        for (int64_t k0 = 0; k0 < s.kernel[0]; ++k0)
          for (int64_t k1 = 0; k1 < s.kernel[1]; ++k1)
            for (int64_t k2 = 0; k2 < s.kernel[2]; ++k2) {
              const int64_t i0 = o0 * s.stride[0] + k0 * s.dilation[0] - s.pad_begin[0];
              const int64_t i1 = o1 * s.stride[1] + k1 * s.dilation[1] - s.pad_begin[1];
              const int64_t i2 = o2 * s.stride[2] + k2 * s.dilation[2] - s.pad_begin[2];
              if (i0 < 0 || i0 >= s.input[0] || i1 < 0 || i1 >= s.input[1] || i2 < 0 ||
                  i2 >= s.input[2])
                continue;
              acc += double(x[size_t((i0 * s.input[1] + i1) * s.input[2] + i2)]) *
                     double(w[size_t((k0 * s.kernel[1] + k1) * s.kernel[2] + k2)]);
            }
        if (e.residual) acc += e.residual[y.size()];
        if (e.clamp) acc = std::min<double>(std::max<double>(acc, e.clamp_low), e.clamp_high);
        y.push_back(float(acc));
      }
  return y;
}

std::vector<float> random_values(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// Runs one case on every runnable ISA with each epilogue; the output sits between guard words
// that must survive (the plane after this one may belong to another thread).
void check_plane(const PlaneCase& c, uint32_t seed) {
  const DepthwisePlaneShape s = make_shape(c);
  for (int i = 0; i < 3; ++i) ASSERT_GE(s.output[i], 1) << "bad test case";
  std::mt19937 rng(seed);
  const size_t in_size = size_t(s.input[0] * s.input[1] * s.input[2]);
  const size_t out_size = size_t(s.output[0] * s.output[1] * s.output[2]);
  const std::vector<float> x = random_values(in_size, rng);
  const std::vector<float> w = random_values(size_t(s.kernel[0] * s.kernel[1] * s.kernel[2]), rng);
  const std::vector<float> residual = random_values(out_size, rng);
  const float bias = random_values(1, rng)[0];
  constexpr size_t kGuard = 40;
  constexpr float kGuardValue = -12345.f;
  for (int variant = 0; variant < 4; ++variant) {
    DepthwiseEpilogue e;
    if (variant == 1 || variant == 3) e.residual = residual.data();
    if (variant >= 2) {
      e.clamp = true;
      e.clamp_low = variant == 2 ? 0.f : -0.25f;
      e.clamp_high = variant == 2 ? std::numeric_limits<float>::infinity() : 0.5f;
    }
    const std::vector<float> expected = reference_plane(s, x, w, bias, e);
    for (const IsaKernel& k : runnable_kernels()) {
      std::vector<float> buffer(out_size + 2 * kGuard, kGuardValue);
      k.fn(s, x.data(), w.data(), bias, e, buffer.data() + kGuard);
      for (size_t i = 0; i < out_size; ++i)
        ASSERT_NEAR(buffer[kGuard + i], expected[i], 1e-5f * (1.f + std::fabs(expected[i])))
            << primitives::isa_name(k.isa) << " variant " << variant << " at " << i << " in "
            << s.input[0] << "x" << s.input[1] << "x" << s.input[2] << " kernel " << s.kernel[1]
            << "x" << s.kernel[2] << " stride " << s.stride[1] << "," << s.stride[2];
      for (size_t i = 0; i < kGuard; ++i) {
        ASSERT_EQ(buffer[i], kGuardValue) << primitives::isa_name(k.isa) << " wrote before";
        ASSERT_EQ(buffer[kGuard + out_size + i], kGuardValue)
            << primitives::isa_name(k.isa) << " wrote past the plane";
      }
    }
  }
}

TEST(DepthwisePlane, ThreeByThreeEverySizeStrideOneAndTwo) {
  uint32_t seed = 1;
  for (int64_t h = 1; h <= 33; h += 2)
    for (int64_t w = 1; w <= 33; ++w)
      for (int64_t stride : {1, 2}) {
        // Symmetric "same" padding, as in MobileNet.
        check_plane({{1, h, w}, {1, 3, 3}, {1, stride, stride}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}},
                    seed++);
        if (HasFatalFailure()) return;
      }
}

TEST(DepthwisePlane, PadsDilationsKernelsAndStrides) {
  const std::vector<PlaneCase> cases = {
      {{1, 7, 9}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, {0, 0, 0}},        // no padding
      {{1, 9, 12}, {1, 3, 3}, {1, 2, 2}, {1, 1, 1}, {0, 0, 1}, {0, 1, 0}},       // asymmetric
      {{1, 14, 14}, {1, 3, 3}, {1, 2, 2}, {1, 1, 1}, {0, 0, 0}, {0, 1, 1}},      // TF "same" s2
      {{1, 12, 17}, {1, 3, 3}, {1, 1, 1}, {1, 2, 2}, {0, 2, 2}, {0, 2, 2}},      // dilation 2
      {{1, 13, 11}, {1, 3, 3}, {1, 2, 2}, {1, 2, 3}, {0, 2, 3}, {0, 1, 2}},      // dilation, s2
      {{1, 11, 19}, {1, 5, 5}, {1, 1, 1}, {1, 1, 1}, {0, 2, 2}, {0, 2, 2}},      // 5x5
      {{1, 15, 16}, {1, 5, 5}, {1, 2, 2}, {1, 1, 1}, {0, 2, 2}, {0, 2, 2}},      // 5x5 s2
      {{1, 10, 13}, {1, 3, 5}, {1, 1, 2}, {1, 1, 1}, {0, 1, 2}, {0, 1, 2}},      // mixed strides
      {{1, 10, 13}, {1, 5, 3}, {1, 2, 1}, {1, 1, 1}, {0, 2, 1}, {0, 2, 1}},
      {{1, 17, 23}, {1, 3, 3}, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}},      // stride 3
      {{1, 17, 23}, {1, 3, 3}, {1, 5, 5}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}},      // stride 5: rows
      {{1, 6, 8}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {0, 1, 0}, {0, 0, 2}},        // 1x1 with pads
      {{1, 4, 2}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}},        // kernel > row
      {{1, 3, 3}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 3, 3}, {0, 3, 3}},        // pads > image
      {{1, 9, 9}, {1, 9, 9}, {1, 1, 1}, {1, 1, 1}, {0, 4, 4}, {0, 4, 4}},        // 81 taps: rows
      {{1, 7, 7}, {1, 7, 7}, {1, 1, 1}, {1, 1, 1}, {0, 3, 3}, {0, 3, 3}},        // 49 taps
      {{1, 1, 37}, {1, 1, 3}, {1, 1, 1}, {1, 1, 3}, {0, 0, 3}, {0, 0, 3}},       // 1-D
      {{1, 1, 40}, {1, 1, 4}, {1, 1, 2}, {1, 1, 1}, {0, 0, 1}, {0, 0, 2}},       // 1-D s2
      {{4, 5, 6}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}},        // 3-D: rows
      {{112, 1, 112}, {1, 1, 3}, {1, 1, 1}, {1, 1, 1}, {0, 0, 1}, {0, 0, 1}},    // 3-D of 1-D rows
  };
  uint32_t seed = 1000;
  for (const PlaneCase& c : cases) {
    check_plane(c, seed++);
    if (HasFatalFailure()) return;
  }
}

TEST(DepthwisePlane, LargePlanesRunInChunksAndWideRowsFallBack) {
  // 112x112 needs several passes through the stack buffer; 3000-wide rows do not fit it at all.
  check_plane({{1, 112, 112}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}}, 1);
  check_plane({{1, 112, 112}, {1, 3, 3}, {1, 2, 2}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}}, 2);
  check_plane({{1, 57, 75}, {1, 5, 5}, {1, 2, 2}, {1, 1, 1}, {0, 2, 2}, {0, 2, 2}}, 3);
  check_plane({{1, 5, 3000}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}}, 4);
}

TEST(DepthwisePlane, EpilogueFromActivation) {
  DepthwiseEpilogue e;
  primitives::UnaryParams p;
  EXPECT_TRUE(depthwise_epilogue_for(p, &e));
  EXPECT_FALSE(e.clamp);
  p.kind = primitives::UnaryKind::clip;
  p.alpha = 0.f;
  p.beta = 6.f;
  EXPECT_TRUE(depthwise_epilogue_for(p, &e));
  EXPECT_TRUE(e.clamp);
  EXPECT_EQ(e.clamp_low, 0.f);
  EXPECT_EQ(e.clamp_high, 6.f);
  p.kind = primitives::UnaryKind::relu;
  EXPECT_TRUE(depthwise_epilogue_for(p, &e));
  EXPECT_EQ(e.clamp_low, 0.f);
  EXPECT_TRUE(std::isinf(e.clamp_high));
  p.kind = primitives::UnaryKind::sigmoid;
  EXPECT_FALSE(depthwise_epilogue_for(p, &e));
}

// The Conv operator on its depthwise path: channel multiplier 2, batch 2, fused Clip(0, 6).
TEST(DepthwiseConvOp, ChannelMultiplierAndReluSixOnEveryIsa) {
  const primitives::Isa original = primitives::active_isa();
  for (const IsaKernel& k : runnable_kernels()) {
    primitives::set_isa(k.isa);
    SCOPED_TRACE(primitives::isa_name(k.isa));
    Tensor x = testing::random_tensor({2, 3, 14, 14}, 5);
    Tensor w = testing::random_tensor({6, 1, 3, 3}, 6);
    Tensor b = testing::random_tensor({6}, 7);
    // Scale up so ReLU6 clips at both ends.
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] *= 8.f;
    Node node;
    node.op_type = "Conv";
    node.attributes.set_int("group", 3);
    node.attributes.set_ints("pads", {1, 1, 1, 1});
    node.attributes.set_ints("strides", {2, 2});
    node.attributes.set_string(kFusedActivationAttribute, "Clip");
    node.attributes.set_float(kFusedAlphaAttribute, 0.f);
    node.attributes.set_float(kFusedBetaAttribute, 6.f);
    auto result = testing::run_node(node, 13, {x, w, b});
    const Tensor& y = result.outputs[0];
    ASSERT_EQ(y.shape(), (Shape{2, 6, 7, 7}));
    DepthwisePlaneShape s = make_shape({{1, 14, 14}, {1, 3, 3}, {1, 2, 2}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}});
    DepthwiseEpilogue e;
    e.clamp = true;
    e.clamp_low = 0.f;
    e.clamp_high = 6.f;
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t co = 0; co < 6; ++co) {
        const float* plane = x.data<float>() + (n * 3 + co / 2) * 196;
        std::vector<float> xin(plane, plane + 196), win(w.data<float>() + co * 9, w.data<float>() + co * 9 + 9);
        std::vector<float> expected = reference_plane(s, xin, win, b.data<float>()[co], e);
        for (size_t i = 0; i < expected.size(); ++i)
          ASSERT_NEAR(y.data<float>()[(n * 6 + co) * 49 + int64_t(i)], expected[i], 1e-4f)
              << "n " << n << " channel " << co << " at " << i;
      }
  }
  primitives::set_isa(original);
}

// Row ranges of a plane (how the Conv op splits large planes over threads) give every output to
// the bit as the whole-plane call does: any split point, widths below, at and above a vector,
// both strides, with residual and clamp; rows outside the range are not touched. Where the
// active ISA has no row-range kernel the call says so and writes nothing.
TEST(DepthwisePlane, RowRangesMatchTheWholePlaneBitForBit) {
  const primitives::Isa original = primitives::active_isa();
  std::mt19937 rng(77);
  for (const IsaKernel& k : runnable_kernels()) {
    primitives::set_isa(k.isa);
    SCOPED_TRACE(primitives::isa_name(k.isa));
    for (int64_t h : {2, 5, 17, 56})
      for (int64_t w : {1, 3, 7, 16, 23, 56})
        for (int64_t stride : {1, 2}) {
          const DepthwisePlaneShape s =
              make_shape({{1, h, w}, {1, 3, 3}, {1, stride, stride}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}});
          const int64_t out_size = s.output[1] * s.output[2];
          const std::vector<float> x = random_values(size_t(h * w), rng);
          const std::vector<float> weights = random_values(9, rng);
          const std::vector<float> residual = random_values(size_t(out_size), rng);
          DepthwiseEpilogue e;
          e.residual = residual.data();
          e.clamp = true;
          e.clamp_low = -0.5f;
          e.clamp_high = 0.75f;
          std::vector<float> whole(static_cast<size_t>(out_size));
          depthwise_plane_fused_f32(s, x.data(), weights.data(), 0.25f, e, whole.data());
          const bool supported = depthwise_plane_rows_fused_f32(s, nullptr, nullptr, 0.25f, e, nullptr, 0, 0);
          EXPECT_EQ(supported, k.isa == primitives::Isa::avx512 && (stride == 2 || w >= 2));  // 1-wide: no vectors
          if (!supported) continue;
          for (int64_t split = 0; split <= s.output[1]; ++split) {
            constexpr float kUntouched = -777.f;
            std::vector<float> banded(size_t(out_size), kUntouched);
            ASSERT_TRUE(depthwise_plane_rows_fused_f32(s, x.data(), weights.data(), 0.25f, e, banded.data(), 0, split));
            for (int64_t i = split * s.output[2]; i < out_size; ++i)
              ASSERT_EQ(banded[size_t(i)], kUntouched) << "rows [0, " << split << ") wrote output " << i;
            ASSERT_TRUE(depthwise_plane_rows_fused_f32(s, x.data(), weights.data(), 0.25f, e, banded.data(), split,
                                                       s.output[1]));
            for (int64_t i = 0; i < out_size; ++i)
              ASSERT_EQ(banded[size_t(i)], whole[size_t(i)])
                  << h << "x" << w << " stride " << stride << " split at row " << split << ", output " << i;
          }
        }
  }
  primitives::set_isa(original);
}

// The Conv op on a plane large enough to be split by rows over the harness's 2 threads: the
// same bits as each plane run whole on one thread, and the plain loop's values.
TEST(DepthwiseConvOp, LargePlanesSplitByRowsGiveTheWholePlaneResult) {
  Tensor x = testing::random_tensor({1, 4, 120, 61}, 11);
  Tensor w = testing::random_tensor({4, 1, 3, 3}, 12);
  Tensor b = testing::random_tensor({4}, 13);
  for (int64_t stride : {1, 2}) {
    SCOPED_TRACE(stride);
    Node node;
    node.op_type = "Conv";
    node.attributes.set_int("group", 4);
    node.attributes.set_ints("pads", {1, 1, 1, 1});
    node.attributes.set_ints("strides", {stride, stride});
    auto result = testing::run_node(node, 13, {x, w, b});
    const Tensor& y = result.outputs[0];
    const DepthwisePlaneShape s =
        make_shape({{1, 120, 61}, {1, 3, 3}, {1, stride, stride}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}});
    const int64_t out_plane = s.output[1] * s.output[2];
    ASSERT_EQ(y.numel(), 4 * out_plane);
    for (int64_t c = 0; c < 4; ++c) {
      std::vector<float> whole(static_cast<size_t>(out_plane));
      depthwise_plane_fused_f32(s, x.data<float>() + c * 120 * 61, w.data<float>() + c * 9, b.data<float>()[c],
                                DepthwiseEpilogue{}, whole.data());
      const std::vector<float> xin(x.data<float>() + c * 120 * 61, x.data<float>() + (c + 1) * 120 * 61);
      const std::vector<float> win(w.data<float>() + c * 9, w.data<float>() + c * 9 + 9);
      const std::vector<float> expected = reference_plane(s, xin, win, b.data<float>()[c], DepthwiseEpilogue{});
      for (int64_t i = 0; i < out_plane; ++i) {
        ASSERT_EQ(y.data<float>()[c * out_plane + i], whole[size_t(i)]) << "channel " << c << " output " << i;
        ASSERT_NEAR(whole[size_t(i)], expected[size_t(i)], 1e-5f * (1.f + std::fabs(expected[size_t(i)])));
      }
    }
  }
}

// Kernel-only throughput on the MobileNetV2 depthwise layers, one thread, fused ReLU6; run with
// --gtest_also_run_disabled_tests.
TEST(DepthwisePlane, DISABLED_MobileNetThroughput) {
  struct Layer {
    int64_t channels, size, stride;
  };
  const std::vector<Layer> layers = {{32, 112, 1}, {96, 112, 2}, {144, 56, 1}, {144, 56, 2},
                                     {192, 28, 1}, {192, 28, 2}, {384, 14, 1}, {576, 14, 1},
                                     {576, 14, 2}, {960, 7, 1}};
  for (const Layer& l : layers) {
    const DepthwisePlaneShape s = make_shape(
        {{1, l.size, l.size}, {1, 3, 3}, {1, l.stride, l.stride}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}});
    const int64_t in_plane = l.size * l.size, out_plane = s.output[1] * s.output[2];
    std::mt19937 rng(1);
    const std::vector<float> x = random_values(size_t(l.channels * in_plane), rng);
    const std::vector<float> w = random_values(size_t(l.channels * 9), rng);
    std::vector<float> y(size_t(l.channels * out_plane));
    DepthwiseEpilogue e;
    e.clamp = true;
    e.clamp_low = 0.f;
    e.clamp_high = 6.f;
    auto pass = [&] {
      for (int64_t c = 0; c < l.channels; ++c)
        depthwise_plane_fused_f32(s, x.data() + c * in_plane, w.data() + c * 9, 0.1f, e,
                                  y.data() + c * out_plane);
    };
    pass();
    // The best of several batches: the machine may be shared.
    double seconds = 1e9;
    for (int batch = 0; batch < 7; ++batch) {
      const int reps = 20;
      const auto start = std::chrono::steady_clock::now();
      for (int r = 0; r < reps; ++r) pass();
      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / reps;
      seconds = elapsed < seconds ? elapsed : seconds;
    }
    const double flops = 2.0 * 9 * double(l.channels * out_plane);
    std::printf("dw3x3 c%-4ld %3ldx%-3ld s%ld  %8.4f ms  %6.1f GFLOP/s\n", long(l.channels),
                long(l.size), long(l.size), long(l.stride), seconds * 1e3, flops / seconds * 1e-9);
  }
}

}  // namespace
}  // namespace tessera
