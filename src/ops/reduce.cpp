// Reductions (ReduceSum/Mean/Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp) and ArgMax/ArgMin.
// Axes are collapsed to a row or column reduction for the primitives; other layouts are permuted.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "ops/broadcast.h"
#include "ops/dtype_dispatch.h"
#include "ops/operator.h"
#include "primitives/primitives.h"

namespace tessera {
namespace {

using primitives::ReduceKind;
using Ints = std::vector<int64_t>;

enum class Reduce { sum, mean, max, min, prod, l1, l2, sum_square, log_sum, log_sum_exp };

ReduceKind primitive_kind(Reduce r) {
  switch (r) {
    case Reduce::sum: case Reduce::mean: case Reduce::log_sum: return ReduceKind::sum;
    case Reduce::max: return ReduceKind::max;
    case Reduce::min: return ReduceKind::min;
    case Reduce::prod: return ReduceKind::prod;
    case Reduce::l1: return ReduceKind::sum_abs;
    case Reduce::l2: case Reduce::sum_square: return ReduceKind::sum_squares;
    case Reduce::log_sum_exp: return ReduceKind::log_sum_exp;
  }
  return ReduceKind::sum;
}

// The value of a reduction over no elements.
double empty_value(Reduce r) {
  switch (r) {
    case Reduce::prod: return 1;
    case Reduce::max: case Reduce::log_sum: case Reduce::log_sum_exp:
      return -std::numeric_limits<double>::infinity();
    case Reduce::min: return std::numeric_limits<double>::infinity();
    case Reduce::mean: return std::numeric_limits<double>::quiet_NaN();
    default: return 0;
  }
}

// Applied to the primitive's raw result: mean divides, L2 takes the root, LogSum the log.
double finish(Reduce r, double v, int64_t count) {
  switch (r) {
    case Reduce::mean: return v / double(count);
    case Reduce::l2: return std::sqrt(v);
    case Reduce::log_sum: return std::log(v);
    default: return v;
  }
}

// Scalar reduction of n values in double (the non-f32 path).
template <typename T>
double reduce_scalar(Reduce r, const T* x, int64_t n) {
  if (n == 0) return empty_value(r);
  auto load = [&](int64_t i) { return double(Element<T>::load(x[i])); };
  double acc = (r == Reduce::prod) ? 1.0 : 0.0;
  if (r == Reduce::max || r == Reduce::min || r == Reduce::log_sum_exp) acc = load(0);
  double peak = acc;
  for (int64_t i = 0; i < n; ++i) {
    double v = load(i);
    switch (r) {
      case Reduce::sum: case Reduce::mean: case Reduce::log_sum: acc += v; break;
      case Reduce::max: acc = std::max(acc, v); break;
      case Reduce::min: acc = std::min(acc, v); break;
      case Reduce::prod: acc *= v; break;
      case Reduce::l1: acc += std::fabs(v); break;
      case Reduce::l2: case Reduce::sum_square: acc += v * v; break;
      case Reduce::log_sum_exp: peak = std::max(peak, v); break;
    }
  }
  if (r == Reduce::log_sum_exp) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += std::exp(load(i) - peak);
    return peak + std::log(s);
  }
  return finish(r, acc, n);
}

// How the reduction runs after collapsing: rows of [kept, reduced] (row), columns of
// [reduced, kept] per outer block (column), or a permuting copy into [kept, reduced] first.
struct ReducePlan {
  enum class Layout { row, column, permuted } layout = Layout::row;
  int64_t outer = 1, reduced = 1, inner = 1;  // row: outer x reduced; column: outer x reduced x inner
  Shape permuted_shape, permuted_strides;    // permuted: view that orders kept dims first
};

ReducePlan plan_reduction(const Shape& shape, const std::vector<bool>& reduce_axis) {
  // Collapse to segments of (extent, reduced?), dropping size-1 dims.
  Ints extents;
  std::vector<bool> flags;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!flags.empty() && flags.back() == reduce_axis[d]) {
      extents.back() *= shape[d];
      continue;
    }
    extents.push_back(shape[d]);
    flags.push_back(reduce_axis[d]);
  }
  ReducePlan plan;
  auto kept_first = [&](size_t first_kept) {  // K R or K R K
    plan.outer = extents[first_kept];
    plan.reduced = extents[first_kept + 1];
  };
  size_t n = extents.size();
  if (n == 0) return plan;  // one element, nothing reduced: a 1x1 row reduction
  if (n == 1) {
    if (flags[0]) plan.reduced = extents[0];
    else plan.outer = extents[0];
    return plan;
  }
  if (n == 2 && !flags[0]) {
    kept_first(0);
    return plan;
  }
  if (n == 2 && flags[0]) {
    plan.layout = ReducePlan::Layout::column;
    plan.reduced = extents[0];
    plan.inner = extents[1];
    return plan;
  }
  if (n == 3 && !flags[0]) {
    plan.layout = ReducePlan::Layout::column;
    plan.outer = extents[0];
    plan.reduced = extents[1];
    plan.inner = extents[2];
    return plan;
  }
  plan.layout = ReducePlan::Layout::permuted;
  Shape strides = contiguous_strides(shape);
  plan.outer = plan.reduced = 1;
  for (int pass = 0; pass < 2; ++pass)
    for (size_t d = 0; d < shape.size(); ++d)
      if (bool(reduce_axis[d]) == bool(pass)) {
        plan.permuted_shape.push_back(shape[d]);
        plan.permuted_strides.push_back(strides[d]);
        (pass ? plan.reduced : plan.outer) *= shape[d];
      }
  return plan;
}

void run_reduce_f32(Reduce op, const ReducePlan& plan, const float* x, float* y, ThreadPool* pool) {
  ReduceKind kind = primitive_kind(op);
  int64_t count = plan.reduced;
  if (plan.layout == ReducePlan::Layout::column) {
    parallel_range(pool, plan.outer, 1, [&](int64_t begin, int64_t end) {
      for (int64_t o = begin; o < end; ++o)
        primitives::reduce_cols_f32(kind, plan.reduced, plan.inner,
                                    x + o * plan.reduced * plan.inner, plan.inner, y + o * plan.inner);
    });
  } else {
    int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, plan.reduced));
    parallel_range(pool, plan.outer, grain, [&](int64_t begin, int64_t end) {
      primitives::reduce_rows_f32(kind, end - begin, plan.reduced, x + begin * plan.reduced,
                                  plan.reduced, y + begin);
    });
  }
  int64_t outputs = plan.outer * plan.inner;
  if (op == Reduce::mean || op == Reduce::l2 || op == Reduce::log_sum)
    for (int64_t i = 0; i < outputs; ++i) y[i] = float(finish(op, y[i], count));
}

KernelFactory reduce_factory(Reduce op, int axes_input_opset) {
  return [op, axes_input_opset](KernelCreateContext& ctx) -> std::unique_ptr<Kernel> {
    const ValueInfo& x = required_input(ctx, 0);
    int64_t rank = int64_t(x.shape.size());
    bool keepdims = ctx.node.attributes.get_int("keepdims", 1) != 0;
    bool noop_when_empty = ctx.node.attributes.get_int("noop_with_empty_axes", 0) != 0;
    Ints axes;
    if (ctx.opset < axes_input_opset) axes = ctx.node.attributes.get_ints("axes");
    else if (ctx.has_input(1)) axes = ctx.constant_input(1, "axes").to_int64_vector();
    if (axes.empty() && noop_when_empty) {
      ctx.set_output(0, x.dtype, x.shape);
      return std::make_unique<LambdaKernel>(
          [](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext& e) {
            copy_tensor_bytes(*in[0], *o[0], &e.pool);
          });
    }
    std::vector<bool> reduce_axis(size_t(rank), axes.empty());
    for (int64_t a : axes) reduce_axis[size_t(normalize_axis(a, rank, ctx.describe()))] = true;
    Shape out;
    for (int64_t d = 0; d < rank; ++d) {
      if (!reduce_axis[size_t(d)]) out.push_back(x.shape[size_t(d)]);
      else if (keepdims) out.push_back(1);
    }
    ctx.set_output(0, x.dtype, out);
    ReducePlan plan = plan_reduction(x.shape, reduce_axis);
    int64_t count = 1;
    for (int64_t d = 0; d < rank; ++d)
      if (reduce_axis[size_t(d)]) count *= x.shape[size_t(d)];
    DType dtype = x.dtype;
    std::string who = ctx.describe();
    if (dtype == DType::boolean) throw Error(who + ": bool input is not supported");
    return std::make_unique<LambdaKernel>(
        [op, plan, dtype, count, who](const std::vector<const Tensor*>& in,
                                      const std::vector<Tensor*>& o, ExecContext& e) {
          Tensor& y = *o[0];
          if (y.numel() == 0) return;
          if (count == 0) {  // reduction over an empty axis: the op's identity value
            Tensor v = Tensor(DType::f32, {1});
            v.data<float>()[0] = float(empty_value(op));
            Tensor cast = v.cast(dtype);
            size_t es = dtype_size(dtype);
            for (int64_t i = 0; i < y.numel(); ++i)
              std::memcpy(static_cast<char*>(y.raw_data()) + i * int64_t(es), cast.raw_data(), es);
            return;
          }
          const Tensor* source = in[0];
          Tensor permuted;
          if (plan.layout == ReducePlan::Layout::permuted) {
            permuted = Tensor(dtype, plan.permuted_shape);
            strided_copy(in[0]->raw_data(), plan.permuted_shape, plan.permuted_strides,
                         permuted.raw_data(), dtype_size(dtype), &e.pool);
            source = &permuted;
          }
          if (dtype == DType::f32) {
            run_reduce_f32(op, plan, source->data<float>(), y.data<float>(), &e.pool);
            return;
          }
          visit_numeric(dtype, who, [&](auto tag) {
            using T = decltype(tag);
            const T* x = source->data<T>();
            T* out = y.data<T>();
            std::vector<T> column(size_t(plan.reduced));
            for (int64_t o = 0; o < plan.outer; ++o)
              for (int64_t i = 0; i < plan.inner; ++i) {
                const T* base = x + o * plan.reduced * plan.inner + i;
                for (int64_t r = 0; r < plan.reduced; ++r) column[size_t(r)] = base[r * plan.inner];
                double v = reduce_scalar<T>(op, column.data(), plan.reduced);
                if constexpr (is_floating_storage<T>) {
                  out[o * plan.inner + i] = Element<T>::store(float(v));
                } else {
                  out[o * plan.inner + i] =
                      std::isfinite(v) ? T(int64_t(std::clamp(v, -9.2e18, 9.2e18))) : T(0);
                }
              }
          });
        },
        double(count) * double(shape_numel(out)));
  };
}

// ArgMax / ArgMin along one axis; ties go to the first index unless select_last_index.
KernelFactory arg_factory(bool is_max) {
  return [is_max](KernelCreateContext& ctx) -> std::unique_ptr<Kernel> {
    const ValueInfo& x = required_input(ctx, 0);
    int64_t rank = int64_t(x.shape.size());
    int64_t axis = normalize_axis(ctx.node.attributes.get_int("axis", 0), rank, ctx.describe());
    bool keepdims = ctx.node.attributes.get_int("keepdims", 1) != 0;
    bool last = ctx.node.attributes.get_int("select_last_index", 0) != 0;
    Shape out;
    int64_t outer = 1, inner = 1, dim = x.shape[size_t(axis)];
    for (int64_t d = 0; d < rank; ++d) {
      if (d == axis) {
        if (keepdims) out.push_back(1);
        continue;
      }
      out.push_back(x.shape[size_t(d)]);
      (d < axis ? outer : inner) *= x.shape[size_t(d)];
    }
    if (dim == 0) throw Error(ctx.describe() + ": cannot take the arg of an empty axis");
    ctx.set_output(0, DType::i64, out);
    DType dtype = x.dtype;
    std::string who = ctx.describe();
    return std::make_unique<LambdaKernel>([=](const std::vector<const Tensor*>& in,
                                              const std::vector<Tensor*>& o, ExecContext&) {
      visit_numeric(dtype, who, [&](auto tag) {
        using T = decltype(tag);
        const T* src = in[0]->data<T>();
        int64_t* dst = o[0]->data<int64_t>();
        for (int64_t a = 0; a < outer; ++a)
          for (int64_t i = 0; i < inner; ++i) {
            const T* base = src + a * dim * inner + i;
            auto best = Element<T>::load(base[0]);
            int64_t best_index = 0;
            for (int64_t k = 1; k < dim; ++k) {
              auto v = Element<T>::load(base[k * inner]);
              bool better = is_max ? (v > best || (last && v == best))
                                   : (v < best || (last && v == best));
              if (better) {
                best = v;
                best_index = k;
              }
            }
            dst[a * inner + i] = best_index;
          }
      });
    });
  };
}

}  // namespace

void register_reduce_operators(OperatorRegistry& registry) {
  // Axes moved from an attribute to an input in opset 13 for ReduceSum and opset 18 for the rest.
  registry.add("ReduceSum", 1, 18, reduce_factory(Reduce::sum, 13));
  registry.add("ReduceMean", 1, 18, reduce_factory(Reduce::mean, 18));
  registry.add("ReduceMax", 1, 18, reduce_factory(Reduce::max, 18));
  registry.add("ReduceMin", 1, 18, reduce_factory(Reduce::min, 18));
  registry.add("ReduceProd", 1, 18, reduce_factory(Reduce::prod, 18));
  registry.add("ReduceL1", 1, 18, reduce_factory(Reduce::l1, 18));
  registry.add("ReduceL2", 1, 18, reduce_factory(Reduce::l2, 18));
  registry.add("ReduceSumSquare", 1, 18, reduce_factory(Reduce::sum_square, 18));
  registry.add("ReduceLogSum", 1, 18, reduce_factory(Reduce::log_sum, 18));
  registry.add("ReduceLogSumExp", 1, 18, reduce_factory(Reduce::log_sum_exp, 18));
  registry.add("ArgMax", 1, 18, arg_factory(true));
  registry.add("ArgMin", 1, 18, arg_factory(false));
}

}  // namespace tessera
