// The channels-last pass (graph/passes/channels_last.cpp) and its operators on hand-made graphs:
// the same outputs as the NCHW plan (itself tested against plain loops and PyTorch), the layers
// converted with a transpose only where the image enters, graphs with a depthwise layer left
// in NCHW, and a GEMM check refused rather than skipped.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "graph/graph_builder.h"
#include "primitives/primitives.h"
#include "tessera/session.h"
#include "test_support.h"

namespace tessera {
namespace {

using testing::random_tensor;

Attributes window(std::vector<int64_t> kernel, std::vector<int64_t> strides, std::vector<int64_t> pads) {
  Attributes a;
  a.set_ints("kernel_shape", std::move(kernel));
  a.set_ints("strides", std::move(strides));
  a.set_ints("pads", std::move(pads));
  return a;
}

int conv(GraphBuilder& b, int x, int64_t cin, int64_t cout, int64_t k, int64_t stride, uint32_t seed,
         int64_t group = 1) {
  const int w =
      b.constant("w" + std::to_string(seed), random_tensor({cout, cin / group, k, k}, seed, -0.3f, 0.3f));
  const int bias = b.constant("b" + std::to_string(seed), random_tensor({cout}, seed + 1));
  Attributes a = window({k, k}, {stride, stride}, {k / 2, k / 2, k / 2, k / 2});
  a.set_int("group", group);
  return b.node("Conv", {x, w, bias}, a);
}

// A small ResNet: a 7x7 stride-2 stem, max pool, a bottleneck with a strided 3x3 and a
// downsampling 1x1 joined by Add + Relu, a 3x3 stride-1 layer, global pooling and a classifier.
Graph small_resnet(int64_t depthwise_channels = 0) {
  GraphBuilder b;
  const int x = b.input("x", {2, 3, 29, 27});
  int h = b.node("Relu", {conv(b, x, 3, 16, 7, 2, 10)});
  h = b.node("MaxPool", {h}, window({3, 3}, {2, 2}, {1, 1, 1, 1}));
  int branch = b.node("Relu", {conv(b, h, 16, 24, 1, 1, 20)});
  branch = b.node("Relu", {conv(b, branch, 24, 24, 3, 2, 30)});
  branch = conv(b, branch, 24, 32, 1, 1, 40);
  const int shortcut = conv(b, h, 16, 32, 1, 2, 50);
  h = b.node("Relu", {b.node("Add", {branch, shortcut})});
  if (depthwise_channels > 0) h = conv(b, h, 32, 32, 3, 1, 55, 32);
  h = b.node("Relu", {conv(b, h, 32, 40, 3, 1, 60)});
  h = b.node("GlobalAveragePool", {h});
  Attributes flatten;
  flatten.set_int("axis", 1);
  h = b.node("Flatten", {h}, flatten);
  Attributes gemm;
  gemm.set_int("transB", 1);
  h = b.node("Gemm",
             {h, b.constant("fc", random_tensor({10, 40}, 70)), b.constant("fcb", random_tensor({10}, 71))},
             gemm);
  b.g.outputs.push_back(h);
  return std::move(b.g);
}

std::map<std::string, int> op_counts(const Session& s) {
  std::map<std::string, int> counts;
  for (const Node& n : s.planned_graph().nodes) ++counts[n.op_type];
  return counts;
}

TEST(ChannelsLast, SmallResNetMatchesTheNchwPlan) {
  const std::map<std::string, Tensor> inputs{{"x", random_tensor({2, 3, 29, 27}, 1)}};
  for (int threads : {1, 2}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    Session nchw(small_resnet(), SessionOptions{threads}),
        nhwc(small_resnet(), SessionOptions{threads, true, true});
    const Tensor expected = nchw.run(inputs).begin()->second;
    const Tensor actual = nhwc.run(inputs).begin()->second;
    EXPECT_EQ(actual.shape(), expected.shape());
    EXPECT_LT(testing::relative_l2_error(actual, expected), 1e-5);
    const auto counts = op_counts(nhwc);
    EXPECT_EQ(counts.count("Conv"), 0u);
    EXPECT_EQ(counts.at("ConvNhwc"), 6);
    EXPECT_EQ(counts.at("MaxPoolNhwc"), 1);
    EXPECT_EQ(counts.at("GlobalAveragePoolNhwc"), 1);
    EXPECT_EQ(counts.at("Transpose"), 1) << "only the image enters the region";
  }
}

TEST(ChannelsLast, GraphWithADepthwiseLayerStaysNchw) {
  Session nhwc(small_resnet(32), SessionOptions{2, true, true});
  nhwc.run({{"x", random_tensor({2, 3, 29, 27}, 1)}});
  const auto counts = op_counts(nhwc);
  EXPECT_EQ(counts.count("ConvNhwc"), 0u);
  EXPECT_EQ(counts.count("Transpose"), 0u);
  EXPECT_GT(counts.at("Conv"), 0);
}

TEST(ChannelsLast, AGemmCheckIsRefusedNotSkipped) {
  Session nhwc(small_resnet(), SessionOptions{1, true, true});
  const std::map<std::string, Tensor> inputs{{"x", random_tensor({2, 3, 29, 27}, 1)}};
  nhwc.run(inputs);
  struct Checking : StepObserver {
    primitives::GemmCheck check;
    const primitives::GemmCheck* gemm_check(const StepInfo&) override { return &check; }
  } observer;
  nhwc.add_observer(&observer);
  EXPECT_THROW(nhwc.run(inputs), Error);
}

}  // namespace
}  // namespace tessera
