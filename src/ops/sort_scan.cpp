// Operators that order or scan along one axis: TopK, Hardmax and CumSum. Each views its input
// as [outer, axis, inner] and works on one strided line of the axis at a time.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "ops/broadcast.h"
#include "ops/dtype_dispatch.h"
#include "ops/index_util.h"
#include "ops/operator.h"

namespace tessera {
namespace {

// [outer, axis, inner] sizes of a shape split at `axis`.
struct AxisView {
  int64_t outer = 1, length = 1, inner = 1;
};

AxisView split_at_axis(const Shape& shape, int64_t axis) {
  AxisView v;
  for (int64_t d = 0; d < int64_t(shape.size()); ++d) {
    if (d < axis)
      v.outer *= shape[size_t(d)];
    else if (d == axis)
      v.length = shape[size_t(d)];
    else
      v.inner *= shape[size_t(d)];
  }
  return v;
}

// TopK: the k largest (or smallest) elements along an axis, sorted, equal values ordered by index
// (the ONNX tie-break), with their int64 indices. k must be known at plan time (it sets the shape).
std::unique_ptr<Kernel> make_top_k(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  int64_t rank = int64_t(x.shape.size());
  int64_t axis = normalize_axis(ctx.node.attributes.get_int("axis", -1), rank, ctx.describe());
  int64_t k = 0;
  if (ctx.opset < 10) {
    k = ctx.node.attributes.get_int("k", -1);
  } else {
    std::vector<int64_t> kv = ctx.constant_input(1, "k").to_int64_vector();
    if (kv.size() != 1) throw Error(ctx.describe() + ": k must hold exactly one value");
    k = kv[0];
  }
  AxisView view = split_at_axis(x.shape, axis);
  if (k < 0 || k > view.length)
    throw Error(ctx.describe() + ": k = " + std::to_string(k) + " is outside [0, " +
                std::to_string(view.length) + "] for axis " + std::to_string(axis) + " of " +
                shape_to_string(x.shape));
  bool largest = ctx.opset < 11 || ctx.node.attributes.get_int("largest", 1) != 0;
  Shape out = x.shape;
  out[size_t(axis)] = k;
  ctx.set_output(0, x.dtype, out);
  ctx.set_output(1, DType::i64, out);
  DType dtype = x.dtype;
  std::string who = ctx.describe();
  return std::make_unique<LambdaKernel>(
      [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext& e) {
        visit_numeric(dtype, who, [&](auto tag) {
          using T = decltype(tag);
          using C = ComputeOf<T>;
          const T* src = in[0]->data<T>();
          T* values = o[0]->data<T>();
          int64_t* indices = o[1] ? o[1]->data<int64_t>() : nullptr;
          parallel_range(&e.pool, view.outer * view.inner, 16, [&](int64_t begin, int64_t end) {
            std::vector<int64_t> order(size_t(view.length));
            std::vector<C> line(size_t(view.length));
            for (int64_t row = begin; row < end; ++row) {
              int64_t base = (row / view.inner) * view.length * view.inner + row % view.inner;
              for (int64_t i = 0; i < view.length; ++i)
                line[size_t(i)] = Element<T>::load(src[base + i * view.inner]);
              std::iota(order.begin(), order.end(), 0);
              // NaN ranks above every number when looking for the largest, as numpy's sort does.
              auto before = [&](int64_t a, int64_t b) {
                C va = line[size_t(a)], vb = line[size_t(b)];
                if constexpr (std::is_floating_point_v<C>) {
                  bool na = std::isnan(va), nb = std::isnan(vb);
                  if (na || nb) return na != nb ? (largest ? na : nb) : a < b;
                }
                if (va != vb) return largest ? va > vb : va < vb;
                return a < b;
              };
              std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
              int64_t out_base = (row / view.inner) * k * view.inner + row % view.inner;
              for (int64_t i = 0; i < k; ++i) {
                int64_t from = order[size_t(i)];
                values[out_base + i * view.inner] = src[base + from * view.inner];
                if (indices) indices[out_base + i * view.inner] = from;
              }
            }
          });
        });
      });
}

// Hardmax: 1 at the first maximum along the axis, 0 elsewhere. Before opset 13 the input is
// flattened to 2-D at `axis` and the maximum is taken over the whole trailing block.
std::unique_ptr<Kernel> make_hardmax(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  int64_t rank = int64_t(x.shape.size());
  int64_t axis =
      normalize_axis(ctx.node.attributes.get_int("axis", ctx.opset < 13 ? 1 : -1), rank, ctx.describe());
  AxisView view = split_at_axis(x.shape, axis);
  if (ctx.opset < 13) {
    view.length *= view.inner;
    view.inner = 1;
  }
  ctx.set_output(0, x.dtype, x.shape);
  DType dtype = x.dtype;
  std::string who = ctx.describe();
  return std::make_unique<LambdaKernel>(
      [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext&) {
        visit_numeric(dtype, who, [&](auto tag) {
          using T = decltype(tag);
          const T* src = in[0]->data<T>();
          T* dst = o[0]->data<T>();
          T zero = convert_element<T>(int32_t(0)), one = convert_element<T>(int32_t(1));
          std::fill(dst, dst + o[0]->numel(), zero);
          if (view.length == 0) return;
          for (int64_t row = 0; row < view.outer * view.inner; ++row) {
            int64_t base = (row / view.inner) * view.length * view.inner + row % view.inner;
            int64_t best = 0;
            auto best_value = Element<T>::load(src[base]);
            for (int64_t i = 1; i < view.length; ++i) {
              auto v = Element<T>::load(src[base + i * view.inner]);
              if (v > best_value) best_value = v, best = i;
            }
            dst[base + best * view.inner] = one;
          }
        });
      });
}

// CumSum: running sums along an axis given as a (run-time) scalar input; `exclusive` shifts the
// sums by one, `reverse` runs from the end.
std::unique_ptr<Kernel> make_cumsum(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  const ValueInfo& axis_info = required_input(ctx, 1);
  if (!is_index_dtype(axis_info.dtype)) throw Error(ctx.describe() + ": axis must be int32 or int64");
  ctx.set_output(0, x.dtype, x.shape);
  bool exclusive = ctx.node.attributes.get_int("exclusive", 0) != 0;
  bool reverse = ctx.node.attributes.get_int("reverse", 0) != 0;
  Shape shape = x.shape;
  DType dtype = x.dtype;
  std::string who = ctx.describe();
  return std::make_unique<LambdaKernel>(
      [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext&) {
        if (in[1]->numel() != 1) throw Error(who + ": axis must be a scalar");
        int64_t axis = normalize_axis(read_integer(*in[1], 0), int64_t(shape.size()), who);
        AxisView view = split_at_axis(shape, axis);
        visit_numeric(dtype, who, [&](auto tag) {
          using T = decltype(tag);
          const T* src = in[0]->data<T>();
          T* dst = o[0]->data<T>();
          for (int64_t row = 0; row < view.outer * view.inner; ++row) {
            int64_t base = (row / view.inner) * view.length * view.inner + row % view.inner;
            ComputeOf<T> sum = 0;
            for (int64_t step = 0; step < view.length; ++step) {
              int64_t i = reverse ? view.length - 1 - step : step;
              int64_t at = base + i * view.inner;
              ComputeOf<T> v = Element<T>::load(src[at]);
              if (!exclusive) sum += v;
              dst[at] = Element<T>::store(sum);
              if (exclusive) sum += v;
            }
          }
        });
      });
}

}  // namespace

void register_sort_scan_operators(OperatorRegistry& registry) {
  registry.add("TopK", 1, 18, make_top_k);
  registry.add("Hardmax", 1, 18, make_hardmax);
  registry.add("CumSum", 11, 18, make_cumsum);
}

}  // namespace tessera
