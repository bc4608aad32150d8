// Normalization operators: BatchNormalization (inference), InstanceNormalization,
// LayerNormalization, LRN, and Softmax / LogSoftmax (both opset conventions).
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/broadcast.h"
#include "ops/operator.h"
#include "primitives/primitives.h"

namespace tessera {

namespace {

struct MeanVariance {
  double mean, variance;
};

// Mean and (biased) variance of n values, in two passes in double: the mean, then the centred
// squares, so there is no cancellation. Zero for n == 0.
MeanVariance mean_variance(const float* x, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const double mean = n ? sum / double(n) : 0.0;
  double squares = 0;
  for (int64_t i = 0; i < n; ++i) squares += (x[i] - mean) * (x[i] - mean);
  return {mean, n ? squares / double(n) : 0.0};
}

using primitives::BinaryKind;
using primitives::ReduceKind;

void require_f32(const KernelCreateContext& ctx, size_t count) {
  for (size_t i = 0; i < count; ++i)
    if (ctx.has_input(i) && ctx.input(i).dtype != DType::f32)
      throw Error(ctx.describe() + ": input " + std::to_string(i) + " has type " +
                  dtype_name(ctx.input(i).dtype) + "; only float32 is supported");
}

bool output_requested(const KernelCreateContext& ctx, size_t i) {
  return i < ctx.node.outputs.size() && ctx.node.outputs[i] >= 0;
}

// Values of `source` (shape `from`) broadcast to the contiguous shape `to`.
std::vector<float> broadcast_values(const float* source, const Shape& from, const Shape& to) {
  Shape strides = broadcast_strides(from, to);
  std::vector<float> out(size_t(shape_numel(to)));
  Shape index(to.size(), 0);
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t offset = 0;
    for (size_t d = 0; d < to.size(); ++d) offset += index[d] * strides[d];
    out[i] = source[offset];
    for (size_t d = to.size(); d-- > 0;) {
      if (++index[d] < to[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

// ---------------------------------------------------------------- BatchNormalization

std::unique_ptr<Kernel> create_batch_norm(KernelCreateContext& ctx) {
  for (size_t i = 0; i < 5; ++i)
    if (!ctx.has_input(i))
      throw Error(ctx.describe() + ": needs inputs X, scale, B, mean and var");
  require_f32(ctx, 5);
  const Attributes& a = ctx.node.attributes;
  if (a.get_int("training_mode", 0) != 0 || output_requested(ctx, 1) || output_requested(ctx, 2) ||
      output_requested(ctx, 3) || output_requested(ctx, 4))
    throw Error(ctx.describe() + ": training mode (running statistics outputs) is not supported; "
                                 "export the model for inference");
  if (a.get_int("spatial", 1) == 0)
    throw Error(ctx.describe() + ": spatial=0 (per-activation statistics) is not supported");
  const Shape& xs = ctx.input(0).shape;
  if (xs.size() < 2) throw Error(ctx.describe() + ": input must have shape N x C x ...");
  const int64_t channels = xs[1];
  for (size_t i = 1; i < 5; ++i)
    if (shape_numel(ctx.input(i).shape) != channels)
      throw Error(ctx.describe() + ": input " + std::to_string(i) + " must have " +
                  std::to_string(channels) + " elements, got " + shape_to_string(ctx.input(i).shape));
  const float epsilon = a.get_float("epsilon", 1e-5f);
  int64_t plane = 1;
  for (size_t d = 2; d < xs.size(); ++d) plane *= xs[d];
  const int64_t planes = xs[0] * channels;
  ctx.set_output(0, DType::f32, xs);

  // y = x * a + b with a = scale / sqrt(var + eps), b = B - mean * a, per channel.
  auto fold = [channels, epsilon](const std::vector<const Tensor*>& in, std::vector<float>* a_out,
                                  std::vector<float>* b_out) {
    a_out->resize(size_t(channels));
    b_out->resize(size_t(channels));
    const float *scale = in[1]->data<float>(), *bias = in[2]->data<float>();
    const float *mean = in[3]->data<float>(), *var = in[4]->data<float>();
    for (int64_t c = 0; c < channels; ++c) {
      const float s = scale[c] / std::sqrt(var[c] + epsilon);
      (*a_out)[size_t(c)] = s;
      (*b_out)[size_t(c)] = bias[c] - mean[c] * s;
    }
  };
  bool constant = true;
  std::vector<const Tensor*> constants(5, nullptr);
  for (size_t i = 1; i < 5; ++i) {
    constants[i] = ctx.input(i).constant;
    constant = constant && constants[i];
  }
  auto folded_a = std::make_shared<std::vector<float>>();
  auto folded_b = std::make_shared<std::vector<float>>();
  if (constant) fold(constants, folded_a.get(), folded_b.get());
  auto run = [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
                 ExecContext& context) {
    std::vector<float> a_local, b_local;
    const std::vector<float>* sa = folded_a.get();
    const std::vector<float>* sb = folded_b.get();
    if (!constant) {
      fold(in, &a_local, &b_local);
      sa = &a_local;
      sb = &b_local;
    }
    const float* x = in[0]->data<float>();
    float* y = out[0]->data<float>();
    const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(1, plane));
    context.pool.parallel_for(planes, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const float s = (*sa)[size_t(p % channels)], t = (*sb)[size_t(p % channels)];
        const float* xp = x + p * plane;
        float* yp = y + p * plane;
        for (int64_t i = 0; i < plane; ++i) yp[i] = xp[i] * s + t;
      }
    }, grain);
  };
  return std::make_unique<LambdaKernel>(run, 2.0 * double(planes * plane));
}

// ---------------------------------------------------------------- InstanceNormalization

std::unique_ptr<Kernel> create_instance_norm(KernelCreateContext& ctx) {
  for (size_t i = 0; i < 3; ++i)
    if (!ctx.has_input(i)) throw Error(ctx.describe() + ": needs inputs input, scale and B");
  require_f32(ctx, 3);
  const Shape& xs = ctx.input(0).shape;
  if (xs.size() < 3) throw Error(ctx.describe() + ": input must have shape N x C x D1 x ...");
  const int64_t channels = xs[1];
  if (shape_numel(ctx.input(1).shape) != channels || shape_numel(ctx.input(2).shape) != channels)
    throw Error(ctx.describe() + ": scale and B must have " + std::to_string(channels) + " elements");
  const float epsilon = ctx.node.attributes.get_float("epsilon", 1e-5f);
  const int64_t plane = shape_numel(Shape(xs.begin() + 2, xs.end()));
  const int64_t planes = xs[0] * channels;
  ctx.set_output(0, DType::f32, xs);
  auto run = [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
                 ExecContext& context) {
    const float *x = in[0]->data<float>(), *scale = in[1]->data<float>(), *bias = in[2]->data<float>();
    float* y = out[0]->data<float>();
    context.pool.parallel_for(planes, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const float* xp = x + p * plane;
        float* yp = y + p * plane;
        const MeanVariance stats = mean_variance(xp, plane);
        const double mean = stats.mean, var = stats.variance;
        const float s = float(scale[p % channels] / std::sqrt(var + double(epsilon)));
        const float t = float(bias[p % channels] - mean * s);
        for (int64_t i = 0; i < plane; ++i) yp[i] = xp[i] * s + t;
      }
    });
  };
  return std::make_unique<LambdaKernel>(run, 5.0 * double(planes * plane));
}

// ---------------------------------------------------------------- LayerNormalization

std::unique_ptr<Kernel> create_layer_norm(KernelCreateContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1))
    throw Error(ctx.describe() + ": needs inputs X and Scale");
  require_f32(ctx, 3);
  const Shape& xs = ctx.input(0).shape;
  const int64_t rank = int64_t(xs.size());
  const int64_t axis = normalize_axis(ctx.node.attributes.get_int("axis", -1), rank, ctx.describe());
  const float epsilon = ctx.node.attributes.get_float("epsilon", 1e-5f);
  const Shape normalized(xs.begin() + axis, xs.end());
  const int64_t outer = shape_numel(Shape(xs.begin(), xs.begin() + axis));
  const int64_t inner = shape_numel(normalized);
  const Shape scale_shape = ctx.input(1).shape;
  const Shape bias_shape = ctx.has_input(2) ? ctx.input(2).shape : Shape{};
  const bool has_bias = ctx.has_input(2);
  // Scale and B broadcast unidirectionally to the normalized shape.
  if (broadcast_shapes({normalized, scale_shape}, ctx.describe()) != normalized ||
      (has_bias && broadcast_shapes({normalized, bias_shape}, ctx.describe()) != normalized))
    throw Error(ctx.describe() + ": Scale/B do not broadcast to the normalized shape " +
                shape_to_string(normalized));
  ctx.set_output(0, DType::f32, xs);
  Shape stats_shape(xs.begin(), xs.begin() + axis);
  stats_shape.resize(xs.size(), 1);
  const bool want_mean = output_requested(ctx, 1), want_inv_std = output_requested(ctx, 2);
  if (want_mean) ctx.set_output(1, DType::f32, stats_shape);
  if (want_inv_std) ctx.set_output(2, DType::f32, stats_shape);
  auto run = [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
                 ExecContext& context) {
    std::vector<float> scale_full, bias_full;
    const float* scale = in[1]->data<float>();
    const float* bias = has_bias ? in[2]->data<float>() : nullptr;
    if (shape_numel(scale_shape) != inner) {
      scale_full = broadcast_values(scale, scale_shape, normalized);
      scale = scale_full.data();
    }
    if (bias && shape_numel(bias_shape) != inner) {
      bias_full = broadcast_values(bias, bias_shape, normalized);
      bias = bias_full.data();
    }
    const float* x = in[0]->data<float>();
    float* y = out[0]->data<float>();
    float* mean_out = want_mean && out.size() > 1 && out[1] ? out[1]->data<float>() : nullptr;
    float* inv_out = want_inv_std && out.size() > 2 && out[2] ? out[2]->data<float>() : nullptr;
    const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, inner));
    context.pool.parallel_for(outer, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const float* xr = x + r * inner;
        float* yr = y + r * inner;
        const MeanVariance stats = mean_variance(xr, inner);
        const double mean = stats.mean;
        const float inv_std = float(1.0 / std::sqrt(stats.variance + epsilon));
        const float m = float(mean);
        for (int64_t i = 0; i < inner; ++i)
          yr[i] = (xr[i] - m) * inv_std * scale[i] + (bias ? bias[i] : 0.f);
        if (mean_out) mean_out[r] = m;
        if (inv_out) inv_out[r] = inv_std;
      }
    }, grain);
  };
  return std::make_unique<LambdaKernel>(run, 8.0 * double(outer * inner));
}

// ---------------------------------------------------------------- LRN

std::unique_ptr<Kernel> create_lrn(KernelCreateContext& ctx) {
  if (!ctx.has_input(0)) throw Error(ctx.describe() + ": missing input X");
  require_f32(ctx, 1);
  const Attributes& a = ctx.node.attributes;
  if (!a.has("size")) throw Error(ctx.describe() + ": attribute 'size' is required");
  const int64_t size = a.get_int("size", 1);
  if (size < 1) throw Error(ctx.describe() + ": size must be positive");
  const float alpha = a.get_float("alpha", 1e-4f), beta = a.get_float("beta", 0.75f);
  const float bias = a.get_float("bias", 1.f);
  const Shape& xs = ctx.input(0).shape;
  if (xs.size() < 3) throw Error(ctx.describe() + ": input must have shape N x C x D1 x ...");
  const int64_t channels = xs[1], plane = shape_numel(Shape(xs.begin() + 2, xs.end()));
  ctx.set_output(0, DType::f32, xs);
  const int64_t before = (size - 1) / 2, after = size - 1 - before;  // window around c
  auto run = [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
                 ExecContext& context) {
    const float* x = in[0]->data<float>();
    float* y = out[0]->data<float>();
    context.pool.parallel_for(xs[0] * channels, [&](int64_t begin, int64_t end) {
      std::vector<float> squares(static_cast<size_t>(plane));
      for (int64_t p = begin; p < end; ++p) {
        const int64_t n = p / channels, c = p % channels;
        std::fill(squares.begin(), squares.end(), 0.f);
        for (int64_t k = std::max<int64_t>(0, c - before); k <= std::min(channels - 1, c + after); ++k) {
          const float* xk = x + (n * channels + k) * plane;
          for (int64_t i = 0; i < plane; ++i) squares[size_t(i)] += xk[i] * xk[i];
        }
        const float* xp = x + p * plane;
        float* yp = y + p * plane;
        for (int64_t i = 0; i < plane; ++i)
          yp[i] = xp[i] / std::pow(bias + alpha / float(size) * squares[size_t(i)], beta);
      }
    });
  };
  return std::make_unique<LambdaKernel>(run, double(xs[0] * channels * plane * (size + 3)));
}

// ---------------------------------------------------------------- Softmax / LogSoftmax

// Softmax of each row of a contiguous [rows, n] block (the axis is innermost): one primitive
// call per step for the whole block rather than per row.
void softmax_rows(bool log, int64_t rows, int64_t n, const float* x, float* y,
                  std::vector<float>& stats) {
  stats.resize(size_t(rows));
  float* s = stats.data();
  primitives::reduce_rows_f32(ReduceKind::max, rows, n, x, n, s);
  primitives::binary_f32(BinaryKind::sub, rows, n, x, n, 1, s, 1, 0, y, n);
  if (log) {
    primitives::reduce_rows_f32(ReduceKind::log_sum_exp, rows, n, y, n, s);
    primitives::binary_f32(BinaryKind::sub, rows, n, y, n, 1, s, 1, 0, y, n);
  } else {
    primitives::UnaryParams exp_params;
    exp_params.kind = primitives::UnaryKind::exp;
    primitives::unary_f32(exp_params, rows * n, y, y);
    primitives::reduce_rows_f32(ReduceKind::sum, rows, n, y, n, s);
    for (int64_t r = 0; r < rows; ++r) s[r] = 1.f / s[r];
    primitives::binary_f32(BinaryKind::mul, rows, n, y, n, 1, s, 1, 0, y, n);
  }
}

// Softmax over the middle dim of [outer, n, inner] blocks, built from reduce/binary/unary.
void softmax_block(bool log, int64_t n, int64_t inner, const float* x, float* y,
                   std::vector<float>& stats) {
  stats.resize(size_t(inner));
  float* s = stats.data();
  primitives::UnaryParams exp_params;
  exp_params.kind = primitives::UnaryKind::exp;
  if (inner == 1) {
    primitives::reduce_rows_f32(ReduceKind::max, 1, n, x, n, s);
  } else {
    primitives::reduce_cols_f32(ReduceKind::max, n, inner, x, inner, s);
  }
  // y = x - max (max broadcast down the reduced dim), for stability.
  primitives::binary_f32(BinaryKind::sub, n, inner, x, inner, 1, s, 0, 1, y, inner);
  if (log) {
    if (inner == 1)
      primitives::reduce_rows_f32(ReduceKind::log_sum_exp, 1, n, y, n, s);
    else
      primitives::reduce_cols_f32(ReduceKind::log_sum_exp, n, inner, y, inner, s);
    primitives::binary_f32(BinaryKind::sub, n, inner, y, inner, 1, s, 0, 1, y, inner);
  } else {
    primitives::unary_f32(exp_params, n * inner, y, y);
    if (inner == 1)
      primitives::reduce_rows_f32(ReduceKind::sum, 1, n, y, n, s);
    else
      primitives::reduce_cols_f32(ReduceKind::sum, n, inner, y, inner, s);
    for (int64_t i = 0; i < inner; ++i) s[i] = 1.f / s[i];
    primitives::binary_f32(BinaryKind::mul, n, inner, y, inner, 1, s, 0, 1, y, inner);
  }
}

std::unique_ptr<Kernel> create_softmax(KernelCreateContext& ctx, bool log) {
  if (!ctx.has_input(0)) throw Error(ctx.describe() + ": missing input");
  require_f32(ctx, 1);
  const Shape& xs = ctx.input(0).shape;
  const int64_t rank = int64_t(xs.size());
  const bool coerce_2d = ctx.opset < 13;  // older opsets flatten to [prod(:axis), prod(axis:)]
  const int64_t default_axis = coerce_2d ? 1 : -1;
  int64_t axis = ctx.node.attributes.get_int("axis", default_axis);
  if (rank == 0) throw Error(ctx.describe() + ": input must have rank >= 1");
  if (coerce_2d && axis == rank) axis = rank;  // allowed: every row has one element
  else axis = normalize_axis(axis, rank, ctx.describe());
  int64_t outer = shape_numel(Shape(xs.begin(), xs.begin() + axis));
  int64_t n, inner;
  if (coerce_2d) {
    n = shape_numel(Shape(xs.begin() + axis, xs.end()));
    inner = 1;
  } else {
    n = xs[size_t(axis)];
    inner = shape_numel(Shape(xs.begin() + axis + 1, xs.end()));
  }
  ctx.set_output(0, DType::f32, xs);
  auto run = [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
                 ExecContext& context) {
    const float* x = in[0]->data<float>();
    float* y = out[0]->data<float>();
    if (n == 0 || inner == 0) return;
    const int64_t block = n * inner;
    const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, block));
    context.pool.parallel_for(outer, [&](int64_t begin, int64_t end) {
      std::vector<float> stats;
      if (inner == 1) {
        constexpr int64_t kRowsPerStep = 256;  // keeps the block in cache between the steps
        for (int64_t o = begin; o < end; o += kRowsPerStep) {
          const int64_t rows = std::min(kRowsPerStep, end - o);
          softmax_rows(log, rows, n, x + o * n, y + o * n, stats);
        }
        return;
      }
      for (int64_t o = begin; o < end; ++o)
        softmax_block(log, n, inner, x + o * block, y + o * block, stats);
    }, grain);
  };
  return std::make_unique<LambdaKernel>(run, 4.0 * double(shape_numel(xs)));
}

}  // namespace

void register_normalization_operators(OperatorRegistry& registry) {
  registry.add("BatchNormalization", 1, 22, create_batch_norm);
  registry.add("InstanceNormalization", 1, 22, create_instance_norm);
  registry.add("LayerNormalization", 1, 22, create_layer_norm);
  registry.add("LRN", 1, 22, create_lrn);
  registry.add("Softmax", 1, 22, [](KernelCreateContext& c) { return create_softmax(c, false); });
  registry.add("LogSoftmax", 1, 22, [](KernelCreateContext& c) { return create_softmax(c, true); });
}

}  // namespace tessera
