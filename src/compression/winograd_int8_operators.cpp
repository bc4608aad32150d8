// Operator of the int8 Winograd compression method, registered in the "tessera" domain:
// WinogradInt8Conv (format in winograd_int8_quantize.h), a WinogradInt8Convolution built at plan time.
#include <memory>

#include "compression/winograd_int8.h"
#include "compression/winograd_int8_quantize.h"
#include "ops/operator.h"

namespace tessera {

namespace {

class WinogradInt8ConvKernel : public Kernel {
 public:
  std::unique_ptr<compression::WinogradInt8Convolution> convolution;
  std::vector<float> bias;
  bool relu = false;

  void run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, ExecContext& context) override {
    const Tensor x = in[0]->is_contiguous() ? *in[0] : in[0]->clone();
    convolution->run(x.data<float>(), bias.empty() ? nullptr : bias.data(), relu, out[0]->data<float>(), context.pool);
  }
  double flops() const override { return convolution->gemm_ops(); }
};

std::unique_ptr<Kernel> create_winograd_int8_conv(KernelCreateContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1) || !ctx.has_input(2) || !ctx.has_input(3))
    throw Error(ctx.describe() + ": needs X, weight codes, weight scales and activation scales");
  if (ctx.input(0).dtype != DType::f32) throw Error(ctx.describe() + ": input X must be float32");
  const Shape& xs = ctx.input(0).shape;
  if (xs.size() != 4) throw Error(ctx.describe() + ": X must be 4-D NCHW, got " + shape_to_string(xs));
  const Attributes& attrs = ctx.node.attributes;
  const int64_t tile = attrs.get_int("tile", 0);
  if (tile != 2 && tile != 4) throw Error(ctx.describe() + ": tile must be 2 or 4, got " + std::to_string(tile));
  const auto pads = attrs.get_ints("pads", {0, 0, 0, 0});
  if (pads.size() != 4) throw Error(ctx.describe() + ": pads must have 4 values");
  for (int64_t p : pads)
    if (p < 0 || p > 2) throw Error(ctx.describe() + ": pads must be 0..2 for a 3x3 window");
  const std::string activation = attrs.get_string("activation", "");
  if (!activation.empty() && activation != "Relu")
    throw Error(ctx.describe() + ": fused activation must be empty or 'Relu', got '" + activation + "'");

  const int64_t taps = (tile + 2) * (tile + 2);
  const Tensor& codes = ctx.constant_input(1, "the weight codes");
  if (codes.dtype() != DType::i8 || codes.rank() != 3 || codes.dim(0) != taps || codes.dim(1) != xs[1])
    throw Error(ctx.describe() + ": weight codes must be int8 [" + std::to_string(taps) + ", " +
                std::to_string(xs[1]) + ", C_out], got " + dtype_name(codes.dtype()) + " " +
                shape_to_string(codes.shape()));
  const int64_t cout = codes.dim(2);
  auto floats = [&](size_t index, const char* what, int64_t count) {
    const Tensor& t = ctx.constant_input(index, what);
    if (t.dtype() != DType::f32 || t.numel() != count)
      throw Error(ctx.describe() + ": " + what + " must hold " + std::to_string(count) + " floats, got " +
                  dtype_name(t.dtype()) + " " + shape_to_string(t.shape()));
    const Tensor c = t.is_contiguous() ? t : t.clone();
    return std::vector<float>(c.data<float>(), c.data<float>() + count);
  };
  const std::vector<float> weight_scales = floats(2, "the weight scales", taps * cout);
  const std::vector<float> activation_scales = floats(3, "the activation scales", taps);

  WinogradProblem p;
  p.batch = xs[0];
  p.in_channels = xs[1];
  p.in_h = xs[2];
  p.in_w = xs[3];
  p.out_channels = cout;
  p.pad_top = pads[0];
  p.pad_left = pads[1];
  p.out_h = p.in_h + pads[0] + pads[2] - 2;
  p.out_w = p.in_w + pads[1] + pads[3] - 2;
  if (p.out_h <= 0 || p.out_w <= 0 || cout <= 0)
    throw Error(ctx.describe() + ": the 3x3 window does not fit the padded input " + shape_to_string(xs));
  auto kernel = std::make_unique<WinogradInt8ConvKernel>();
  if (ctx.has_input(4)) kernel->bias = floats(4, "the bias", cout);
  kernel->relu = activation == "Relu";
  const Tensor contiguous_codes = codes.is_contiguous() ? codes : codes.clone();
  try {
    kernel->convolution = std::make_unique<compression::WinogradInt8Convolution>(
        p, int(tile), contiguous_codes.data<int8_t>(), weight_scales.data(), activation_scales.data());
  } catch (const Error& e) {
    throw Error(ctx.describe() + ": " + e.what());
  }
  ctx.set_output(0, DType::f32, {p.batch, cout, p.out_h, p.out_w});
  return kernel;
}

}  // namespace

void register_winograd_int8_operators(OperatorRegistry& registry) {
  if (registry.supports("WinogradInt8Conv", "tessera")) return;
  registry.add("WinogradInt8Conv", 1, 1000, create_winograd_int8_conv, "tessera");
}

}  // namespace tessera
