// Graph passes, each alone and together: the rewritten graph has the expected structure and
// computes the same outputs as the unoptimized graph (whose operators are tested separately
// against plain loops).
#include <gtest/gtest.h>

#include "graph/passes/passes.h"
#include "runtime/specialize.h"
#include "tessera/session.h"
#include "test_support.h"

using namespace tessera;
using tessera::testing::GraphBuilder;

namespace {

Tensor positive_tensor(Shape shape, uint32_t seed) { return tessera::testing::random_tensor(std::move(shape), seed, 0.5f, 1.5f); }

// conv -> bn -> relu, conv2 -> bn2, add, relu, identity, dropout, clip(0, 6) into output.
Graph residual_block() {
  GraphBuilder b;
  int x = b.input("x", {1, 8, 9, 9});
  Attributes conv_attrs;
  conv_attrs.set_ints("pads", {1, 1, 1, 1});
  auto bn = [&](int in, uint32_t seed) {
    return b.node("BatchNormalization",
                  {in, b.constant("s", positive_tensor({8}, seed)), b.constant("b", tessera::testing::random_tensor({8}, seed + 1)),
                   b.constant("m", tessera::testing::random_tensor({8}, seed + 2)), b.constant("v", positive_tensor({8}, seed + 3))});
  };
  int c1 = b.node("Conv", {x, b.constant("w1", tessera::testing::random_tensor({8, 8, 3, 3}, 1, -0.3f, 0.3f))}, conv_attrs);
  int r1 = b.node("Relu", {bn(c1, 10)});
  int c2 = b.node("Conv", {r1, b.constant("w2", tessera::testing::random_tensor({8, 8, 3, 3}, 2, -0.3f, 0.3f)),
                           b.constant("b2", tessera::testing::random_tensor({8}, 3))}, conv_attrs);
  int sum = b.node("Add", {bn(c2, 20), x});
  int r2 = b.node("Relu", {sum});
  int id = b.node("Identity", {r2});
  int dr = b.node("Dropout", {id});
  Attributes clip;
  clip.set_float("min", 0.f);
  clip.set_float("max", 6.f);
  int y = b.node("Clip", {dr}, clip);
  b.g.outputs.push_back(y);
  b.g.opset = 9;  // Clip with attributes, Dropout without training input
  return b.g;
}

}  // namespace

TEST(GraphPasses, EachPassRewritesTheResidualBlock) {
  Graph g = residual_block();
  ThreadPool pool(1);
  specialize_graph(g, {{"x", {1, 8, 9, 9}}}, pool);
  size_t before = g.nodes.size();
  EXPECT_EQ(remove_identity_nodes(g), 2);  // Identity and Dropout
  EXPECT_EQ(fold_batchnorm(g), 2);
  EXPECT_EQ(fuse_residual_add(g), 1);
  EXPECT_EQ(fuse_activation(g), 2);  // relu into conv1, relu into conv2 (after the residual)
  g.remove_dead_nodes();
  g.topological_sort();
  // Left: conv1(+bn,relu), conv2(+bn,+residual,relu), clip (its producer already has an activation).
  EXPECT_EQ(g.nodes.size(), before - 7);
  for (const Node& n : g.nodes) EXPECT_NE(n.op_type, "BatchNormalization");
}

TEST(GraphPasses, OptimizedGraphComputesTheSameOutput) {
  Tensor x = tessera::testing::random_tensor({1, 8, 9, 9}, 99);
  Session plain(residual_block(), SessionOptions{1, /*optimize=*/false});
  Session optimized(residual_block(), SessionOptions{2, /*optimize=*/true});
  Tensor expected = plain.run({{"x", x}}).begin()->second;
  Tensor actual = optimized.run({{"x", x}}).begin()->second;
  EXPECT_LT(tessera::testing::relative_l2_error(actual, expected), 1e-5);
  EXPECT_LT(optimized.plan_stats().steps, plain.plan_stats().steps);
}

TEST(GraphPasses, IdentityProducingAGraphOutputIsKept) {
  GraphBuilder b;
  int x = b.input("x", {4});
  int r = b.node("Relu", {x});
  int y = b.node("Identity", {r});
  b.g.outputs.push_back(y);
  EXPECT_EQ(remove_identity_nodes(b.g), 0);
  EXPECT_EQ(b.g.nodes.size(), 2u);
}

TEST(GraphPasses, BatchNormIsNotFoldedWhenTheConvOutputHasOtherReaders) {
  GraphBuilder b;
  int x = b.input("x", {1, 2, 4, 4});
  int c = b.node("Conv", {x, b.constant("w", tessera::testing::random_tensor({2, 2, 1, 1}, 1))});
  int n = b.node("BatchNormalization", {c, b.constant("s", positive_tensor({2}, 2)), b.constant("b", tessera::testing::random_tensor({2}, 3)),
                                        b.constant("m", tessera::testing::random_tensor({2}, 4)), b.constant("v", positive_tensor({2}, 5))});
  int y = b.node("Add", {n, c});
  b.g.outputs.push_back(y);
  EXPECT_EQ(fold_batchnorm(b.g), 0);
}

TEST(GraphPasses, GemmBatchNormFoldMatches) {
  auto build = [] {
    GraphBuilder b;
    int x = b.input("x", {3, 5});
    Attributes gemm;
    gemm.set_int("transB", 1);
    gemm.set_float("beta", 0.5f);
    int y0 = b.node("Gemm", {x, b.constant("w", tessera::testing::random_tensor({6, 5}, 1)), b.constant("c", tessera::testing::random_tensor({6}, 2))}, gemm);
    int y = b.node("BatchNormalization", {y0, b.constant("s", positive_tensor({6}, 3)), b.constant("b", tessera::testing::random_tensor({6}, 4)),
                                          b.constant("m", tessera::testing::random_tensor({6}, 5)), b.constant("v", positive_tensor({6}, 6))});
    b.g.outputs.push_back(y);
    return b.g;
  };
  Graph folded = build();
  EXPECT_EQ(fold_batchnorm(folded), 1);
  Tensor x = tessera::testing::random_tensor({3, 5}, 7);
  Session plain(build(), SessionOptions{1, false});
  Session optimized(build(), SessionOptions{1, true});
  EXPECT_LT(tessera::testing::relative_l2_error(optimized.run({{"x", x}}).begin()->second, plain.run({{"x", x}}).begin()->second), 1e-5);
}
