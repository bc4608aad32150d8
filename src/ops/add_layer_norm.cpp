// tessera.AddLayerNorm, made by the fuse_add_layer_norm pass: y = LayerNorm(a + b) over the last
// axis with scale and optional bias, and (output 1, when requested) the sum a + b itself, all in
// one pass over each row while it is in L1. Attribute epsilon.

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
      const int64_t offset = begin * columns;
      primitives::add_layer_norm_rows_f32(end - begin, columns, a + offset, b + offset, columns,
                                          sum_out ? sum_out + offset : nullptr, scale, bias, epsilon, y + offset);
    }, grain);
  };
  return std::make_unique<LambdaKernel>(run, 9.0 * double(rows * columns));
}

}  // namespace tessera
