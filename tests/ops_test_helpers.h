// Helpers for the elementwise/shape/reduce/resize operator tests: run an op from tensors and
// attributes (on ops_kernel_harness.h), build small tensors, and index like numpy broadcasting.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "ops/operator.h"
#include "ops_kernel_harness.h"
#include "tessera/tensor.h"

namespace tessera::testing {

// Runs op_type at `opset` on the inputs (nullopt = absent optional input). Every input is also a
// plan-time constant, as the executor provides after folding shape subgraphs.
inline std::vector<Tensor> run_op(const std::string& op_type, int64_t opset,
                                  const std::vector<std::optional<Tensor>>& inputs,
                                  const Attributes& attributes = {}, int output_count = 1) {
  Node node;
  node.name = "test_" + op_type;
  node.op_type = op_type;
  node.attributes = attributes;
  std::vector<Tensor> tensors;
  for (const auto& in : inputs) tensors.push_back(in ? *in : Tensor());
  return run_node(node, opset, tensors, output_count, std::vector<bool>(inputs.size(), true)).outputs;
}

inline Tensor floats(Shape shape, std::vector<float> values) {
  Tensor t(DType::f32, std::move(shape));
  EXPECT_EQ(size_t(t.numel()), values.size());
  std::copy(values.begin(), values.end(), t.data<float>());
  return t;
}

inline Tensor ints(Shape shape, std::vector<int64_t> values) {
  return Tensor::from_int64(values, std::move(shape));
}

inline Tensor ints1d(std::vector<int64_t> values) {
  int64_t n = int64_t(values.size());
  return Tensor::from_int64(values, {n});
}

// Flat index into a tensor of `shape` for output position `flat` of `out` (numpy broadcast).
inline int64_t broadcast_index(const Shape& shape, const Shape& out, int64_t flat) {
  int64_t index = 0, stride = 1;
  for (size_t k = 0; k < out.size(); ++k) {
    size_t d = out.size() - 1 - k;
    int64_t coord = flat % out[d];
    flat /= out[d];
    if (k < shape.size()) {
      size_t sd = shape.size() - 1 - k;
      if (shape[sd] != 1) index += coord * stride;
      stride *= shape[sd];
    }
  }
  return index;
}

inline std::vector<double> values_of(const Tensor& t) {
  std::vector<double> v(size_t(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = t.value_as_double(int64_t(i));
  return v;
}

inline void expect_values(const Tensor& actual, const std::vector<double>& expected,
                          double tolerance = 1e-5, const std::string& what = "") {
  ASSERT_EQ(size_t(actual.numel()), expected.size()) << what;
  for (size_t i = 0; i < expected.size(); ++i) {
    double a = actual.value_as_double(int64_t(i));
    double tol = tolerance * std::max(1.0, std::abs(expected[i]));
    if (std::isnan(expected[i])) {
      EXPECT_TRUE(std::isnan(a)) << what << " at " << i;
    } else {
      ASSERT_NEAR(a, expected[i], tol) << what << " at " << i;
    }
  }
}

}  // namespace tessera::testing
