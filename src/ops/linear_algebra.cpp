// Small dense linear algebra and statistics operators: Det (LU with partial pivoting per matrix)
// and MeanVarianceNormalization (per-slice standardization over the given axes).
#include <algorithm>
#include <cmath>

#include "ops/broadcast.h"
#include "ops/dtype_dispatch.h"
#include "ops/operator.h"

namespace tessera {
namespace {

// Determinant of an n x n row-major matrix, by Gaussian elimination with partial pivoting in
// double (the pivoting keeps it stable; each row swap flips the sign).
double determinant(std::vector<double> a, int64_t n) {
  double det = 1;
  for (int64_t col = 0; col < n; ++col) {
    int64_t pivot = col;
    for (int64_t r = col + 1; r < n; ++r)
      if (std::fabs(a[size_t(r * n + col)]) > std::fabs(a[size_t(pivot * n + col)])) pivot = r;
    if (a[size_t(pivot * n + col)] == 0) return 0;
    if (pivot != col) {
      for (int64_t c = 0; c < n; ++c) std::swap(a[size_t(col * n + c)], a[size_t(pivot * n + c)]);
      det = -det;
    }
    double p = a[size_t(col * n + col)];
    det *= p;
    for (int64_t r = col + 1; r < n; ++r) {
      double f = a[size_t(r * n + col)] / p;
      for (int64_t c = col; c < n; ++c) a[size_t(r * n + c)] -= f * a[size_t(col * n + c)];
    }
  }
  return det;
}

std::unique_ptr<Kernel> make_det(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  size_t rank = x.shape.size();
  if (rank < 2 || x.shape[rank - 1] != x.shape[rank - 2])
    throw Error(ctx.describe() + ": the input must be [..., M, M], got " + shape_to_string(x.shape));
  int64_t n = x.shape.back();
  Shape out(x.shape.begin(), x.shape.end() - 2);
  ctx.set_output(0, x.dtype, out);
  DType dtype = x.dtype;
  std::string who = ctx.describe();
  return std::make_unique<LambdaKernel>(
      [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext&) {
        visit_float(dtype, who, [&](auto tag) {
          using T = decltype(tag);
          const T* src = in[0]->data<T>();
          T* dst = o[0]->data<T>();
          std::vector<double> matrix(size_t(n * n));
          for (int64_t m = 0; m < o[0]->numel(); ++m) {
            for (int64_t i = 0; i < n * n; ++i)
              matrix[size_t(i)] = double(Element<T>::load(src[m * n * n + i]));
            dst[m] = Element<T>::store(float(determinant(matrix, n)));
          }
        });
      });
}

// y = (x - mean) / (sqrt(variance) + 1e-9) with mean and variance over `axes` (default N, H, W),
// the epsilon placed as in the ONNX function body.
std::unique_ptr<Kernel> make_mean_variance_normalization(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  int64_t rank = int64_t(x.shape.size());
  std::vector<int64_t> axes = ctx.node.attributes.get_ints("axes", {0, 2, 3});
  std::vector<bool> reduced(size_t(rank), false);
  for (int64_t a : axes) reduced[size_t(normalize_axis(a, rank, ctx.describe()))] = true;
  ctx.set_output(0, x.dtype, x.shape);
  Shape shape = x.shape, strides = contiguous_strides(x.shape);
  // Kept dims enumerate the slices; reduced dims the elements of one slice.
  Shape kept_shape, kept_strides, reduced_shape, reduced_strides;
  for (int64_t d = 0; d < rank; ++d) {
    (reduced[size_t(d)] ? reduced_shape : kept_shape).push_back(shape[size_t(d)]);
    (reduced[size_t(d)] ? reduced_strides : kept_strides).push_back(strides[size_t(d)]);
  }
  DType dtype = x.dtype;
  std::string who = ctx.describe();
  auto offset_of = [](int64_t flat, const Shape& dims, const Shape& dim_strides) {
    int64_t offset = 0;
    for (size_t k = dims.size(); k-- > 0;) {
      offset += (flat % dims[k]) * dim_strides[k];
      flat /= dims[k];
    }
    return offset;
  };
  return std::make_unique<LambdaKernel>(
      [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext&) {
        visit_float(dtype, who, [&](auto tag) {
          using T = decltype(tag);
          const T* src = in[0]->data<T>();
          T* dst = o[0]->data<T>();
          int64_t slices = shape_numel(kept_shape), count = shape_numel(reduced_shape);
          std::vector<int64_t> element_offsets(static_cast<size_t>(count));
          for (int64_t i = 0; i < count; ++i)
            element_offsets[size_t(i)] = offset_of(i, reduced_shape, reduced_strides);
          for (int64_t s = 0; s < slices; ++s) {
            int64_t base = offset_of(s, kept_shape, kept_strides);
            double sum = 0, sum_squares = 0;
            for (int64_t off : element_offsets) {
              double v = double(Element<T>::load(src[base + off]));
              sum += v;
              sum_squares += v * v;
            }
            double mean = sum / double(count);
            double deviation = std::sqrt(std::max(0.0, sum_squares / double(count) - mean * mean));
            for (int64_t off : element_offsets)
              dst[base + off] = Element<T>::store(
                  float((double(Element<T>::load(src[base + off])) - mean) / (deviation + 1e-9)));
          }
        });
      });
}

}  // namespace

void register_linear_algebra_operators(OperatorRegistry& registry) {
  registry.add("Det", 11, 18, make_det);
  registry.add("MeanVarianceNormalization", 9, 18, make_mean_variance_normalization);
}

}  // namespace tessera
