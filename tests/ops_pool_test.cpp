// Pooling kernels against direct loops: MaxPool/AveragePool/LpPool with pads, strides,
// dilations, ceil_mode, count_include_pad and Indices, plus the global pools.
#include <gtest/gtest.h>

#include <cmath>

#include "ops_kernel_harness.h"
#include "test_support.h"

namespace tessera {
namespace {

using testing::random_tensor;
using testing::run_node;

enum class Kind { max, average, lp };

// 2-D reference; pads = {top, left, bottom, right}.
Tensor reference_pool(Kind kind, const Tensor& x, std::vector<int64_t> k, std::vector<int64_t> s,
                      std::vector<int64_t> d, std::vector<int64_t> pads, bool ceil_mode,
                      bool include_pad, Tensor* indices) {
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  int64_t out[2];
  const int64_t in[2] = {H, W};
  for (int i = 0; i < 2; ++i) {
    int64_t span = in[i] + pads[size_t(i)] + pads[size_t(i) + 2] - ((k[size_t(i)] - 1) * d[size_t(i)] + 1);
    out[i] = ceil_mode ? (span + s[size_t(i)] - 1) / s[size_t(i)] + 1 : span / s[size_t(i)] + 1;
    if (ceil_mode && (out[i] - 1) * s[size_t(i)] >= in[i] + pads[size_t(i)]) --out[i];
  }
  Tensor y(DType::f32, {N, C, out[0], out[1]});
  if (indices) *indices = Tensor(DType::i64, {N, C, out[0], out[1]});
  int64_t o = 0;
  for (int64_t p = 0; p < N * C; ++p)
    for (int64_t oh = 0; oh < out[0]; ++oh)
      for (int64_t ow = 0; ow < out[1]; ++ow, ++o) {
        double acc = kind == Kind::max ? -INFINITY : 0.0;
        int64_t count = 0, padded = 0, best = -1;
        for (int64_t kh = 0; kh < k[0]; ++kh)
          for (int64_t kw = 0; kw < k[1]; ++kw) {
            int64_t ih = oh * s[0] + kh * d[0] - pads[0], iw = ow * s[1] + kw * d[1] - pads[1];
            if (ih >= -pads[0] && ih < H + pads[2] && iw >= -pads[1] && iw < W + pads[3]) ++padded;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
            double v = x.data<float>()[(p * H + ih) * W + iw];
            ++count;
            if (kind == Kind::max) {
              if (v > acc) {
                acc = v;
                best = p * H * W + ih * W + iw;
              }
            } else if (kind == Kind::average) {
              acc += v;
            } else {
              acc += v * v;
            }
          }
        if (kind == Kind::average) acc /= double(include_pad ? padded : count);
        if (kind == Kind::lp) acc = std::sqrt(acc);
        y.data<float>()[o] = float(acc);
        if (indices) indices->data<int64_t>()[o] = best;
      }
  return y;
}

void check_pool(Kind kind, Shape xs, std::vector<int64_t> k, std::vector<int64_t> s,
                std::vector<int64_t> d, std::vector<int64_t> pads, bool ceil_mode, bool include_pad,
                uint32_t seed) {
  Tensor x = random_tensor(xs, seed);
  Node node;
  node.op_type = kind == Kind::max ? "MaxPool" : kind == Kind::average ? "AveragePool" : "LpPool";
  node.attributes.set_ints("kernel_shape", k);
  node.attributes.set_ints("strides", s);
  node.attributes.set_ints("dilations", d);
  node.attributes.set_ints("pads", pads);
  node.attributes.set_int("ceil_mode", ceil_mode);
  node.attributes.set_int("count_include_pad", include_pad);
  Tensor indices;
  Tensor expected = reference_pool(kind, x, k, s, d, pads, ceil_mode, include_pad,
                                   kind == Kind::max ? &indices : nullptr);
  auto result = run_node(node, 18, {x}, kind == Kind::max ? 2 : 1);
  ASSERT_EQ(result.outputs[0].shape(), expected.shape());
  EXPECT_LT(testing::relative_l2_error(result.outputs[0], expected), 1e-6) << node.op_type;
  if (kind == Kind::max)
    for (int64_t i = 0; i < indices.numel(); ++i)
      ASSERT_EQ(result.outputs[1].data<int64_t>()[i], indices.data<int64_t>()[i]) << i;
}

TEST(PoolOp, WindowPoolsAgainstReference) {
  uint32_t seed = 1;
  for (Kind kind : {Kind::max, Kind::average, Kind::lp})
    for (bool ceil_mode : {false, true}) {
      check_pool(kind, {2, 3, 11, 9}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, ceil_mode, false, seed++);
      check_pool(kind, {1, 2, 10, 13}, {2, 3}, {3, 2}, {1, 2}, {0, 1, 1, 2}, ceil_mode, true, seed++);
      check_pool(kind, {1, 4, 7, 7}, {3, 2}, {1, 1}, {2, 1}, {2, 0, 0, 1}, ceil_mode, false, seed++);
    }
}

// MaxPool without Indices takes the row-max path (max_plane_2d): the same values as the direct
// loop, exactly, with the interior columns done as shifted maxima and the edges tap by tap;
// windows wider than the row (no interior), dilation, ceil_mode and asymmetric pads included.
TEST(PoolOp, MaxPoolWithoutIndicesIsExact) {
  struct Case {
    Shape x;
    std::vector<int64_t> k, s, d, pads;
    bool ceil_mode;
  };
  const Case cases[] = {{{1, 3, 112, 112}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, false},
                        {{2, 2, 9, 17}, {2, 2}, {2, 2}, {1, 1}, {0, 0, 0, 0}, true},
                        {{1, 2, 8, 21}, {3, 3}, {1, 3}, {1, 2}, {1, 2, 0, 1}, false},
                        {{1, 1, 5, 4}, {3, 5}, {1, 1}, {1, 1}, {1, 2, 1, 2}, false},
                        {{1, 2, 6, 33}, {2, 4}, {2, 1}, {1, 3}, {0, 3, 1, 0}, true}};
  uint32_t seed = 40;
  for (const Case& c : cases) {
    Tensor x = random_tensor(c.x, seed++);
    Node node;
    node.op_type = "MaxPool";
    node.attributes.set_ints("kernel_shape", c.k);
    node.attributes.set_ints("strides", c.s);
    node.attributes.set_ints("dilations", c.d);
    node.attributes.set_ints("pads", c.pads);
    node.attributes.set_int("ceil_mode", c.ceil_mode);
    Tensor expected = reference_pool(Kind::max, x, c.k, c.s, c.d, c.pads, c.ceil_mode, false, nullptr);
    auto result = run_node(node, 18, {x}, 1);
    ASSERT_EQ(result.outputs[0].shape(), expected.shape());
    for (int64_t i = 0; i < expected.numel(); ++i)
      ASSERT_EQ(result.outputs[0].data<float>()[i], expected.data<float>()[i]) << "element " << i;
  }
}

TEST(PoolOp, GlobalPools) {
  Tensor x = random_tensor({2, 5, 6, 7}, 3);
  for (const char* op : {"GlobalAveragePool", "GlobalMaxPool"}) {
    Node node;
    node.op_type = op;
    auto result = run_node(node, 13, {x});
    ASSERT_EQ(result.outputs[0].shape(), (Shape{2, 5, 1, 1}));
    for (int64_t p = 0; p < 10; ++p) {
      double sum = 0, best = -INFINITY;
      for (int64_t i = 0; i < 42; ++i) {
        sum += x.data<float>()[p * 42 + i];
        best = std::max(best, double(x.data<float>()[p * 42 + i]));
      }
      double want = std::string(op) == "GlobalMaxPool" ? best : sum / 42;
      EXPECT_NEAR(result.outputs[0].data<float>()[p], want, 1e-5) << op;
    }
  }
}

TEST(PoolOp, RejectsMissingKernelShape) {
  Node node;
  node.op_type = "MaxPool";
  EXPECT_THROW(run_node(node, 13, {random_tensor({1, 1, 4, 4}, 1)}), Error);
}

}  // namespace
}  // namespace tessera
