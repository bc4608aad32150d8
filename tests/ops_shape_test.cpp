// Shape and data-movement operators at the kernel level: Reshape/Transpose/Slice/Gather/...
// against index arithmetic written out in the test, including negative axes and odd sizes.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "ops_test_helpers.h"
#include "test_support.h"

namespace tessera::testing {
namespace {

Attributes with_ints(const std::string& name, std::vector<int64_t> v) {
  Attributes a;
  a.set_ints(name, std::move(v));
  return a;
}
Attributes with_int(const std::string& name, int64_t v) {
  Attributes a;
  a.set_int(name, v);
  return a;
}
Tensor iota(Shape shape) {
  Tensor t(DType::f32, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = float(i);
  return t;
}

TEST(OpsShape, ShapeSizeReshapeFlatten) {
  Tensor x = iota({2, 3, 4});
  expect_values(run_op("Shape", 13, {x})[0], {2, 3, 4});
  Attributes range;
  range.set_int("start", 1);
  range.set_int("end", -1);
  expect_values(run_op("Shape", 15, {x}, range)[0], {3});
  expect_values(run_op("Size", 13, {x})[0], {24});
  EXPECT_EQ(run_op("Reshape", 14, {x, ints1d({0, -1})})[0].shape(), (Shape{2, 12}));
  EXPECT_EQ(run_op("Reshape", 14, {x, ints1d({-1, 2, 2})})[0].shape(), (Shape{6, 2, 2}));
  EXPECT_EQ(run_op("Reshape", 14, {Tensor(DType::f32, {0, 3}), ints1d({3, 0})}, with_int("allowzero", 1))[0].shape(),
            (Shape{3, 0}));
  EXPECT_THROW(run_op("Reshape", 14, {x, ints1d({5, -1})}), Error);
  expect_values(run_op("Reshape", 14, {x, ints1d({4, 6})})[0], values_of(x));
  EXPECT_EQ(run_op("Flatten", 13, {x}, with_int("axis", -1))[0].shape(), (Shape{6, 4}));
  EXPECT_EQ(run_op("Flatten", 13, {x}, with_int("axis", 0))[0].shape(), (Shape{1, 24}));
}

TEST(OpsShape, SqueezeUnsqueezeAttributeAndInputForms) {
  Tensor x = iota({1, 3, 1, 2});
  EXPECT_EQ(run_op("Squeeze", 11, {x})[0].shape(), (Shape{3, 2}));
  EXPECT_EQ(run_op("Squeeze", 11, {x}, with_ints("axes", {-2}))[0].shape(), (Shape{1, 3, 2}));
  EXPECT_EQ(run_op("Squeeze", 13, {x, ints1d({0})})[0].shape(), (Shape{3, 1, 2}));
  EXPECT_THROW(run_op("Squeeze", 13, {x, ints1d({1})}), Error);
  EXPECT_EQ(run_op("Unsqueeze", 11, {x}, with_ints("axes", {0, -1}))[0].shape(), (Shape{1, 1, 3, 1, 2, 1}));
  EXPECT_EQ(run_op("Unsqueeze", 13, {iota({3, 4}), ints1d({2, 0})})[0].shape(), (Shape{1, 3, 1, 4}));
}

TEST(OpsShape, TransposeAllPermutationsOfOddShape) {
  Shape shape{3, 5, 2, 7};
  Tensor x = iota(shape);
  std::vector<int64_t> perm{0, 1, 2, 3};
  do {
    Tensor y = run_op("Transpose", 13, {x}, with_ints("perm", perm))[0];
    Shape in_strides = contiguous_strides(shape);
    Shape out = y.shape();
    std::vector<double> expected;
    for (int64_t i = 0; i < y.numel(); ++i) {
      int64_t rest = i, offset = 0;
      for (int d = 3; d >= 0; --d) {
        offset += (rest % out[size_t(d)]) * in_strides[size_t(perm[size_t(d)])];
        rest /= out[size_t(d)];
      }
      expected.push_back(double(offset));
    }
    expect_values(y, expected, 0, "perm " + shape_to_string(perm));
  } while (std::next_permutation(perm.begin(), perm.end()));
  Tensor big = iota({70, 130});
  Tensor t = run_op("Transpose", 13, {big})[0];
  EXPECT_EQ(t.shape(), (Shape{130, 70}));
  EXPECT_EQ(t.data<float>()[5 * 70 + 3], float(3 * 130 + 5));
}

TEST(OpsShape, ConcatAndSplit) {
  Tensor a = iota({2, 2, 3}), b = iota({2, 1, 3});
  Tensor y = run_op("Concat", 13, {a, b}, with_int("axis", -2))[0];
  EXPECT_EQ(y.shape(), (Shape{2, 3, 3}));
  expect_values(y, {0, 1, 2, 3, 4, 5, 0, 1, 2, 6, 7, 8, 9, 10, 11, 3, 4, 5});
  Tensor x = iota({2, 6});
  auto parts = run_op("Split", 13, {x, ints1d({1, 2, 3})}, with_int("axis", 1), 3);
  expect_values(parts[0], {0, 6});
  expect_values(parts[1], {1, 2, 7, 8});
  expect_values(parts[2], {3, 4, 5, 9, 10, 11});
  auto halves = run_op("Split", 11, {x}, with_int("axis", -1), 2);
  expect_values(halves[1], {3, 4, 5, 9, 10, 11});
  Attributes uneven = with_int("num_outputs", 4);
  uneven.set_int("axis", 1);
  auto chunks = run_op("Split", 18, {iota({1, 7})}, uneven, 4);
  EXPECT_EQ(chunks[3].shape(), (Shape{1, 1}));
  expect_values(chunks[2], {4, 5});
}

TEST(OpsShape, SliceStepsClampingAndNegativeAxes) {
  Tensor x = iota({4, 5});
  expect_values(run_op("Slice", 13, {x, ints1d({1, 0}), ints1d({3, 5}), std::nullopt, ints1d({1, 2})})[0],
                {5, 7, 9, 10, 12, 14});
  expect_values(run_op("Slice", 13, {x, ints1d({-1}), ints1d({INT64_MIN}), ints1d({-1}), ints1d({-2})})[0],
                {4, 2, 0, 9, 7, 5, 14, 12, 10, 19, 17, 15});
  expect_values(run_op("Slice", 13, {x, ints1d({2}), ints1d({1000}), ints1d({0})})[0],
                {10, 11, 12, 13, 14, 15, 16, 17, 18, 19});
  EXPECT_EQ(run_op("Slice", 13, {x, ints1d({10}), ints1d({20}), ints1d({1})})[0].shape(), (Shape{4, 0}));
  Attributes old;
  old.set_ints("starts", {1});
  old.set_ints("ends", {-1});
  old.set_ints("axes", {1});
  expect_values(run_op("Slice", 1, {iota({1, 5})}, old)[0], {1, 2, 3});
}

TEST(OpsShape, GatherAndGatherElements) {
  Tensor x = iota({3, 4});
  Tensor rows = run_op("Gather", 13, {x, ints({2}, {-1, 0})})[0];
  expect_values(rows, {8, 9, 10, 11, 0, 1, 2, 3});
  Tensor cols = run_op("Gather", 13, {x, ints({2, 1}, {3, 1})}, with_int("axis", -1))[0];
  EXPECT_EQ(cols.shape(), (Shape{3, 2, 1}));
  expect_values(cols, {3, 1, 7, 5, 11, 9});
  Tensor scalar = run_op("Gather", 13, {x, ints({}, {1})}, with_int("axis", 1))[0];
  EXPECT_EQ(scalar.shape(), (Shape{3}));
  EXPECT_THROW(run_op("Gather", 13, {x, ints({1}, {3})}), Error);
  Tensor ge = run_op("GatherElements", 13, {x, ints({2, 2}, {2, 0, -1, 1})}, with_int("axis", 0))[0];
  expect_values(ge, {8, 1, 8, 5});
}

TEST(OpsShape, ExpandTileConstantsRange) {
  Tensor x = floats({3, 1}, {1, 2, 3});
  Tensor e = run_op("Expand", 13, {x, ints1d({2, 1, 2})})[0];
  EXPECT_EQ(e.shape(), (Shape{2, 3, 2}));
  expect_values(e, {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3});
  Tensor t = run_op("Tile", 13, {floats({2, 2}, {1, 2, 3, 4}), ints1d({2, 3})})[0];
  EXPECT_EQ(t.shape(), (Shape{4, 6}));
  expect_values(t, {1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4, 1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4});
  Attributes value;
  Attribute tensor_attr;
  tensor_attr.kind = Attribute::Kind::tensor;
  tensor_attr.t = ints({1}, {7});
  value.set("value", tensor_attr);
  Tensor c = run_op("ConstantOfShape", 13, {ints1d({2, 3})}, value)[0];
  EXPECT_EQ(c.dtype(), DType::i64);
  expect_values(c, std::vector<double>(6, 7));
  EXPECT_EQ(run_op("ConstantOfShape", 13, {ints1d({})})[0].shape(), Shape{});
  expect_values(run_op("Constant", 13, {}, with_ints("value_ints", {4, 5}))[0], {4, 5});
  expect_values(run_op("Constant", 13, {}, value)[0], {7});
  expect_values(run_op("Range", 13, {ints({}, {10}), ints({}, {4}), ints({}, {-3})})[0], {10, 7});
  expect_values(run_op("Range", 13, {floats({}, {1}), floats({}, {2}), floats({}, {0.3f})})[0],
                {1, 1.3, 1.6, 1.9});
}

TEST(OpsShape, TriluKeepsBandAboveOrBelowK) {
  Tensor x = iota({2, 3, 4});
  Tensor upper = run_op("Trilu", 14, {x, ints({}, {1})})[0];
  Tensor lower = run_op("Trilu", 14, {x, ints({}, {-1})}, with_int("upper", 0))[0];
  for (int64_t m = 0; m < 2; ++m)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 4; ++j) {
        int64_t f = (m * 3 + i) * 4 + j;
        EXPECT_EQ(upper.data<float>()[f], j - i >= 1 ? float(f) : 0.f);
        EXPECT_EQ(lower.data<float>()[f], j - i <= -1 ? float(f) : 0.f);
      }
}

}  // namespace
}  // namespace tessera::testing
