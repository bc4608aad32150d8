// Operators of the bitplane compression method, registered in the "tessera" domain:
// BitplaneConv and BitplaneMatMul (format in bitplane_quantize.h): activations quantized at run
// time, packed into bit planes (im2col for Conv) and multiplied with plan-time weight planes.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "compression/bitplane_gemm.h"
#include "compression/bitplane_quantize.h"
#include "compression/compression_operators.h"
#include "ops/operator.h"

namespace tessera {

namespace {

using compression::ActivationQuantization;
using compression::BitplaneEncoding;
using compression::BitplaneMatrix;

// What both operators share: the weights as planes, their scales, the bias and the activation rule.
struct BitplaneLayer {
  BitplaneMatrix weights;  // N rows x K
  std::vector<float> weight_scales, bias;
  int activation_bits = 8;
  bool calibrated = false;
  ActivationQuantization activation;
  bool relu = false;

  ActivationQuantization activation_for(const Tensor& x) const {
    if (calibrated) return activation;
    const float* data = x.data<float>();
    const int64_t n = x.numel();
    float lo = std::numeric_limits<float>::max(), hi = std::numeric_limits<float>::lowest();
    for (int64_t i = 0; i < n; ++i) {
      lo = std::min(lo, data[i]);
      hi = std::max(hi, data[i]);
    }
    return n ? compression::activation_quantization(lo, hi, activation_bits) : ActivationQuantization{};
  }
};

// Reads inputs 1.. (planes, scales, bias, activation scale and zero point) and the attributes.
BitplaneLayer read_layer(KernelCreateContext& ctx, int64_t N, int64_t K) {
  const Attributes& attrs = ctx.node.attributes;
  BitplaneLayer layer;
  const int weight_bits = int(attrs.get_int("weight_bits", 0));
  layer.activation_bits = int(attrs.get_int("activation_bits", 0));
  const std::string encoding_name = attrs.get_string("weight_encoding", "signed");
  if (weight_bits < 1 || weight_bits > 8 || layer.activation_bits < 1 || layer.activation_bits > 8)
    throw Error(ctx.describe() + ": weight_bits and activation_bits must be 1..8");
  if (encoding_name != "signed" && encoding_name != "binary")
    throw Error(ctx.describe() + ": weight_encoding must be 'signed' or 'binary', got '" + encoding_name + "'");
  const BitplaneEncoding encoding = encoding_name == "binary" ? BitplaneEncoding::binary : BitplaneEncoding::signed_int;
  if (encoding == BitplaneEncoding::binary && weight_bits != 1)
    throw Error(ctx.describe() + ": binary weights have one bit");
  const std::string activation = attrs.get_string("activation", "");
  if (!activation.empty() && activation != "Relu")
    throw Error(ctx.describe() + ": fused activation must be empty or 'Relu', got '" + activation + "'");
  layer.relu = activation == "Relu";

  const Tensor& planes = ctx.constant_input(1, "the weight planes");
  const int64_t row_bytes = (K + 7) / 8;
  if (planes.dtype() != DType::u8 || planes.shape() != Shape{N, weight_bits, row_bytes})
    throw Error(ctx.describe() + ": weight planes must be uint8 [" + std::to_string(N) + ", " +
                std::to_string(weight_bits) + ", " + std::to_string(row_bytes) + "], got " +
                dtype_name(planes.dtype()) + " " + shape_to_string(planes.shape()));
  layer.weights = BitplaneMatrix(N, K, weight_bits, encoding);
  const uint8_t* bytes = planes.data<uint8_t>();
  for (int64_t n = 0; n < N; ++n)
    for (int b = 0; b < weight_bits; ++b) {
      auto* plane = reinterpret_cast<uint8_t*>(layer.weights.row(n) + b * layer.weights.words_per_plane());
      std::memcpy(plane, bytes + (n * weight_bits + b) * row_bytes, size_t(row_bytes));
      // Bits past K must stay zero (the kernels count them); a file may not have cleared them.
      if (K % 8) plane[row_bytes - 1] &= uint8_t((1u << (K % 8)) - 1);
    }
  layer.weights.update_row_sums(0, N);

  auto floats = [&](size_t index, const char* what, int64_t count) {
    const Tensor& t = ctx.constant_input(index, what);
    if (t.dtype() != DType::f32 || t.numel() != count)
      throw Error(ctx.describe() + ": " + what + " must hold " + std::to_string(count) + " floats, got " +
                  dtype_name(t.dtype()) + " " + shape_to_string(t.shape()));
    return std::vector<float>(t.data<float>(), t.data<float>() + count);
  };
  layer.weight_scales = floats(2, "the weight scales", N);
  layer.bias = ctx.has_input(3) ? floats(3, "the bias", N) : std::vector<float>(size_t(N), 0.f);
  if (ctx.has_input(4) != ctx.has_input(5))
    throw Error(ctx.describe() + ": give both the activation scale and zero point (inputs 4, 5) or neither");
  if (ctx.has_input(4)) {
    layer.calibrated = true;
    layer.activation.scale = floats(4, "the activation scale", 1)[0];
    const float zero_point = floats(5, "the activation zero point", 1)[0];
    // Range first: converting an out-of-range float to int would be undefined.
    if (!(layer.activation.scale > 0.f) || !(zero_point >= 0.f && zero_point <= float((1 << layer.activation_bits) - 1)) ||
        std::nearbyint(zero_point) != zero_point)
      throw Error(ctx.describe() + ": the activation scale must be > 0 and the zero point an integer code 0 .. " +
                  std::to_string((1 << layer.activation_bits) - 1));
    layer.activation.zero_point = int32_t(zero_point);
  }
  if (ctx.input(0).dtype != DType::f32) throw Error(ctx.describe() + ": input X must be float32");
  return layer;
}

compression::BitplaneEpilogue epilogue_for(const BitplaneLayer& layer, const ActivationQuantization& q,
                                           bool weights_are_rows) {
  compression::BitplaneEpilogue e;
  e.scale = q.scale;
  e.relu = layer.relu;
  if (weights_are_rows) {
    e.x_scales = layer.weight_scales.data();
    e.y_zero_point = q.zero_point;
    e.bias_per_row = layer.bias.data();
  } else {
    e.y_scales = layer.weight_scales.data();
    e.x_zero_point = q.zero_point;
    e.bias_per_column = layer.bias.data();
  }
  return e;
}

class BitplaneMatMulKernel : public Kernel {
 public:
  BitplaneLayer layer;
  int64_t M = 0, N = 0, K = 0;

  void run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, ExecContext& context) override {
    const Tensor x = in[0]->is_contiguous() ? *in[0] : in[0]->clone();
    const ActivationQuantization q = layer.activation_for(x);
    std::vector<uint8_t> codes(static_cast<size_t>(M * K));
    compression::quantize_to_codes(x.data<float>(), M * K, q.scale, q.zero_point, layer.activation_bits, codes.data());
    BitplaneMatrix activations(M, K, layer.activation_bits, BitplaneEncoding::unsigned_int);
    compression::pack_bitplane_codes(codes.data(), K, 0, M, activations);
    compression::bitplane_gemm_f32(activations, layer.weights, out[0]->data<float>(), N, epilogue_for(layer, q, false),
                                   &context.pool);
  }
  double flops() const override { return 2.0 * double(M) * double(N) * double(K); }
};

std::unique_ptr<Kernel> create_bitplane_matmul(KernelCreateContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1) || !ctx.has_input(2))
    throw Error(ctx.describe() + ": needs X, the weight planes and the weight scales");
  const Shape& xs = ctx.input(0).shape;
  if (xs.empty()) throw Error(ctx.describe() + ": X must have rank >= 1");
  auto kernel = std::make_unique<BitplaneMatMulKernel>();
  kernel->K = xs.back();
  const Shape& planes = ctx.input(1).shape;
  if (planes.size() != 3) throw Error(ctx.describe() + ": weight planes must be rank 3 [N, bits, ceil(K/8)]");
  kernel->N = planes[0];
  if (kernel->K <= 0 || kernel->N <= 0) throw Error(ctx.describe() + ": empty depth or output channels");
  kernel->M = shape_numel(xs) / kernel->K;
  kernel->layer = read_layer(ctx, kernel->N, kernel->K);
  Shape out = xs;
  out.back() = kernel->N;
  ctx.set_output(0, DType::f32, out);
  return kernel;
}

// The weights' K reordered from ONNX's (channel, kernel row, kernel column) to (kernel row,
// kernel column, channel), the order of the channels-last im2col rows. Plan time.
BitplaneMatrix channels_last(const BitplaneMatrix& weights, int64_t channels, int64_t taps) {
  const int64_t N = weights.rows(), K = weights.depth();
  std::vector<int32_t> values(static_cast<size_t>(N * K));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t t = 0; t < taps; ++t) values[size_t(n * K + t * channels + c)] = weights.value(n, c * taps + t);
  return compression::pack_bitplanes(values.data(), N, K, K, weights.bits(), weights.encoding());
}

class BitplaneConvKernel : public Kernel {
 public:
  BitplaneLayer layer;
  int64_t batch = 0, channels = 0, height = 0, width = 0, out_channels = 0, out_height = 0, out_width = 0;
  int64_t kernel_h = 0, kernel_w = 0, stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0, pad_bottom = 0,
          pad_right = 0, dilation_h = 1, dilation_w = 1;

  int64_t depth() const { return channels * kernel_h * kernel_w; }

  // One image: quantize into a zero-point-padded channels-last copy, gather the im2col rows (one
  // copy of kernel_w * channels bytes per kernel row; the weights were reordered to match), pack
  // them and multiply: weights (rows) x pixels (columns) is the NCHW output directly.
  void run_image(const float* x, float* y, const ActivationQuantization& q, ThreadPool* pool) const {
    const int64_t pixels = out_height * out_width, K = depth();
    const int64_t padded_h = height + pad_top + pad_bottom, padded_w = width + pad_left + pad_right;
    std::vector<uint8_t> codes(static_cast<size_t>(channels * height * width));
    compression::quantize_to_codes(x, int64_t(codes.size()), q.scale, q.zero_point, layer.activation_bits,
                                   codes.data());
    std::vector<uint8_t> padded(static_cast<size_t>(padded_h * padded_w * channels), uint8_t(q.zero_point));
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t h = 0; h < height; ++h)
        for (int64_t w = 0; w < width; ++w)
          padded[size_t(((h + pad_top) * padded_w + w + pad_left) * channels + c)] =
              codes[size_t((c * height + h) * width + w)];
    std::vector<uint8_t> columns(static_cast<size_t>(pixels * K));
    for (int64_t oh = 0; oh < out_height; ++oh)
      for (int64_t ow = 0; ow < out_width; ++ow) {
        uint8_t* row = columns.data() + (oh * out_width + ow) * K;
        for (int64_t i = 0; i < kernel_h; ++i) {
          const uint8_t* source = padded.data() + ((oh * stride_h + i * dilation_h) * padded_w + ow * stride_w) * channels;
          if (dilation_w == 1) {
            std::memcpy(row, source, size_t(kernel_w * channels));
            row += kernel_w * channels;
          } else {
            for (int64_t j = 0; j < kernel_w; ++j, row += channels)
              std::memcpy(row, source + j * dilation_w * channels, size_t(channels));
          }
        }
      }
    BitplaneMatrix activations(pixels, K, layer.activation_bits, BitplaneEncoding::unsigned_int);
    compression::pack_bitplane_codes(columns.data(), K, 0, pixels, activations);
    compression::bitplane_gemm_f32(layer.weights, activations, y, pixels, epilogue_for(layer, q, true), pool);
  }

  void run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, ExecContext& context) override {
    const Tensor x = in[0]->is_contiguous() ? *in[0] : in[0]->clone();
    const ActivationQuantization q = layer.activation_for(x);
    const float* input = x.data<float>();
    float* output = out[0]->data<float>();
    const int64_t image_in = channels * height * width, image_out = out_channels * out_height * out_width;
    // Many images: one per task, each GEMM single-threaded; few: the GEMM takes the pool.
    if (batch >= context.pool.size()) {
      context.pool.run_tasks(int(batch), [&](int b) { run_image(input + b * image_in, output + b * image_out, q, nullptr); });
    } else {
      for (int64_t b = 0; b < batch; ++b) run_image(input + b * image_in, output + b * image_out, q, &context.pool);
    }
  }
  double flops() const override {
    return 2.0 * double(batch) * double(out_channels) * double(out_height * out_width) * double(depth());
  }
};

std::unique_ptr<Kernel> create_bitplane_conv(KernelCreateContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1) || !ctx.has_input(2))
    throw Error(ctx.describe() + ": needs X, the weight planes and the weight scales");
  const Shape& xs = ctx.input(0).shape;
  if (xs.size() != 4) throw Error(ctx.describe() + ": X must be 4-D NCHW, got " + shape_to_string(xs));
  const Attributes& attrs = ctx.node.attributes;
  const auto kernel_shape = attrs.get_ints("kernel_shape");
  const auto strides = attrs.get_ints("strides", {1, 1});
  const auto pads = attrs.get_ints("pads", {0, 0, 0, 0});
  const auto dilations = attrs.get_ints("dilations", {1, 1});
  if (kernel_shape.size() != 2 || strides.size() != 2 || pads.size() != 4 || dilations.size() != 2)
    throw Error(ctx.describe() + ": needs 2-D kernel_shape, strides, dilations and 4 pads");
  auto kernel = std::make_unique<BitplaneConvKernel>();
  kernel->batch = xs[0];
  kernel->channels = xs[1];
  kernel->height = xs[2];
  kernel->width = xs[3];
  kernel->kernel_h = kernel_shape[0];
  kernel->kernel_w = kernel_shape[1];
  kernel->stride_h = strides[0];
  kernel->stride_w = strides[1];
  kernel->pad_top = pads[0];
  kernel->pad_left = pads[1];
  kernel->pad_bottom = pads[2];
  kernel->pad_right = pads[3];
  kernel->dilation_h = dilations[0];
  kernel->dilation_w = dilations[1];
  for (int64_t v : {kernel->kernel_h, kernel->kernel_w, kernel->stride_h, kernel->stride_w, kernel->dilation_h,
                    kernel->dilation_w})
    if (v <= 0) throw Error(ctx.describe() + ": kernel_shape, strides and dilations must be positive");
  for (int64_t p : pads)
    if (p < 0) throw Error(ctx.describe() + ": pads must not be negative");
  const Shape& planes = ctx.input(1).shape;
  if (planes.size() != 3) throw Error(ctx.describe() + ": weight planes must be rank 3 [N, bits, ceil(K/8)]");
  kernel->out_channels = planes[0];
  const int64_t span_h = (kernel->kernel_h - 1) * kernel->dilation_h + 1,
                span_w = (kernel->kernel_w - 1) * kernel->dilation_w + 1;
  kernel->out_height = (kernel->height + pads[0] + pads[2] - span_h) / kernel->stride_h + 1;
  kernel->out_width = (kernel->width + pads[1] + pads[3] - span_w) / kernel->stride_w + 1;
  if (kernel->out_height <= 0 || kernel->out_width <= 0 || kernel->channels <= 0)
    throw Error(ctx.describe() + ": the kernel does not fit the padded input " + shape_to_string(xs));
  kernel->layer = read_layer(ctx, kernel->out_channels, kernel->depth());
  kernel->layer.weights = channels_last(kernel->layer.weights, kernel->channels, kernel->kernel_h * kernel->kernel_w);
  ctx.set_output(0, DType::f32, {kernel->batch, kernel->out_channels, kernel->out_height, kernel->out_width});
  return kernel;
}

}  // namespace

void register_bitplane_operators(OperatorRegistry& registry) {
  registry.add("BitplaneConv", 1, 1000, create_bitplane_conv, "tessera");
  registry.add("BitplaneMatMul", 1, 1000, create_bitplane_matmul, "tessera");
}

}  // namespace tessera
