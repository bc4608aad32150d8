// Reductions and ArgMax/ArgMin at the kernel level against a plain nested-loop reference over
// every layout the planner distinguishes (row, column, permuted), with keepdims and negative axes.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ops_test_helpers.h"
#include "test_support.h"

namespace tessera::testing {
namespace {

// Reference: for each output position, gather the reduced elements and fold them in double.
std::vector<double> reference_reduce(const std::string& op, const Tensor& x, std::vector<bool> reduced) {
  const Shape& s = x.shape();
  size_t rank = s.size();
  Shape strides = contiguous_strides(s);
  std::vector<std::vector<double>> groups;
  std::map<int64_t, size_t> group_of;
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t rest = i, key = 0;
    for (size_t d = 0; d < rank; ++d) {
      int64_t coord = (i / strides[d]) % s[d];
      if (!reduced[d]) key = key * s[d] + coord;
    }
    (void)rest;
    auto it = group_of.find(key);
    if (it == group_of.end()) {
      it = group_of.emplace(key, groups.size()).first;
      groups.emplace_back();
    }
    groups[it->second].push_back(x.data<float>()[i]);
  }
  std::vector<double> out(groups.size());
  for (auto& [key, g] : group_of) {
    const auto& v = groups[g];
    double acc = 0;
    if (op == "ReduceSum" || op == "ReduceMean") {
      for (double e : v) acc += e;
      if (op == "ReduceMean") acc /= double(v.size());
    } else if (op == "ReduceMax") {
      acc = -INFINITY;
      for (double e : v) acc = std::max(acc, e);
    } else if (op == "ReduceMin") {
      acc = INFINITY;
      for (double e : v) acc = std::min(acc, e);
    } else if (op == "ReduceProd") {
      acc = 1;
      for (double e : v) acc *= e;
    } else if (op == "ReduceL1") {
      for (double e : v) acc += std::fabs(e);
    } else if (op == "ReduceL2" || op == "ReduceSumSquare") {
      for (double e : v) acc += e * e;
      if (op == "ReduceL2") acc = std::sqrt(acc);
    } else if (op == "ReduceLogSumExp") {
      for (double e : v) acc += std::exp(e);
      acc = std::log(acc);
    }
    out[size_t(key)] = acc;
  }
  return out;
}

TEST(OpsReduce, AllKindsAllAxisLayouts) {
  Tensor x = random_tensor({3, 4, 5, 6}, 5, 0.5f, 1.5f);
  const std::vector<std::vector<int64_t>> axis_sets = {{}, {0}, {1}, {3}, {-1}, {1, 2}, {0, 2},
                                                       {0, 3}, {1, 3}, {0, 1, 2, 3}, {-3, -2}};
  for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
                         "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSumExp"}) {
    for (const auto& axes : axis_sets) {
      for (int keep = 0; keep < 2; ++keep) {
        Attributes a;
        a.set_int("keepdims", keep);
        if (!axes.empty()) a.set_ints("axes", axes);
        Tensor y = run_op(op, 13, {x}, a)[0];  // ReduceSum-13 takes axes as an input...
        if (std::string(op) == "ReduceSum") {
          Attributes k;
          k.set_int("keepdims", keep);
          y = axes.empty() ? run_op(op, 13, {x}, k)[0] : run_op(op, 13, {x, ints1d(axes)}, k)[0];
        }
        std::vector<bool> reduced(4, axes.empty());
        for (int64_t v : axes) reduced[size_t(v < 0 ? v + 4 : v)] = true;
        Shape expected_shape;
        for (size_t d = 0; d < 4; ++d)
          if (!reduced[d]) expected_shape.push_back(x.shape()[d]);
          else if (keep) expected_shape.push_back(1);
        std::string what = std::string(op) + " axes " + shape_to_string(axes) + " keep " + std::to_string(keep);
        ASSERT_EQ(y.shape(), expected_shape) << what;
        expect_values(y, reference_reduce(op, x, reduced), 1e-4, what);
      }
    }
  }
}

TEST(OpsReduce, AxesInputsAndNoop) {
  Tensor x = random_tensor({2, 3}, 7);
  Attributes noop;
  noop.set_int("noop_with_empty_axes", 1);
  expect_values(run_op("ReduceSum", 13, {x, ints1d({})}, noop)[0], values_of(x));
  Tensor mean18 = run_op("ReduceMean", 18, {x, ints1d({-1})})[0];
  EXPECT_EQ(mean18.shape(), (Shape{2, 1}));
  const float* v = x.data<float>();
  expect_values(mean18, {(v[0] + v[1] + v[2]) / 3.0, (v[3] + v[4] + v[5]) / 3.0});
  Tensor i = run_op("ReduceSum", 13, {ints({2, 2}, {1, 2, 3, 4}), ints1d({0})})[0];
  EXPECT_EQ(i.dtype(), DType::i64);
  expect_values(i, {4, 6});
  expect_values(run_op("ReduceMax", 13, {ints({3}, {-5, 9, 2})})[0], {9});
}

TEST(OpsReduce, ArgMaxArgMinTiesAndKeepdims) {
  Tensor x = floats({2, 3}, {1, 5, 5, 7, 0, 0});
  Tensor a = run_op("ArgMax", 13, {x}, [] { Attributes a; a.set_int("axis", 1); return a; }())[0];
  EXPECT_EQ(a.shape(), (Shape{2, 1}));
  expect_values(a, {1, 0});
  Attributes last;
  last.set_int("axis", -1);
  last.set_int("keepdims", 0);
  last.set_int("select_last_index", 1);
  Tensor b = run_op("ArgMax", 13, {x}, last)[0];
  EXPECT_EQ(b.shape(), (Shape{2}));
  expect_values(b, {2, 0});
  expect_values(run_op("ArgMin", 13, {x}, last)[0], {0, 2});
  expect_values(run_op("ArgMin", 13, {x})[0], {0, 1, 1});
}

}  // namespace
}  // namespace tessera::testing
