// Elementwise ONNX operators with broadcasting: arithmetic, comparison, logic, variadic
// Max/Min/Sum/Mean, Where, Cast/CastLike, Identity and inference-mode Dropout.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "ops/broadcast.h"
#include "ops/dtype_dispatch.h"
#include "ops/operator.h"
#include "primitives/primitives.h"

namespace tessera {
namespace {

using primitives::BinaryKind;

// Runs y = op(a, b) over a broadcast plan with operands (a, b); op works on compute types.
template <typename TA, typename TB, typename TY, typename Op>
void run_binary_generic(const IterationPlan& plan, const void* a_data, const void* b_data,
                        void* y_data, ThreadPool* pool, Op op) {
  const TA* a = static_cast<const TA*>(a_data);
  const TB* b = static_cast<const TB*>(b_data);
  TY* y = static_cast<TY*>(y_data);
  for_each_block(plan, pool, [&](const int64_t* off, int64_t out, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; ++r) {
      const TA* ar = a + off[0] + r * plan.row_stride[0];
      const TB* br = b + off[1] + r * plan.row_stride[1];
      TY* yr = y + out + r * plan.cols;
      for (int64_t c = 0; c < cols; ++c)
        yr[c] = Element<TY>::store(op(Element<TA>::load(ar[c * plan.col_stride[0]]),
                                      Element<TB>::load(br[c * plan.col_stride[1]])));
    }
  });
}

void run_binary_f32(BinaryKind kind, const IterationPlan& plan, const float* a, const float* b,
                    float* y, ThreadPool* pool) {
  for_each_block(plan, pool, [&](const int64_t* off, int64_t out, int64_t rows, int64_t cols) {
    primitives::binary_f32(kind, rows, cols, a + off[0], plan.row_stride[0], plan.col_stride[0],
                           b + off[1], plan.row_stride[1], plan.col_stride[1], y + out, plan.cols);
  });
}

enum class Arith { add, sub, mul, div, max, min };

// Integer arithmetic wraps (through unsigned) instead of overflowing, and division by zero
// gives 0 instead of trapping: shape math must never crash the process.
template <typename C>
C arith(Arith op, C a, C b) {
  if constexpr (std::is_floating_point_v<C>) {
    switch (op) {
      case Arith::add: return a + b;
      case Arith::sub: return a - b;
      case Arith::mul: return a * b;
      case Arith::div: return a / b;
      case Arith::max: return std::isnan(a) || a > b ? a : b;
      case Arith::min: return std::isnan(a) || a < b ? a : b;
    }
  } else {
    using U = std::make_unsigned_t<C>;
    switch (op) {
      case Arith::add: return C(U(a) + U(b));
      case Arith::sub: return C(U(a) - U(b));
      case Arith::mul: return C(U(a) * U(b));
      case Arith::div:
        if (b == 0) return 0;
        if constexpr (std::is_signed_v<C>)
          if (b == C(-1)) return C(U(0) - U(a));
        return C(a / b);  // truncates toward zero, like C and ONNX Runtime
      case Arith::max: return a > b ? a : b;
      case Arith::min: return a < b ? a : b;
    }
  }
  return a;
}

BinaryKind primitive_kind(Arith op) {
  switch (op) {
    case Arith::add: return BinaryKind::add;
    case Arith::sub: return BinaryKind::sub;
    case Arith::mul: return BinaryKind::mul;
    case Arith::div: return BinaryKind::div;
    case Arith::max: return BinaryKind::max;
    case Arith::min: return BinaryKind::min;
  }
  return BinaryKind::add;
}

// y = a op b with a, b of the same dtype broadcast by `plan`.
void arith_dispatch(Arith op, DType dtype, const IterationPlan& plan, const void* a, const void* b,
                    void* y, ThreadPool* pool, const std::string& who) {
  if (dtype == DType::f32) {
    run_binary_f32(primitive_kind(op), plan, static_cast<const float*>(a),
                   static_cast<const float*>(b), static_cast<float*>(y), pool);
    return;
  }
  visit_numeric(dtype, who, [&](auto tag) {
    using T = decltype(tag);
    using C = ComputeOf<T>;
    run_binary_generic<T, T, T>(plan, a, b, y, pool, [op](C x, C z) { return arith<C>(op, x, z); });
  });
}

void check_same_dtype(const KernelCreateContext& ctx, size_t count) {
  for (size_t i = 1; i < count; ++i)
    if (ctx.has_input(i) && ctx.inputs[i].dtype != ctx.inputs[0].dtype)
      throw Error(ctx.describe() + ": input dtypes " + dtype_name(ctx.inputs[0].dtype) + " and " +
                  dtype_name(ctx.inputs[i].dtype) + " must match");
}

KernelFactory arithmetic_factory(Arith op) {
  return [op](KernelCreateContext& ctx) -> std::unique_ptr<Kernel> {
    const ValueInfo& a = required_input(ctx, 0);
    const ValueInfo& b = required_input(ctx, 1);
    check_same_dtype(ctx, 2);
    Shape out = broadcast_shapes({a.shape, b.shape}, ctx.describe());
    ctx.set_output(0, a.dtype, out);
    IterationPlan plan = make_broadcast_plan(out, {a.shape, b.shape});
    DType dtype = a.dtype;
    std::string who = ctx.describe();
    return std::make_unique<LambdaKernel>(
        [op, plan, dtype, who](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o,
                               ExecContext& e) {
          arith_dispatch(op, dtype, plan, in[0]->raw_data(), in[1]->raw_data(), o[0]->raw_data(),
                         &e.pool, who);
        },
        double(shape_numel(out)));
  };
}

// Variadic Max/Min/Sum/Mean: y = in0 op in1, then y = y op in_k for the rest.
KernelFactory variadic_factory(Arith op, bool mean) {
  return [op, mean](KernelCreateContext& ctx) -> std::unique_ptr<Kernel> {
    size_t count = ctx.inputs.size();
    if (count == 0) throw Error(ctx.describe() + ": needs at least one input");
    std::vector<Shape> shapes;
    for (size_t i = 0; i < count; ++i) shapes.push_back(required_input(ctx, i).shape);
    check_same_dtype(ctx, count);
    DType dtype = ctx.inputs[0].dtype;
    if (mean && !dtype_is_float(dtype))
      throw Error(ctx.describe() + ": Mean needs floating-point inputs");
    Shape out = broadcast_shapes(shapes, ctx.describe());
    ctx.set_output(0, dtype, out);
    std::vector<IterationPlan> plans;
    if (count == 1) {
      plans.push_back(make_broadcast_plan(out, {shapes[0]}));
    } else {
      plans.push_back(make_broadcast_plan(out, {shapes[0], shapes[1]}));
      for (size_t i = 2; i < count; ++i) plans.push_back(make_broadcast_plan(out, {out, shapes[i]}));
    }
    std::string who = ctx.describe();
    return std::make_unique<LambdaKernel>(
        [op, mean, plans, dtype, who, count](const std::vector<const Tensor*>& in,
                                             const std::vector<Tensor*>& o, ExecContext& e) {
          Tensor& y = *o[0];
          if (count == 1) {
            strided_copy(in[0]->raw_data(), y.shape(), contiguous_strides(y.shape()),
                         y.raw_data(), dtype_size(dtype), &e.pool);
          } else {
            arith_dispatch(op, dtype, plans[0], in[0]->raw_data(), in[1]->raw_data(), y.raw_data(),
                           &e.pool, who);
            // The running result is operand a; each element is read before it is overwritten.
            for (size_t i = 2; i < count; ++i)
              arith_dispatch(op, dtype, plans[i - 1], y.raw_data(), in[i]->raw_data(), y.raw_data(),
                             &e.pool, who);
          }
          if (mean) {
            float n = float(count);
            visit_dtype(dtype, [&](auto tag) {
              using T = decltype(tag);
              if constexpr (is_floating_storage<T>) {
                T* p = y.data<T>();
                for (int64_t i = 0; i < y.numel(); ++i)
                  p[i] = Element<T>::store(Element<T>::load(p[i]) / n);
              }
            });
          }
        },
        double(shape_numel(out)) * double(count));
  };
}

// Pow: base and exponent may have different numeric types; the result has the base's type.
std::unique_ptr<Kernel> make_pow(KernelCreateContext& ctx) {
  const ValueInfo& a = required_input(ctx, 0);
  const ValueInfo& b = required_input(ctx, 1);
  Shape out = broadcast_shapes({a.shape, b.shape}, ctx.describe());
  ctx.set_output(0, a.dtype, out);
  IterationPlan plan = make_broadcast_plan(out, {a.shape, b.shape});
  DType ta = a.dtype, tb = b.dtype;
  std::string who = ctx.describe();
  return std::make_unique<LambdaKernel>(
      [plan, ta, tb, who](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o,
                          ExecContext& e) {
        if (ta == DType::f32 && tb == DType::f32) {
          run_binary_f32(BinaryKind::pow, plan, in[0]->data<float>(), in[1]->data<float>(),
                         o[0]->data<float>(), &e.pool);
          return;
        }
        visit_numeric(ta, who, [&](auto base_tag) {
          using TA = decltype(base_tag);
          visit_numeric(tb, who, [&](auto exp_tag) {
            using TB = decltype(exp_tag);
            if constexpr (is_floating_storage<TA>) {
              run_binary_generic<TA, TB, TA>(plan, in[0]->raw_data(), in[1]->raw_data(),
                                             o[0]->raw_data(), &e.pool, [](auto x, auto z) {
                                               return float(std::pow(double(x), double(z)));
                                             });
            } else {
              // Integer powers are computed in double (exact for the magnitudes that fit) and
              // truncated back, so 2^3 is 8, not 7.9999.
              run_binary_generic<TA, TB, TA>(
                  plan, in[0]->raw_data(), in[1]->raw_data(), o[0]->raw_data(), &e.pool,
                  [](auto x, auto z) {
                    double p = std::round(std::pow(double(x), double(z)));
                    if (!std::isfinite(p)) return TA(0);
                    return TA(int64_t(std::clamp(p, -9.2e18, 9.2e18)));
                  });
            }
          });
        });
      },
      double(shape_numel(out)));
}

std::unique_ptr<Kernel> make_mod(KernelCreateContext& ctx) {
  const ValueInfo& a = required_input(ctx, 0);
  const ValueInfo& b = required_input(ctx, 1);
  check_same_dtype(ctx, 2);
  bool fmod = ctx.node.attributes.get_int("fmod", 0) != 0;
  if (dtype_is_float(a.dtype) && !fmod)
    throw Error(ctx.describe() + ": floating-point Mod requires fmod=1");
  Shape out = broadcast_shapes({a.shape, b.shape}, ctx.describe());
  ctx.set_output(0, a.dtype, out);
  IterationPlan plan = make_broadcast_plan(out, {a.shape, b.shape});
  DType dtype = a.dtype;
  std::string who = ctx.describe();
  return std::make_unique<LambdaKernel>([plan, dtype, fmod, who](const std::vector<const Tensor*>& in,
                                                                 const std::vector<Tensor*>& o,
                                                                 ExecContext& e) {
    visit_numeric(dtype, who, [&](auto tag) {
      using T = decltype(tag);
      using C = ComputeOf<T>;
      run_binary_generic<T, T, T>(plan, in[0]->raw_data(), in[1]->raw_data(), o[0]->raw_data(),
                                  &e.pool, [fmod](C x, C z) -> C {
                                    if constexpr (std::is_floating_point_v<C>) {
                                      return std::fmod(x, z);
                                    } else {
                                      if (z == 0) return 0;
                                      if constexpr (std::is_signed_v<C>)
                                        if (z == C(-1)) return 0;
                                      C r = C(x % z);
                                      // Python's % takes the divisor's sign; fmod the dividend's.
                                      if (!fmod && r != 0 && ((r < 0) != (z < 0))) r = C(r + z);
                                      return r;
                                    }
                                  });
    });
  });
}

enum class Compare { equal, less, greater, less_equal, greater_equal };

KernelFactory compare_factory(Compare cmp) {
  return [cmp](KernelCreateContext& ctx) -> std::unique_ptr<Kernel> {
    const ValueInfo& a = required_input(ctx, 0);
    const ValueInfo& b = required_input(ctx, 1);
    check_same_dtype(ctx, 2);
    Shape out = broadcast_shapes({a.shape, b.shape}, ctx.describe());
    ctx.set_output(0, DType::boolean, out);
    IterationPlan plan = make_broadcast_plan(out, {a.shape, b.shape});
    DType dtype = a.dtype;
    return std::make_unique<LambdaKernel>([cmp, plan, dtype](const std::vector<const Tensor*>& in,
                                                             const std::vector<Tensor*>& o,
                                                             ExecContext& e) {
      visit_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        run_binary_generic<T, T, bool>(plan, in[0]->raw_data(), in[1]->raw_data(),
                                       o[0]->raw_data(), &e.pool, [cmp](auto x, auto z) {
                                         switch (cmp) {
                                           case Compare::equal: return x == z;
                                           case Compare::less: return x < z;
                                           case Compare::greater: return x > z;
                                           case Compare::less_equal: return x <= z;
                                           case Compare::greater_equal: return x >= z;
                                         }
                                         return false;
                                       });
      });
    });
  };
}

enum class Logic { and_, or_, xor_ };

KernelFactory logic_factory(Logic op) {
  return [op](KernelCreateContext& ctx) -> std::unique_ptr<Kernel> {
    const ValueInfo& a = required_input(ctx, 0);
    const ValueInfo& b = required_input(ctx, 1);
    if (a.dtype != DType::boolean || b.dtype != DType::boolean)
      throw Error(ctx.describe() + ": inputs must be bool");
    Shape out = broadcast_shapes({a.shape, b.shape}, ctx.describe());
    ctx.set_output(0, DType::boolean, out);
    IterationPlan plan = make_broadcast_plan(out, {a.shape, b.shape});
    return std::make_unique<LambdaKernel>([op, plan](const std::vector<const Tensor*>& in,
                                                     const std::vector<Tensor*>& o, ExecContext& e) {
      run_binary_generic<bool, bool, bool>(plan, in[0]->raw_data(), in[1]->raw_data(),
                                           o[0]->raw_data(), &e.pool, [op](bool x, bool z) {
                                             switch (op) {
                                               case Logic::and_: return x && z;
                                               case Logic::or_: return x || z;
                                               case Logic::xor_: return x != z;
                                             }
                                             return false;
                                           });
    });
  };
}

std::unique_ptr<Kernel> make_not(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  if (x.dtype != DType::boolean) throw Error(ctx.describe() + ": input must be bool");
  ctx.set_output(0, DType::boolean, x.shape);
  return std::make_unique<LambdaKernel>(
      [](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext&) {
        const uint8_t* src = in[0]->data<uint8_t>();
        uint8_t* dst = o[0]->data<uint8_t>();
        for (int64_t i = 0; i < in[0]->numel(); ++i) dst[i] = src[i] ? 0 : 1;
      });
}

template <typename T>
void where_loop(const IterationPlan& plan, const Tensor& cond, const Tensor& x, const Tensor& z,
                Tensor& y, ThreadPool* pool) {
  const uint8_t* c = cond.data<uint8_t>();
  const T* a = x.data<T>();
  const T* b = z.data<T>();
  T* out = y.data<T>();
  for_each_block(plan, pool, [&](const int64_t* off, int64_t o, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t col = 0; col < cols; ++col) {
        int64_t ic = off[0] + r * plan.row_stride[0] + col * plan.col_stride[0];
        int64_t ia = off[1] + r * plan.row_stride[1] + col * plan.col_stride[1];
        int64_t ib = off[2] + r * plan.row_stride[2] + col * plan.col_stride[2];
        out[o + r * plan.cols + col] = c[ic] ? a[ia] : b[ib];
      }
  });
}

std::unique_ptr<Kernel> make_where(KernelCreateContext& ctx) {
  const ValueInfo& cond = required_input(ctx, 0);
  const ValueInfo& x = required_input(ctx, 1);
  const ValueInfo& z = required_input(ctx, 2);
  if (cond.dtype != DType::boolean) throw Error(ctx.describe() + ": condition must be bool");
  if (x.dtype != z.dtype)
    throw Error(ctx.describe() + ": X and Y dtypes " + dtype_name(x.dtype) + " and " +
                dtype_name(z.dtype) + " must match");
  Shape out = broadcast_shapes({cond.shape, x.shape, z.shape}, ctx.describe());
  ctx.set_output(0, x.dtype, out);
  IterationPlan plan = make_broadcast_plan(out, {cond.shape, x.shape, z.shape});
  size_t es = dtype_size(x.dtype);
  return std::make_unique<LambdaKernel>([plan, es](const std::vector<const Tensor*>& in,
                                                   const std::vector<Tensor*>& o, ExecContext& e) {
    switch (es) {
      case 1: where_loop<uint8_t>(plan, *in[0], *in[1], *in[2], *o[0], &e.pool); break;
      case 2: where_loop<uint16_t>(plan, *in[0], *in[1], *in[2], *o[0], &e.pool); break;
      case 4: where_loop<uint32_t>(plan, *in[0], *in[1], *in[2], *o[0], &e.pool); break;
      default: where_loop<uint64_t>(plan, *in[0], *in[1], *in[2], *o[0], &e.pool); break;
    }
  });
}

// Converts every element of `from` into `to` (same element count, any two dtypes).
void cast_tensor(const Tensor& from, Tensor& to, ThreadPool* pool) {
  if (from.dtype() == to.dtype()) {
    copy_tensor_bytes(from, to, pool);
    return;
  }
  visit_dtype(from.dtype(), [&](auto from_tag) {
    using From = decltype(from_tag);
    visit_dtype(to.dtype(), [&](auto to_tag) {
      using To = decltype(to_tag);
      const From* src = from.data<From>();
      To* dst = to.data<To>();
      parallel_range(pool, from.numel(), 65536, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) dst[i] = convert_element<To>(src[i]);
      });
    });
  });
}

std::unique_ptr<Kernel> make_cast_kernel(KernelCreateContext& ctx, DType to) {
  const ValueInfo& x = required_input(ctx, 0);
  ctx.set_output(0, to, x.shape);
  return std::make_unique<LambdaKernel>(
      [](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext& e) {
        cast_tensor(*in[0], *o[0], &e.pool);
      });
}

std::unique_ptr<Kernel> make_cast(KernelCreateContext& ctx) {
  if (!ctx.node.attributes.has("to")) throw Error(ctx.describe() + ": missing attribute 'to'");
  int64_t code = ctx.node.attributes.get_int("to", 1);
  DType to;
  try {
    to = dtype_from_onnx(int(code));
  } catch (const Error& e) {
    throw Error(ctx.describe() + ": cannot cast to ONNX type " + std::to_string(code) + " (" +
                e.what() + ")");
  }
  return make_cast_kernel(ctx, to);
}

std::unique_ptr<Kernel> make_cast_like(KernelCreateContext& ctx) {
  return make_cast_kernel(ctx, required_input(ctx, 1).dtype);
}

std::unique_ptr<Kernel> make_identity(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  ctx.set_output(0, x.dtype, x.shape);
  return std::make_unique<LambdaKernel>(
      [](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext& e) {
        copy_tensor_bytes(*in[0], *o[0], &e.pool);
      });
}

// Inference Dropout is the identity; the optional mask says every element was kept.
std::unique_ptr<Kernel> make_dropout(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  if (ctx.opset >= 12 && ctx.has_input(2)) {
    bool training = ctx.constant_input(2, "training_mode").value_as_double(0) != 0;
    float ratio = ctx.has_input(1) ? float(ctx.constant_input(1, "ratio").value_as_double(0)) : 0.5f;
    if (training && ratio != 0.f)
      throw Error(ctx.describe() + ": training-mode Dropout (random masks) is not supported");
  }
  ctx.set_output(0, x.dtype, x.shape);
  bool want_mask = ctx.node.outputs.size() > 1 && ctx.node.outputs[1] >= 0;
  // Dropout-7..9 returned the mask in the input's type; from 10 on it is bool.
  DType mask_dtype = ctx.opset >= 10 ? DType::boolean : x.dtype;
  if (want_mask) ctx.set_output(1, mask_dtype, x.shape);
  return std::make_unique<LambdaKernel>([want_mask](const std::vector<const Tensor*>& in,
                                                    const std::vector<Tensor*>& o, ExecContext& e) {
    copy_tensor_bytes(*in[0], *o[0], &e.pool);
    if (want_mask && o.size() > 1 && o[1]) {
      Tensor ones = Tensor::from_int64({1}).cast(o[1]->dtype());
      size_t es = dtype_size(o[1]->dtype());
      char* dst = static_cast<char*>(o[1]->raw_data());
      for (int64_t i = 0; i < o[1]->numel(); ++i) std::memcpy(dst + i * int64_t(es), ones.raw_data(), es);
    }
  });
}

}  // namespace

void register_elementwise_operators(OperatorRegistry& registry) {
  registry.add("Add", 7, 18, arithmetic_factory(Arith::add));
  registry.add("Sub", 7, 18, arithmetic_factory(Arith::sub));
  registry.add("Mul", 7, 18, arithmetic_factory(Arith::mul));
  registry.add("Div", 7, 18, arithmetic_factory(Arith::div));
  registry.add("Pow", 7, 18, make_pow);
  registry.add("Mod", 10, 18, make_mod);
  registry.add("Max", 6, 18, variadic_factory(Arith::max, false));
  registry.add("Min", 6, 18, variadic_factory(Arith::min, false));
  registry.add("Sum", 6, 18, variadic_factory(Arith::add, false));
  registry.add("Mean", 6, 18, variadic_factory(Arith::add, true));
  registry.add("Equal", 7, 18, compare_factory(Compare::equal));
  registry.add("Less", 7, 18, compare_factory(Compare::less));
  registry.add("Greater", 7, 18, compare_factory(Compare::greater));
  registry.add("LessOrEqual", 12, 18, compare_factory(Compare::less_equal));
  registry.add("GreaterOrEqual", 12, 18, compare_factory(Compare::greater_equal));
  registry.add("And", 7, 18, logic_factory(Logic::and_));
  registry.add("Or", 7, 18, logic_factory(Logic::or_));
  registry.add("Xor", 7, 18, logic_factory(Logic::xor_));
  registry.add("Not", 1, 18, make_not);
  registry.add("Where", 9, 18, make_where);
  registry.add("Cast", 6, 18, make_cast);
  registry.add("CastLike", 15, 18, make_cast_like);
  registry.add("Identity", 1, 18, make_identity);
  registry.add("Dropout", 7, 18, make_dropout);
}

}  // namespace tessera
