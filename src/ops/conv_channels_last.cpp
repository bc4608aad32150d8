// Channels-last (NHWC) CNN operators, made by the convert_to_channels_last pass from their NCHW
// forms (graph/passes/channels_last.cpp):
//   tessera.ConvNhwc               Conv on [N, H, W, C] with the fused bias, residual and activation
//                                  attributes of the NCHW Conv: Winograd for 3x3 stride 1, else
//                                  the direct batch-reduce kernel (primitives/conv_nhwc.h)
//   tessera.MaxPoolNhwc            MaxPool on [N, H, W, C]
//   tessera.GlobalAveragePoolNhwc  [N, H, W, C] -> [N, C, 1, 1] (the same bytes as NHWC [N, 1, 1, C],
//                                  so the region ends here without a transpose)
// The kernels have no ABFT or fault-injection hooks yet: a step run with a GEMM check refuses
// to run instead of running unchecked.
#include <algorithm>
#include <limits>
#include <memory>

#include "ops/fused_activation.h"
#include "ops/operator.h"
#include "ops/spatial_geometry.h"
#include "ops/winograd.h"
#include "primitives/conv_nhwc.h"
#include "primitives/primitives.h"

namespace tessera {

namespace {

void require_rank4_f32(const KernelCreateContext& ctx, size_t index, const char* what) {
  if (!ctx.has_input(index) || ctx.input(index).dtype != DType::f32 || ctx.input(index).shape.size() != 4)
    throw Error(ctx.describe() + ": " + what + " must be a float32 [N, H, W, C] tensor");
}

void refuse_checks(const ExecContext& context, const char* op) {
  if (context.gemm_check)
    throw Error(std::string(op) +
                ": channels-last kernels have no ABFT or fault-injection hooks yet; plan the model "
                "without channels_last to check or inject into its convolutions");
}

class ConvNhwcKernel : public Kernel {
 public:
  ConvNhwcKernel(const primitives::ConvNhwcShape& s, const float* weights, bool has_bias, int residual_input,
                 const primitives::UnaryParams& activation, int threads)
      : s_(s), has_bias_(has_bias), residual_input_(residual_input), activation_(activation) {
    const bool winograd = s.kernel_h == 3 && s.kernel_w == 3 && s.stride_h == 1 && s.stride_w == 1 &&
                          s.dilation_h == 1 && s.dilation_w == 1;
    if (winograd) {
      const WinogradProblem p = channels_last_winograd_problem(s);
      // Channels-last Winograd ran faster than the direct kernel on every 3x3 stride-1 layer of
      // ResNet-50 (bench/conv_nhwc_bench); the cost model picks the tile size.
      const WinogradVariant variant =
          estimate_conv3x3_seconds(p, 2, threads) <= estimate_conv3x3_seconds(p, 4, threads)
              ? WinogradVariant::f2x2
              : WinogradVariant::f4x4;
      winograd_ = std::make_unique<WinogradConvolution>(p, variant, weights, threads);
    } else {
      direct_ = std::make_unique<primitives::ConvNhwcWeights>(s, weights);
    }
  }

  double flops() const override {
    return 2.0 * double(s_.output_pixels()) * double(s_.out_channels) * double(s_.in_channels) *
           double(s_.taps());
  }

  void run(const std::vector<const Tensor*>& inputs, const std::vector<Tensor*>& outputs,
           ExecContext& context) override {
    refuse_checks(context, "ConvNhwc");
    const float* x = inputs[0]->data<float>();
    const float* bias = has_bias_ ? inputs[2]->data<float>() : nullptr;
    const float* residual = residual_input_ >= 0 ? inputs[size_t(residual_input_)]->data<float>() : nullptr;
    float* y = outputs[0]->data<float>();
    if (winograd_) return winograd_->run(x, bias, residual, activation_, y, context.pool);
    primitives::GemmEpilogue epilogue;
    epilogue.bias_per_column = bias;
    epilogue.residual = residual;
    epilogue.ld_residual = s_.out_channels;
    epilogue.activation = activation_;
    primitives::conv_nhwc_f32(s_, *direct_, x, &epilogue, y, &context.pool);
  }

 private:
  primitives::ConvNhwcShape s_;
  bool has_bias_;
  int residual_input_;
  primitives::UnaryParams activation_;
  std::unique_ptr<WinogradConvolution> winograd_;
  std::unique_ptr<primitives::ConvNhwcWeights> direct_;
};

std::unique_ptr<Kernel> create_conv_nhwc(KernelCreateContext& ctx) {
  require_rank4_f32(ctx, 0, "input X");
  if (!ctx.has_input(1) || ctx.input(1).dtype != DType::f32 || ctx.input(1).shape.size() != 4 ||
      !ctx.input(1).constant)
    throw Error(ctx.describe() + ": weights W must be a constant float32 [C_out, C_in, kH, kW] tensor");
  if (ctx.node.attributes.get_int("group", 1) != 1)
    throw Error(ctx.describe() + ": only one group is supported");
  const Shape& xs = ctx.input(0).shape;
  const Shape& ws = ctx.input(1).shape;
  if (ws[1] != xs[3])
    throw Error(ctx.describe() + ": weights " + shape_to_string(ws) + " do not fit input " +
                shape_to_string(xs));
  const SpatialGeometry g = resolve_window_geometry(ctx, {xs[1], xs[2]}, {ws[2], ws[3]}, WindowOptions{});
  primitives::ConvNhwcShape s;
  s.batch = xs[0];
  s.in_h = g.input[1];
  s.in_w = g.input[2];
  s.in_channels = xs[3];
  s.out_h = g.output[1];
  s.out_w = g.output[2];
  s.out_channels = ws[0];
  s.kernel_h = g.kernel[1];
  s.kernel_w = g.kernel[2];
  s.stride_h = g.stride[1];
  s.stride_w = g.stride[2];
  s.dilation_h = g.dilation[1];
  s.dilation_w = g.dilation[2];
  s.pad_top = g.pad_begin[1];
  s.pad_left = g.pad_begin[2];
  try {
    primitives::validate_conv_nhwc_shape(s);
  } catch (const std::invalid_argument& e) {
    throw Error(ctx.describe() + ": " + e.what());
  }
  const bool has_bias = ctx.has_input(2);
  if (has_bias && (ctx.input(2).dtype != DType::f32 || shape_numel(ctx.input(2).shape) != s.out_channels))
    throw Error(ctx.describe() + ": bias must hold " + std::to_string(s.out_channels) + " float32 values");
  const Shape out_shape = {s.batch, s.out_h, s.out_w, s.out_channels};
  const int64_t residual = ctx.node.attributes.get_int("tessera.residual_input", -1);
  if (residual >= 0) {
    if (residual < 3 || !ctx.has_input(size_t(residual)) || ctx.input(size_t(residual)).dtype != DType::f32 ||
        ctx.input(size_t(residual)).shape != out_shape)
      throw Error(ctx.describe() + ": the residual input must be float32 " + shape_to_string(out_shape));
  }
  ctx.set_output(0, DType::f32, out_shape);
  return std::make_unique<ConvNhwcKernel>(s, ctx.input(1).constant->data<float>(), has_bias, int(residual),
                                          fused_activation(ctx.node), ctx.pool ? ctx.pool->size() : 1);
}

std::unique_ptr<Kernel> create_max_pool_nhwc(KernelCreateContext& ctx) {
  require_rank4_f32(ctx, 0, "input X");
  const Shape xs = ctx.input(0).shape;
  WindowOptions options;
  options.ceil_mode = ctx.node.attributes.get_int("ceil_mode", 0) != 0;
  const SpatialGeometry g = resolve_window_geometry(ctx, {xs[1], xs[2]}, {}, options);
  const int64_t batch = xs[0], in_h = g.input[1], in_w = g.input[2], channels = xs[3];
  const int64_t out_h = g.output[1], out_w = g.output[2];
  ctx.set_output(0, DType::f32, {batch, out_h, out_w, channels});
  auto run = [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
                 ExecContext& context) {
    const float* x = in[0]->data<float>();
    float* y = out[0]->data<float>();
    // Per output row and tap, one element-wise max over the row's pixels x channels: the taps'
    // input pixels are stride * channels floats apart, the outputs channels apart.
    context.pool.parallel_for(batch * out_h, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t n = row / out_h, oh = row % out_h;
        float* y_row = y + row * out_w * channels;
        std::fill(y_row, y_row + out_w * channels, -std::numeric_limits<float>::infinity());
        for (int64_t kh = 0; kh < g.kernel[1]; ++kh) {
          const int64_t ih = oh * g.stride[1] + kh * g.dilation[1] - g.pad_begin[1];
          if (ih < 0 || ih >= in_h) continue;
          for (int64_t kw = 0; kw < g.kernel[2]; ++kw) {
            const int64_t offset = kw * g.dilation[2] - g.pad_begin[2];  // iw = ow * stride + offset
            int64_t lo, hi;
            valid_output_range(in_w, out_w, g.stride[2], offset, &lo, &hi);
            if (lo >= hi) continue;
            const float* x_tap = x + ((n * in_h + ih) * in_w + lo * g.stride[2] + offset) * channels;
            primitives::binary_f32(primitives::BinaryKind::max, hi - lo, channels, y_row + lo * channels,
                                   channels, 1, x_tap, g.stride[2] * channels, 1, y_row + lo * channels,
                                   channels);
          }
        }
      }
    });
  };
  return std::make_unique<LambdaKernel>(run,
                                        double(batch * out_h * out_w * channels) * double(g.kernel_size()));
}

std::unique_ptr<Kernel> create_global_average_pool_nhwc(KernelCreateContext& ctx) {
  require_rank4_f32(ctx, 0, "input X");
  const Shape xs = ctx.input(0).shape;
  const int64_t batch = xs[0], pixels = xs[1] * xs[2], channels = xs[3];
  if (pixels <= 0) throw Error(ctx.describe() + ": empty spatial dims");
  ctx.set_output(0, DType::f32, {batch, channels, 1, 1});
  auto run = [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, ExecContext&) {
    const float* x = in[0]->data<float>();
    float* y = out[0]->data<float>();
    for (int64_t n = 0; n < batch; ++n) {
      float* y_n = y + n * channels;
      primitives::reduce_cols_f32(primitives::ReduceKind::sum, pixels, channels, x + n * pixels * channels,
                                  channels, y_n);
      const float inverse = 1.f / float(pixels);
      primitives::binary_f32(primitives::BinaryKind::mul, 1, channels, y_n, channels, 1, &inverse, 0, 0, y_n,
                             channels);
    }
  };
  return std::make_unique<LambdaKernel>(run, double(batch * pixels * channels));
}

}  // namespace

void register_channels_last_operators(OperatorRegistry& registry) {
  registry.add("ConvNhwc", 1, 1000, create_conv_nhwc, "tessera");
  registry.add("MaxPoolNhwc", 1, 1000, create_max_pool_nhwc, "tessera");
  registry.add("GlobalAveragePoolNhwc", 1, 1000, create_global_average_pool_nhwc, "tessera");
}

}  // namespace tessera
