// tessera.AddLayerNorm, made by the fuse_add_layer_norm pass: y = LayerNorm(a + b) over the last
// axis with scale and optional bias, and (output 1, when requested) the sum a + b itself, all in
// one pass over each row while it is in L1. Attribute epsilon.
#include <cmath>

#include "ops/operator.h"
#include "primitives/primitives.h"

namespace tessera {

std::unique_ptr<Kernel> create_add_layer_norm(KernelCreateContext& ctx) {
  const std::string where = ctx.describe();
  for (size_t i = 0; i < 3; ++i)
    if (!ctx.has_input(i) || ctx.input(i).dtype != DType::f32) throw Error(where + ": A, B and Scale must be float32");
  const Shape& shape = ctx.input(0).shape;
  if (shape.empty() || ctx.input(1).shape != shape) throw Error(where + ": A and B must have the same shape");
  const int64_t columns = shape.back(), rows = shape_numel(shape) / std::max<int64_t>(1, columns);
  const bool has_bias = ctx.has_input(3);
  if (shape_numel(ctx.input(2).shape) != columns || (has_bias && shape_numel(ctx.input(3).shape) != columns))
    throw Error(where + ": Scale and B must hold " + std::to_string(columns) + " values (the last axis)");
  const float epsilon = ctx.node.attributes.get_float("epsilon", 1e-5f);
  ctx.set_output(0, DType::f32, shape);
  const bool want_sum = ctx.outputs.size() > 1 && ctx.node.outputs.size() > 1 && ctx.node.outputs[1] >= 0;
  if (want_sum) ctx.set_output(1, DType::f32, shape);
  auto run = [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, ExecContext& context) {
    const float* a = in[0]->data<float>();
    const float* b = in[1]->data<float>();
    const float* scale = in[2]->data<float>();
    const float* bias = has_bias ? in[3]->data<float>() : nullptr;
    float* y = out[0]->data<float>();
    float* sum_out = want_sum ? out[1]->data<float>() : nullptr;
    const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, columns));
    context.pool.parallel_for(rows, [&](int64_t begin, int64_t end) {
      std::vector<float> local;
      for (int64_t r = begin; r < end; ++r) {
        const float* ar = a + r * columns;
        const float* br = b + r * columns;
        float* s = sum_out ? sum_out + r * columns : nullptr;
        if (!s) {
          local.resize(size_t(columns));
          s = local.data();
        }
        // Vector passes (the primitives' sums keep many partial sums, so they are both fast and
        // more accurate than one running float): sum, mean, centred squares, normalize.
        primitives::binary_f32(primitives::BinaryKind::add, 1, columns, ar, columns, 1, br, columns, 1, s, columns);
        float total = 0, squares = 0;
        primitives::reduce_rows_f32(primitives::ReduceKind::sum, 1, columns, s, columns, &total);
        const float mean = total / float(columns);
        float* yr = y + r * columns;
        for (int64_t i = 0; i < columns; ++i) yr[i] = s[i] - mean;
        primitives::reduce_rows_f32(primitives::ReduceKind::sum_squares, 1, columns, yr, columns, &squares);
        const float inv_std = 1.f / std::sqrt(squares / float(columns) + epsilon);
        if (bias)
          for (int64_t i = 0; i < columns; ++i) yr[i] = yr[i] * inv_std * scale[i] + bias[i];
        else
          for (int64_t i = 0; i < columns; ++i) yr[i] = yr[i] * inv_std * scale[i];
      }
    }, grain);
  };
  return std::make_unique<LambdaKernel>(run, 9.0 * double(rows * columns));
}

}  // namespace tessera
