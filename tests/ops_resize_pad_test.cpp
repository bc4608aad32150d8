// Resize/Upsample and Pad at the kernel level: ONNX's documented examples for the resize modes,
// a direct (non-separable) bilinear reference, and Pad modes against index arithmetic.
#include <gtest/gtest.h>

#include <cmath>

#include "ops_test_helpers.h"
#include "test_support.h"

namespace tessera::testing {
namespace {

Tensor iota(Shape shape) {
  Tensor t(DType::f32, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = float(i + 1);
  return t;
}

Attributes resize_attrs(const std::string& mode, const std::string& coordinates = "") {
  Attributes a;
  a.set_string("mode", mode);
  if (!coordinates.empty()) a.set_string("coordinate_transformation_mode", coordinates);
  return a;
}

TEST(OpsResize, OnnxExamples) {
  Tensor x = iota({1, 1, 2, 2});
  Tensor y = run_op("Resize", 13, {x, std::nullopt, floats({4}, {1, 1, 2, 3})}, resize_attrs("nearest"))[0];
  EXPECT_EQ(y.shape(), (Shape{1, 1, 4, 6}));
  expect_values(y, {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4});
  Tensor lin = run_op("Resize", 13, {x, std::nullopt, floats({4}, {1, 1, 2, 2})}, resize_attrs("linear"))[0];
  expect_values(lin, {1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4});
  Tensor wide = iota({1, 1, 2, 4});
  Tensor down = run_op("Resize", 13, {wide, std::nullopt, floats({4}, {1, 1, 0.6f, 0.6f})}, resize_attrs("linear"))[0];
  EXPECT_EQ(down.shape(), (Shape{1, 1, 1, 2}));
  expect_values(down, {2.6666665, 4.3333331});
  Tensor corners = run_op("Resize", 13, {wide, std::nullopt, floats({4}, {1, 1, 0.6f, 0.6f})},
                          resize_attrs("linear", "align_corners"))[0];
  expect_values(corners, {1, 3.142857});
  Tensor nearest_down = run_op("Resize", 13, {wide, std::nullopt, floats({4}, {1, 1, 0.6f, 0.6f})},
                               resize_attrs("nearest"))[0];
  expect_values(nearest_down, {1, 3});
  Tensor sized = run_op("Resize", 13, {x, std::nullopt, std::nullopt, ints1d({1, 1, 7, 8})},
                        resize_attrs("nearest"))[0];
  EXPECT_EQ(sized.shape(), (Shape{1, 1, 7, 8}));
  Tensor upsample = run_op("Upsample", 9, {x, floats({4}, {1, 1, 2, 3})}, resize_attrs("nearest"))[0];
  expect_values(upsample, values_of(y));
}

// Direct bilinear with half_pixel coordinates clamped to the image, no separability.
TEST(OpsResize, LinearMatchesDirectBilinearOnOddSizes) {
  Tensor x = random_tensor({2, 3, 5, 7}, 3);
  Tensor y = run_op("Resize", 13, {x, std::nullopt, std::nullopt, ints1d({2, 3, 9, 4})}, resize_attrs("linear"))[0];
  std::vector<double> expected;
  for (int64_t p = 0; p < 6; ++p)
    for (int64_t i = 0; i < 9; ++i)
      for (int64_t j = 0; j < 4; ++j) {
        double sy = std::clamp((i + 0.5) / (9.0 / 5.0) - 0.5, 0.0, 4.0);
        double sx = std::clamp((j + 0.5) / (4.0 / 7.0) - 0.5, 0.0, 6.0);
        int64_t y0 = int64_t(sy), x0 = int64_t(sx);
        int64_t y1 = std::min<int64_t>(y0 + 1, 4), x1 = std::min<int64_t>(x0 + 1, 6);
        double fy = sy - double(y0), fx = sx - double(x0);
        auto at = [&](int64_t r, int64_t c) { return double(x.data<float>()[p * 35 + r * 7 + c]); };
        expected.push_back((1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) +
                           fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1)));
      }
  expect_values(y, expected, 1e-5);
}

TEST(OpsResize, CropAndResizeExtrapolates) {
  Tensor x = iota({1, 1, 4, 4});
  Attributes a = resize_attrs("linear", "tf_crop_and_resize");
  a.set_float("extrapolation_value", 10.f);
  Tensor roi = floats({8}, {0, 0, 0.4f, 0.6f, 1, 1, 1.2f, 1.7f});
  Tensor y = run_op("Resize", 13, {x, roi, std::nullopt, ints1d({1, 1, 3, 3})}, a)[0];
  // ONNX's resize_tf_crop_and_resize_extrapolation_value example.
  expect_values(y, {7.6000004, 10, 10, 12.400001, 10, 10, 10, 10, 10}, 1e-5);
}

TEST(OpsPad, ModesMatchIndexArithmetic) {
  Tensor x = iota({2, 3, 4});
  std::vector<int64_t> pads{0, 2, -1, 1, 3, 2};  // begin per axis, then end per axis
  for (const char* mode : {"constant", "reflect", "edge", "wrap"}) {
    Attributes a;
    a.set_string("mode", mode);
    Tensor y = run_op("Pad", 13, {x, ints1d(pads), floats({}, {-1.f})}, a)[0];
    Shape out{3, 8, 5};
    ASSERT_EQ(y.shape(), out) << mode;
    std::vector<double> expected;
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 8; ++j)
        for (int64_t k = 0; k < 5; ++k) {
          int64_t c[3] = {i - 0, j - 2, k + 1};
          int64_t dims[3] = {2, 3, 4};
          bool outside = false;
          for (int d = 0; d < 3; ++d) {
            if (c[d] >= 0 && c[d] < dims[d]) continue;
            outside = true;
            std::string m = mode;
            if (m == "edge") c[d] = std::clamp<int64_t>(c[d], 0, dims[d] - 1);
            if (m == "wrap") c[d] = ((c[d] % dims[d]) + dims[d]) % dims[d];
            if (m == "reflect") {
              while (c[d] < 0 || c[d] >= dims[d]) c[d] = c[d] < 0 ? -c[d] : 2 * (dims[d] - 1) - c[d];
            }
          }
          expected.push_back(outside && std::string(mode) == "constant" ? -1.0
                                                                         : double((c[0] * 3 + c[1]) * 4 + c[2] + 1));
        }
    expect_values(y, expected, 0, mode);
  }
  Attributes old;
  old.set_ints("pads", {1, 0, 0, 1});
  old.set_float("value", 5.f);
  expect_values(run_op("Pad", 2, {floats({1, 2}, {1, 2})}, old)[0], {5, 5, 5, 1, 2, 5});
  Tensor axes = run_op("Pad", 18, {iota({2, 2}), ints1d({1, 1}), std::nullopt, ints1d({-1})})[0];
  expect_values(axes, {0, 1, 2, 0, 0, 3, 4, 0});
}

}  // namespace
}  // namespace tessera::testing
