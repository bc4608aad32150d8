// Pointwise activation and math operators (Relu, Sigmoid, Clip, PRelu, Exp, Sin, ...): f32 runs
// on the unary/binary primitives, 16-bit floats go through f32, integer inputs where ONNX allows.
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>

#include "ops/broadcast.h"
#include "ops/dtype_dispatch.h"
#include "ops/operator.h"
#include "primitives/primitives.h"

namespace tessera {
namespace {

using primitives::UnaryKind;
using primitives::UnaryParams;
using ScalarFn = float (*)(float x, float alpha, float beta);

// Integer behaviour for the few ops that ONNX defines on integers.
enum class IntOp { none, relu, abs, neg, sign };

struct UnaryOp {
  std::optional<UnaryKind> kind;  // primitive kind, when the primitive set has this function
  ScalarFn scalar = nullptr;      // otherwise the scalar function
  IntOp int_op = IntOp::none;
  // Attribute names and defaults for alpha / beta (empty name: not an attribute).
  const char* alpha_name = "";
  float alpha_default = 0.f;
  const char* beta_name = "";
  float beta_default = 0.f;
};

// Applies the op to n f32 values; x and y may alias.
void apply_f32(const UnaryOp& op, const UnaryParams& params, int64_t n, const float* x, float* y) {
  if (op.kind) {
    primitives::unary_f32(params, n, x, y);
    return;
  }
  for (int64_t i = 0; i < n; ++i) y[i] = op.scalar(x[i], params.alpha, params.beta);
}

template <typename T>
T apply_int(IntOp op, T x) {
  using U = std::make_unsigned_t<T>;
  switch (op) {
    case IntOp::relu: return x > 0 ? x : T(0);
    case IntOp::abs:
      if constexpr (std::is_signed_v<T>) return x < 0 ? T(U(0) - U(x)) : x;
      return x;
    case IntOp::neg: return T(U(0) - U(x));
    case IntOp::sign: return T(x > 0 ? 1 : (x < 0 ? -1 : 0));
    case IntOp::none: break;
  }
  return x;
}

// Runs the op over a tensor of any float dtype; 16-bit floats are widened in small blocks.
void run_unary(const UnaryOp& op, const UnaryParams& params, const Tensor& x, Tensor& y,
               ThreadPool* pool) {
  int64_t n = x.numel();
  DType dtype = x.dtype();
  if (dtype == DType::f32) {
    const float* src = x.data<float>();
    float* dst = y.data<float>();
    parallel_range(pool, n, 32768, [&](int64_t b, int64_t e) { apply_f32(op, params, e - b, src + b, dst + b); });
    return;
  }
  visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* src = x.data<T>();
    T* dst = y.data<T>();
    if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat>) {
      parallel_range(pool, n, 32768, [&](int64_t b, int64_t e) {
        float buffer[512];
        for (int64_t i = b; i < e; i += 512) {
          int64_t m = std::min<int64_t>(512, e - i);
          for (int64_t j = 0; j < m; ++j) buffer[j] = Element<T>::load(src[i + j]);
          apply_f32(op, params, m, buffer, buffer);
          for (int64_t j = 0; j < m; ++j) dst[i + j] = Element<T>::store(buffer[j]);
        }
      });
    } else if constexpr (!std::is_same_v<T, bool> && !std::is_same_v<T, float>) {
      for (int64_t i = 0; i < n; ++i) dst[i] = apply_int<T>(op.int_op, src[i]);
    }
  });
}

KernelFactory unary_factory(UnaryOp op) {
  return [op](KernelCreateContext& ctx) -> std::unique_ptr<Kernel> {
    const ValueInfo& x = required_input(ctx, 0);
    bool is_float = x.dtype == DType::f32 || x.dtype == DType::f16 || x.dtype == DType::bf16;
    bool is_int = x.dtype == DType::i8 || x.dtype == DType::u8 || x.dtype == DType::i32 ||
                  x.dtype == DType::i64;
    if (!is_float && !(is_int && op.int_op != IntOp::none))
      throw Error(ctx.describe() + ": " + dtype_name(x.dtype) + " input is not supported");
    UnaryParams params;
    if (op.kind) params.kind = *op.kind;
    params.alpha = *op.alpha_name ? ctx.node.attributes.get_float(op.alpha_name, op.alpha_default)
                                  : op.alpha_default;
    params.beta = *op.beta_name ? ctx.node.attributes.get_float(op.beta_name, op.beta_default)
                                : op.beta_default;
    ctx.set_output(0, x.dtype, x.shape);
    return std::make_unique<LambdaKernel>(
        [op, params](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o,
                     ExecContext& e) { run_unary(op, params, *in[0], *o[0], &e.pool); },
        double(shape_numel(x.shape)));
  };
}

UnaryOp prim(UnaryKind kind, IntOp int_op = IntOp::none) {
  UnaryOp op;
  op.kind = kind;
  op.int_op = int_op;
  return op;
}

UnaryOp scalar(ScalarFn fn) {
  UnaryOp op;
  op.scalar = fn;
  return op;
}

UnaryOp with_params(UnaryOp op, const char* alpha_name, float alpha, const char* beta_name = "",
                    float beta = 0.f) {
  op.alpha_name = alpha_name;
  op.alpha_default = alpha;
  op.beta_name = beta_name;
  op.beta_default = beta;
  return op;
}

// Clip: bounds are attributes before opset 11 and optional scalar inputs after; inputs are
// read at run time since they are tiny and need not be constants.
std::unique_ptr<Kernel> make_clip(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  if (x.dtype == DType::boolean) throw Error(ctx.describe() + ": bool input is not supported");
  ctx.set_output(0, x.dtype, x.shape);
  bool from_inputs = ctx.opset >= 11;
  float attr_min = ctx.node.attributes.get_float("min", -std::numeric_limits<float>::max());
  float attr_max = ctx.node.attributes.get_float("max", std::numeric_limits<float>::max());
  for (size_t i = 1; i < 3 && from_inputs; ++i)
    if (ctx.has_input(i) && shape_numel(ctx.inputs[i].shape) != 1)
      throw Error(ctx.describe() + ": min and max must be scalars");
  DType dtype = x.dtype;
  return std::make_unique<LambdaKernel>([=](const std::vector<const Tensor*>& in,
                                            const std::vector<Tensor*>& o, ExecContext& e) {
    const Tensor* lo = from_inputs && in.size() > 1 ? in[1] : nullptr;
    const Tensor* hi = from_inputs && in.size() > 2 ? in[2] : nullptr;
    visit_numeric(dtype, "Clip", [&](auto tag) {
      using T = decltype(tag);
      using C = ComputeOf<T>;
      C low = std::numeric_limits<C>::lowest(), high = std::numeric_limits<C>::max();
      if (!from_inputs) {
        low = C(attr_min);
        high = C(attr_max);
      }
      if (lo) low = Element<T>::load(lo->data<T>()[0]);
      if (hi) high = Element<T>::load(hi->data<T>()[0]);
      const T* src = in[0]->data<T>();
      T* dst = o[0]->data<T>();
      int64_t n = in[0]->numel();
      if constexpr (std::is_same_v<T, float>) {
        UnaryParams params{UnaryKind::clip, low, high};
        parallel_range(&e.pool, n, 32768, [&](int64_t b, int64_t end) {
          primitives::unary_f32(params, end - b, src + b, dst + b);
        });
      } else {
        for (int64_t i = 0; i < n; ++i) {
          C v = Element<T>::load(src[i]);
          v = v < low ? low : v;
          v = v > high ? high : v;  // when min > max ONNX gives max, as this order does
          dst[i] = Element<T>::store(v);
        }
      }
    });
  });
}

// PRelu: y = x < 0 ? slope * x : x with slope broadcast to x's shape (unidirectionally).
std::unique_ptr<Kernel> make_prelu(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  const ValueInfo& slope = required_input(ctx, 1);
  if (x.dtype != slope.dtype) throw Error(ctx.describe() + ": X and slope dtypes must match");
  Shape slope_shape = slope.shape;
  // PRelu-7 and later broadcast numpy-style; a [C] slope against [N, C, H, W] as older
  // exporters wrote it only works when it lines up from the right, as in the spec.
  Shape out = broadcast_shapes({x.shape, slope_shape}, ctx.describe());
  if (out != x.shape)
    throw Error(ctx.describe() + ": slope " + shape_to_string(slope_shape) +
                " does not broadcast to X " + shape_to_string(x.shape));
  ctx.set_output(0, x.dtype, out);
  IterationPlan plan = make_broadcast_plan(out, {x.shape, slope_shape});
  DType dtype = x.dtype;
  return std::make_unique<LambdaKernel>(
      [plan, dtype](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o,
                    ExecContext& e) {
        visit_numeric(dtype, "PRelu", [&](auto tag) {
          using T = decltype(tag);
          const T* a = in[0]->data<T>();
          const T* b = in[1]->data<T>();
          T* y = o[0]->data<T>();
          for_each_block(plan, &e.pool, [&](const int64_t* off, int64_t out, int64_t rows, int64_t cols) {
            if constexpr (std::is_same_v<T, float>) {
              primitives::binary_f32(primitives::BinaryKind::prelu, rows, cols, a + off[0],
                                     plan.row_stride[0], plan.col_stride[0], b + off[1],
                                     plan.row_stride[1], plan.col_stride[1], y + out, plan.cols);
            } else {
              for (int64_t r = 0; r < rows; ++r)
                for (int64_t c = 0; c < cols; ++c) {
                  auto v = Element<T>::load(a[off[0] + r * plan.row_stride[0] + c * plan.col_stride[0]]);
                  auto s = Element<T>::load(b[off[1] + r * plan.row_stride[1] + c * plan.col_stride[1]]);
                  y[out + r * plan.cols + c] = Element<T>::store(v < 0 ? decltype(v)(v * s) : v);
                }
            }
          });
        });
      },
      double(shape_numel(out)));
}

// IsNaN / IsInf: float input, bool output.
KernelFactory float_test_factory(bool nan_test) {
  return [nan_test](KernelCreateContext& ctx) -> std::unique_ptr<Kernel> {
    const ValueInfo& x = required_input(ctx, 0);
    if (!dtype_is_float(x.dtype)) throw Error(ctx.describe() + ": input must be floating point");
    bool negative = ctx.node.attributes.get_int("detect_negative", 1) != 0;
    bool positive = ctx.node.attributes.get_int("detect_positive", 1) != 0;
    ctx.set_output(0, DType::boolean, x.shape);
    return std::make_unique<LambdaKernel>([=](const std::vector<const Tensor*>& in,
                                              const std::vector<Tensor*>& o, ExecContext&) {
      Tensor values = in[0]->dtype() == DType::f32 ? *in[0] : in[0]->cast(DType::f32);
      const float* src = values.data<float>();
      uint8_t* dst = o[0]->data<uint8_t>();
      for (int64_t i = 0; i < values.numel(); ++i) {
        float v = src[i];
        dst[i] = nan_test ? std::isnan(v)
                          : std::isinf(v) && ((v > 0 && positive) || (v < 0 && negative));
      }
    });
  };
}

float softsign(float x, float, float) { return x / (1.f + std::fabs(x)); }
float tan_fn(float x, float, float) { return std::tan(x); }
float asin_fn(float x, float, float) { return std::asin(x); }
float acos_fn(float x, float, float) { return std::acos(x); }
float atan_fn(float x, float, float) { return std::atan(x); }
float sinh_fn(float x, float, float) { return std::sinh(x); }
float cosh_fn(float x, float, float) { return std::cosh(x); }
float asinh_fn(float x, float, float) { return std::asinh(x); }
float acosh_fn(float x, float, float) { return std::acosh(x); }
float atanh_fn(float x, float, float) { return std::atanh(x); }
float thresholded_relu(float x, float alpha, float) { return x > alpha ? x : 0.f; }
float celu(float x, float alpha, float) {
  return std::max(0.f, x) + std::min(0.f, alpha * (std::exp(x / alpha) - 1.f));
}
float shrink(float x, float lambd, float bias) {
  return x < -lambd ? x + bias : (x > lambd ? x - bias : 0.f);
}

}  // namespace

void register_activation_operators(OperatorRegistry& registry) {
  registry.add("Relu", 1, 18, unary_factory(prim(UnaryKind::relu, IntOp::relu)));
  registry.add("LeakyRelu", 1, 18, unary_factory(with_params(prim(UnaryKind::leaky_relu), "alpha", 0.01f)));
  registry.add("Elu", 1, 18, unary_factory(with_params(prim(UnaryKind::elu), "alpha", 1.f)));
  registry.add("Selu", 1, 18,
               unary_factory(with_params(prim(UnaryKind::selu), "alpha", 1.67326319217681884765625f,
                                         "gamma", 1.05070102214813232421875f)));
  registry.add("Sigmoid", 1, 18, unary_factory(prim(UnaryKind::sigmoid)));
  registry.add("Tanh", 1, 18, unary_factory(prim(UnaryKind::tanh)));
  // ONNX opset 20; also made at any opset by the fuse_gelu pass out of the exported subgraphs.
  const KernelFactory gelu_erf = unary_factory(prim(UnaryKind::gelu_erf)),
                      gelu_tanh = unary_factory(prim(UnaryKind::gelu_tanh));
  registry.add("Gelu", 1, 22, [gelu_erf, gelu_tanh](KernelCreateContext& ctx) {
    const std::string approximate = ctx.node.attributes.get_string("approximate", "none");
    if (approximate != "none" && approximate != "tanh")
      throw Error(ctx.describe() + ": approximate must be \"none\" or \"tanh\", not '" + approximate + "'");
    return approximate == "tanh" ? gelu_tanh(ctx) : gelu_erf(ctx);
  });
  registry.add("HardSigmoid", 1, 18,
               unary_factory(with_params(prim(UnaryKind::hard_sigmoid), "alpha", 0.2f, "beta", 0.5f)));
  registry.add("HardSwish", 14, 18, unary_factory(prim(UnaryKind::hard_swish)));
  registry.add("Softplus", 1, 18, unary_factory(prim(UnaryKind::softplus)));
  registry.add("Softsign", 1, 18, unary_factory(scalar(softsign)));
  registry.add("Mish", 18, 18, unary_factory(prim(UnaryKind::mish)));
  registry.add("Exp", 1, 18, unary_factory(prim(UnaryKind::exp)));
  registry.add("Log", 1, 18, unary_factory(prim(UnaryKind::log)));
  registry.add("Sqrt", 1, 18, unary_factory(prim(UnaryKind::sqrt)));
  registry.add("Erf", 9, 18, unary_factory(prim(UnaryKind::erf)));
  registry.add("Neg", 1, 18, unary_factory(prim(UnaryKind::neg, IntOp::neg)));
  registry.add("Abs", 1, 18, unary_factory(prim(UnaryKind::abs, IntOp::abs)));
  registry.add("Sign", 9, 18, unary_factory(prim(UnaryKind::sign, IntOp::sign)));
  registry.add("Reciprocal", 1, 18, unary_factory(prim(UnaryKind::reciprocal)));
  registry.add("Floor", 1, 18, unary_factory(prim(UnaryKind::floor)));
  registry.add("Ceil", 1, 18, unary_factory(prim(UnaryKind::ceil)));
  registry.add("Round", 11, 18, unary_factory(prim(UnaryKind::round)));
  registry.add("Sin", 7, 18, unary_factory(prim(UnaryKind::sin)));
  registry.add("Cos", 7, 18, unary_factory(prim(UnaryKind::cos)));
  registry.add("Tan", 7, 18, unary_factory(scalar(tan_fn)));
  registry.add("Asin", 7, 18, unary_factory(scalar(asin_fn)));
  registry.add("Acos", 7, 18, unary_factory(scalar(acos_fn)));
  registry.add("Atan", 7, 18, unary_factory(scalar(atan_fn)));
  registry.add("Sinh", 9, 18, unary_factory(scalar(sinh_fn)));
  registry.add("Cosh", 9, 18, unary_factory(scalar(cosh_fn)));
  registry.add("Asinh", 9, 18, unary_factory(scalar(asinh_fn)));
  registry.add("Acosh", 9, 18, unary_factory(scalar(acosh_fn)));
  registry.add("Atanh", 9, 18, unary_factory(scalar(atanh_fn)));
  registry.add("ThresholdedRelu", 10, 18, unary_factory(with_params(scalar(thresholded_relu), "alpha", 1.f)));
  registry.add("Celu", 12, 18, unary_factory(with_params(scalar(celu), "alpha", 1.f)));
  registry.add("Shrink", 9, 18, unary_factory(with_params(scalar(shrink), "lambd", 0.5f, "bias", 0.f)));
  registry.add("Clip", 6, 18, make_clip);
  registry.add("PRelu", 7, 18, make_prelu);
  registry.add("IsNaN", 9, 18, float_test_factory(true));
  registry.add("IsInf", 10, 18, float_test_factory(false));
}

}  // namespace tessera
