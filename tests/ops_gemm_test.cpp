// Gemm and MatMul kernels against plain triple loops: transposes, alpha/beta, every C broadcast
// form, constant (pre-packed) and run-time B, fused relu, batched and 1-D MatMul.
#include <gtest/gtest.h>

#include "ops/fused_activation.h"
#include "ops_kernel_harness.h"
#include "test_support.h"

namespace tessera {
namespace {

using testing::random_tensor;
using testing::relative_l2_error;
using testing::run_node;

void check_gemm(int64_t M, int64_t N, int64_t K, bool ta, bool tb, float alpha, float beta,
                Shape c_shape, bool constant_b, bool relu, uint32_t seed) {
  Tensor a = random_tensor(ta ? Shape{K, M} : Shape{M, K}, seed);
  Tensor b = random_tensor(tb ? Shape{N, K} : Shape{K, N}, seed + 1);
  Tensor c = c_shape.empty() ? Tensor() : random_tensor(c_shape, seed + 2);
  Tensor expected(DType::f32, {M, N});
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k)
        acc += double(a.data<float>()[ta ? k * M + m : m * K + k]) *
               double(b.data<float>()[tb ? n * K + k : k * N + n]);
      acc *= alpha;
      if (c.defined()) {
        // Unidirectional broadcast of C to [M, N].
        Shape cs = c_shape;
        while (cs.size() < 2) cs.insert(cs.begin(), 1);
        int64_t cm = cs[0] == 1 ? 0 : m, cn = cs[1] == 1 ? 0 : n;
        acc += beta * c.data<float>()[cm * cs[1] + cn];
      }
      if (relu && acc < 0) acc = 0;
      expected.data<float>()[m * N + n] = float(acc);
    }
  Node node;
  node.op_type = "Gemm";
  node.attributes.set_int("transA", ta);
  node.attributes.set_int("transB", tb);
  node.attributes.set_float("alpha", alpha);
  node.attributes.set_float("beta", beta);
  if (relu) node.attributes.set_string(kFusedActivationAttribute, "Relu");
  auto result = run_node(node, 13, {a, b, c}, 1, {false, constant_b, true});
  ASSERT_EQ(result.outputs[0].shape(), (Shape{M, N}));
  EXPECT_LT(relative_l2_error(result.outputs[0], expected), 1e-5)
      << M << "x" << N << "x" << K << " ta " << ta << " tb " << tb << " C " << shape_to_string(c_shape);
}

TEST(GemmOp, AllTransposesAndBiasForms) {
  uint32_t seed = 1;
  for (bool constant_b : {true, false})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (Shape c : {Shape{}, Shape{1}, Shape{13}, Shape{1, 13}, Shape{7, 1}, Shape{7, 13}})
          check_gemm(7, 13, 9, ta, tb, 0.5f, 2.f, c, constant_b, false, seed++);
}

TEST(GemmOp, UnitScalesFusedReluAndLargerSizes) {
  check_gemm(33, 70, 65, false, true, 1.f, 1.f, {70}, true, true, 50);
  check_gemm(64, 129, 31, false, false, 1.f, 1.f, {64, 129}, false, true, 51);
  check_gemm(1, 1000, 256, false, true, 1.f, 1.f, {1000}, true, false, 52);
}

TEST(GemmOp, RejectsMismatchedInnerDims) {
  Node node;
  node.op_type = "Gemm";
  EXPECT_THROW(run_node(node, 13, {random_tensor({3, 4}, 1), random_tensor({5, 6}, 2)}), Error);
}

Tensor reference_matmul(const Tensor& a, const Tensor& b, Shape out_shape) {
  // Expand to >= 2-D, broadcast batch dims, multiply.
  Shape as = a.shape(), bs = b.shape();
  if (as.size() == 1) as.insert(as.begin(), 1);
  if (bs.size() == 1) bs.push_back(1);
  const int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
  size_t batch_rank = std::max(as.size(), bs.size()) - 2;
  Shape ab(as.begin(), as.end() - 2), bb(bs.begin(), bs.end() - 2);
  while (ab.size() < batch_rank) ab.insert(ab.begin(), 1);
  while (bb.size() < batch_rank) bb.insert(bb.begin(), 1);
  Shape batch(batch_rank);
  for (size_t i = 0; i < batch_rank; ++i) batch[i] = std::max(ab[i], bb[i]);
  Tensor y(DType::f32, out_shape);
  int64_t batches = shape_numel(batch);
  for (int64_t t = 0; t < batches; ++t) {
    int64_t rem = t, ao = 0, bo = 0, astride = 1, bstride = 1;
    for (size_t d = batch_rank; d-- > 0;) {
      int64_t idx = rem % batch[d];
      rem /= batch[d];
      ao += (ab[d] == 1 ? 0 : idx) * astride;
      bo += (bb[d] == 1 ? 0 : idx) * bstride;
      astride *= ab[d];
      bstride *= bb[d];
    }
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k)
          acc += double(a.data<float>()[ao * M * K + m * K + k]) *
                 double(b.data<float>()[bo * K * N + k * N + n]);
        y.data<float>()[(t * M + m) * N + n] = float(acc);
      }
  }
  return y;
}

TEST(MatMulOp, BatchedBroadcastAndVectors) {
  struct Case {
    Shape a, b, out;
    bool constant_b;
  };
  std::vector<Case> cases = {
      {{5, 7}, {7, 3}, {5, 3}, true},
      {{2, 3, 5, 7}, {7, 9}, {2, 3, 5, 9}, true},
      {{2, 3, 5, 7}, {7, 9}, {2, 3, 5, 9}, false},
      {{2, 1, 4, 6}, {3, 6, 5}, {2, 3, 4, 5}, false},
      {{4, 6}, {3, 6, 5}, {3, 4, 5}, true},
      {{6}, {3, 6, 5}, {3, 5}, false},
      {{2, 4, 6}, {6}, {2, 4}, true},
      {{6}, {6}, {}, false},
      {{1, 37, 64}, {1, 64, 100}, {1, 37, 100}, true},
  };
  uint32_t seed = 10;
  for (const Case& c : cases) {
    Tensor a = random_tensor(c.a, seed++), b = random_tensor(c.b, seed++);
    Node node;
    node.op_type = "MatMul";
    auto result = run_node(node, 13, {a, b}, 1, {false, c.constant_b});
    ASSERT_EQ(result.outputs[0].shape(), c.out) << shape_to_string(c.a) << " x " << shape_to_string(c.b);
    EXPECT_LT(relative_l2_error(result.outputs[0], reference_matmul(a, b, c.out)), 1e-5)
        << shape_to_string(c.a) << " x " << shape_to_string(c.b);
  }
}

TEST(MatMulOp, FusedRelu) {
  Tensor a = random_tensor({3, 8, 16}, 1), b = random_tensor({16, 12}, 2);
  Node node;
  node.op_type = "MatMul";
  node.attributes.set_string(kFusedActivationAttribute, "Relu");
  auto result = run_node(node, 13, {a, b});
  Tensor expected = reference_matmul(a, b, {3, 8, 12});
  for (int64_t i = 0; i < expected.numel(); ++i)
    expected.data<float>()[i] = std::max(0.f, expected.data<float>()[i]);
  EXPECT_LT(relative_l2_error(result.outputs[0], expected), 1e-5);
}

}  // namespace
}  // namespace tessera
