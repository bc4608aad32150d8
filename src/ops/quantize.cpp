// 8-bit quantization operators: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear and the
// integer products MatMulInteger, QLinearMatMul, ConvInteger, QLinearConv (reference kernels).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "ops/broadcast.h"
#include "ops/dtype_dispatch.h"
#include "ops/operator.h"
#include "ops/spatial_geometry.h"

namespace tessera {
namespace {

bool is_8bit(DType d) { return d == DType::u8 || d == DType::i8; }

// Element i of an 8-bit or int32 tensor as int32.
int32_t read_quantized(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::u8:
      return t.data<uint8_t>()[i];
    case DType::i8:
      return t.data<int8_t>()[i];
    case DType::i32:
      return t.data<int32_t>()[i];
    default:
      throw Error(std::string("expected an 8-bit or int32 tensor, got ") + dtype_name(t.dtype()));
  }
}

// round-half-to-even (the ONNX rule), then saturate to the 8-bit type's range.
int32_t quantize_value(float x, float scale, int32_t zero_point, DType to) {
  float scaled = std::nearbyint(x / scale);
  int32_t lo = to == DType::u8 ? 0 : -128, hi = to == DType::u8 ? 255 : 127;
  if (std::isnan(scaled)) return std::clamp(zero_point, lo, hi);
  double q = double(scaled) + zero_point;
  return int32_t(std::clamp<double>(q, lo, hi));
}

void write_quantized(Tensor& t, int64_t i, int32_t v) {
  if (t.dtype() == DType::u8)
    t.data<uint8_t>()[i] = uint8_t(v);
  else
    t.data<int8_t>()[i] = int8_t(v);
}

// Scale and zero point are one value per tensor, or one per slice of `axis` (a 1-D tensor of the
// axis' length). Returns the number of elements between consecutive slices and the slice count.
struct QuantParams {
  bool per_axis = false;
  int64_t inner = 1, count = 1;  // channel of flat element i = (i / inner) % count
  int64_t channel(int64_t i) const { return per_axis ? (i / inner) % count : 0; }
};

QuantParams quant_params(const KernelCreateContext& ctx, const Shape& x, const Shape& scale) {
  QuantParams q;
  if (shape_numel(scale) == 1 && scale.size() <= 1) return q;
  if (scale.size() != 1) throw Error(ctx.describe() + ": the scale must be a scalar or a 1-D tensor");
  int64_t axis = normalize_axis(ctx.node.attributes.get_int("axis", 1), int64_t(x.size()), ctx.describe());
  if (x[size_t(axis)] != scale[0])
    throw Error(ctx.describe() + ": " + std::to_string(scale[0]) + " scales for axis " +
                std::to_string(axis) + " of size " + std::to_string(x[size_t(axis)]));
  q.per_axis = true;
  q.count = scale[0];
  for (size_t d = size_t(axis) + 1; d < x.size(); ++d) q.inner *= x[d];
  return q;
}

std::unique_ptr<Kernel> make_quantize_linear(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  const ValueInfo& scale = required_input(ctx, 1);
  if (x.dtype != DType::f32 && x.dtype != DType::i32)
    throw Error(ctx.describe() + ": the input must be float32 or int32");
  DType to = ctx.has_input(2) ? ctx.input(2).dtype : DType::u8;
  if (!is_8bit(to)) throw Error(ctx.describe() + ": the zero point must be uint8 or int8");
  QuantParams q = quant_params(ctx, x.shape, scale.shape);
  ctx.set_output(0, to, x.shape);
  return std::make_unique<LambdaKernel>(
      [q](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext&) {
        const float* scales = in[1]->data<float>();
        for (int64_t i = 0; i < in[0]->numel(); ++i) {
          int64_t c = q.channel(i);
          int32_t zp = in.size() > 2 && in[2] ? read_quantized(*in[2], c) : 0;
          float v = in[0]->dtype() == DType::f32 ? in[0]->data<float>()[i] : float(in[0]->data<int32_t>()[i]);
          write_quantized(*o[0], i, quantize_value(v, scales[c], zp, o[0]->dtype()));
        }
      });
}

// Dequantization of quantized weights (an 8-bit constant of rank 2 or more) is not folded at
// plan time: the lower_qdq_to_int8 pass reads the integers to run the layer in int8, and folds
// what it leaves itself.
class DequantizeKernel : public Kernel {
 public:
  DequantizeKernel(QuantParams q, bool foldable) : q_(q), foldable_(foldable) {}
  void run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext&) override {
    const float* scales = in[1]->data<float>();
    float* y = o[0]->data<float>();
    for (int64_t i = 0; i < in[0]->numel(); ++i) {
      int64_t c = q_.channel(i);
      int32_t zp = in.size() > 2 && in[2] ? read_quantized(*in[2], c) : 0;
      y[i] = float(read_quantized(*in[0], i) - zp) * scales[c];
    }
  }
  bool foldable() const override { return foldable_; }

 private:
  QuantParams q_;
  bool foldable_;
};

std::unique_ptr<Kernel> make_dequantize_linear(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  const ValueInfo& scale = required_input(ctx, 1);
  if (!is_8bit(x.dtype) && x.dtype != DType::i32)
    throw Error(ctx.describe() + ": the input must be uint8, int8 or int32");
  if (scale.dtype != DType::f32) throw Error(ctx.describe() + ": the scale must be float32");
  QuantParams q = quant_params(ctx, x.shape, scale.shape);
  ctx.set_output(0, DType::f32, x.shape);
  const bool quantized_weights = x.constant && is_8bit(x.dtype) && x.shape.size() >= 2;
  return std::make_unique<DequantizeKernel>(q, !quantized_weights);
}

// uint8 quantization with scale and zero point chosen from the data range (which always
// includes 0, so that 0 is exact).
std::unique_ptr<Kernel> make_dynamic_quantize_linear(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  if (x.dtype != DType::f32) throw Error(ctx.describe() + ": the input must be float32");
  ctx.set_output(0, DType::u8, x.shape);
  ctx.set_output(1, DType::f32, {});
  ctx.set_output(2, DType::u8, {});
  return std::make_unique<LambdaKernel>(
      [](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext&) {
        const float* x = in[0]->data<float>();
        int64_t n = in[0]->numel();
        float lo = 0, hi = 0;
        for (int64_t i = 0; i < n; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
        float scale = (hi - lo) / 255.f;
        int32_t zero_point = scale == 0 ? 0 : int32_t(std::clamp(std::nearbyint(-lo / scale), 0.f, 255.f));
        if (o[1]) o[1]->data<float>()[0] = scale;
        if (o[2]) o[2]->data<uint8_t>()[0] = uint8_t(zero_point);
        for (int64_t i = 0; i < n; ++i)
          o[0]->data<uint8_t>()[i] =
              scale == 0 ? uint8_t(zero_point) : uint8_t(quantize_value(x[i], scale, zero_point, DType::u8));
      });
}

// ---- integer matrix products ------------------------------------------------------------------

// Batched [.., M, K] x [.., K, N] with numpy-broadcast batch dims (both ranks >= 2).
struct MatMulShape {
  int64_t M = 0, N = 0, K = 0, batches = 1;
  Shape out;
  std::vector<int64_t> a_offset, b_offset;  // per output batch, in elements
};

MatMulShape matmul_shape(const KernelCreateContext& ctx, const Shape& a, const Shape& b) {
  if (a.size() < 2 || b.size() < 2) throw Error(ctx.describe() + ": both inputs need rank >= 2");
  MatMulShape s;
  s.M = a[a.size() - 2], s.K = a.back(), s.N = b.back();
  if (b[b.size() - 2] != s.K)
    throw Error(ctx.describe() + ": inner dims differ: " + shape_to_string(a) + " x " + shape_to_string(b));
  Shape a_batch(a.begin(), a.end() - 2), b_batch(b.begin(), b.end() - 2);
  Shape batch = broadcast_shapes({a_batch, b_batch}, ctx.describe());
  Shape a_strides = broadcast_strides(a_batch, batch), b_strides = broadcast_strides(b_batch, batch);
  s.batches = shape_numel(batch);
  for (int64_t i = 0; i < s.batches; ++i) {
    int64_t rest = i, ao = 0, bo = 0;
    for (size_t k = batch.size(); k-- > 0;) {
      int64_t coordinate = rest % batch[k];
      rest /= batch[k];
      ao += coordinate * a_strides[k];
      bo += coordinate * b_strides[k];
    }
    s.a_offset.push_back(ao * s.M * s.K);
    s.b_offset.push_back(bo * s.K * s.N);
  }
  s.out = batch;
  s.out.push_back(s.M);
  s.out.push_back(s.N);
  return s;
}

// acc[b, m, n] = sum_k (A[m, k] - a_zp[m]) * (B[k, n] - b_zp[n]); zero points are scalars or
// per-row (A) / per-column (B) vectors, absent ones are 0.
void integer_matmul(const MatMulShape& s, const Tensor& a, const Tensor* a_zp, const Tensor& b,
                    const Tensor* b_zp, int32_t* acc) {
  auto zp = [](const Tensor* t, int64_t i) { return t ? read_quantized(*t, t->numel() == 1 ? 0 : i) : 0; };
  for (int64_t batch = 0; batch < s.batches; ++batch)
    for (int64_t m = 0; m < s.M; ++m)
      for (int64_t n = 0; n < s.N; ++n) {
        int32_t sum = 0, azp = zp(a_zp, m), bzp = zp(b_zp, n);
        for (int64_t k = 0; k < s.K; ++k)
          sum += (read_quantized(a, s.a_offset[size_t(batch)] + m * s.K + k) - azp) *
                 (read_quantized(b, s.b_offset[size_t(batch)] + k * s.N + n) - bzp);
        acc[(batch * s.M + m) * s.N + n] = sum;
      }
}

std::unique_ptr<Kernel> make_matmul_integer(KernelCreateContext& ctx) {
  const ValueInfo& a = required_input(ctx, 0);
  const ValueInfo& b = required_input(ctx, 1);
  if (!is_8bit(a.dtype) || !is_8bit(b.dtype)) throw Error(ctx.describe() + ": inputs must be uint8 or int8");
  MatMulShape s = matmul_shape(ctx, a.shape, b.shape);
  ctx.set_output(0, DType::i32, s.out);
  return std::make_unique<LambdaKernel>(
      [s](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext&) {
        const Tensor* a_zp = in.size() > 2 ? in[2] : nullptr;
        const Tensor* b_zp = in.size() > 3 ? in[3] : nullptr;
        integer_matmul(s, *in[0], a_zp, *in[1], b_zp, o[0]->data<int32_t>());
      },
      2.0 * double(s.batches * s.M * s.N * s.K));
}

// Requantizes int32 accumulators: y = saturate(round(acc * in_scale(channel) / y_scale) + y_zp).
void requantize(const int32_t* acc, int64_t n, const std::function<float(int64_t)>& input_scale,
                float y_scale, int32_t y_zero_point, Tensor& y) {
  for (int64_t i = 0; i < n; ++i)
    write_quantized(y, i,
                    quantize_value(float(double(acc[i]) * input_scale(i)), y_scale, y_zero_point, y.dtype()));
}

// Inputs: a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point.
std::unique_ptr<Kernel> make_qlinear_matmul(KernelCreateContext& ctx) {
  for (size_t i = 0; i < 8; ++i) required_input(ctx, i);
  const ValueInfo& a = ctx.input(0);
  const ValueInfo& b = ctx.input(3);
  if (!is_8bit(a.dtype) || !is_8bit(b.dtype) || !is_8bit(ctx.input(7).dtype))
    throw Error(ctx.describe() + ": a, b and y must be uint8 or int8");
  MatMulShape s = matmul_shape(ctx, a.shape, b.shape);
  ctx.set_output(0, ctx.input(7).dtype, s.out);
  return std::make_unique<LambdaKernel>(
      [s](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext&) {
        std::vector<int32_t> acc(size_t(shape_numel(s.out)));
        integer_matmul(s, *in[0], in[2], *in[3], in[5], acc.data());
        const Tensor& a_scale = *in[1];
        const Tensor& b_scale = *in[4];
        auto scale = [&](int64_t i) {
          int64_t m = (i / s.N) % s.M, n = i % s.N;
          float as = a_scale.data<float>()[a_scale.numel() == 1 ? 0 : m];
          float bs = b_scale.data<float>()[b_scale.numel() == 1 ? 0 : n];
          return as * bs;
        };
        requantize(acc.data(), int64_t(acc.size()), scale, in[6]->data<float>()[0], read_quantized(*in[7], 0),
                   *o[0]);
      },
      2.0 * double(s.batches * s.M * s.N * s.K));
}

// ---- integer convolution ------------------------------------------------------------------------

struct IntegerConv {
  SpatialGeometry g;
  int64_t batch = 0, in_channels = 0, out_channels = 0, groups = 1;
};

IntegerConv integer_conv_shape(KernelCreateContext& ctx, const ValueInfo& x, const ValueInfo& w) {
  if (!is_8bit(x.dtype) || !is_8bit(w.dtype)) throw Error(ctx.describe() + ": x and w must be uint8 or int8");
  if (x.shape.size() < 3 || x.shape.size() > 5 || w.shape.size() != x.shape.size())
    throw Error(ctx.describe() + ": x and w must be [N, C, spatial...] with 1 to 3 spatial dims");
  IntegerConv c;
  c.batch = x.shape[0];
  c.in_channels = x.shape[1];
  c.out_channels = w.shape[0];
  c.groups = ctx.node.attributes.get_int("group", 1);
  if (c.groups < 1 || c.in_channels % c.groups != 0 || c.out_channels % c.groups != 0 ||
      w.shape[1] * c.groups != c.in_channels)
    throw Error(ctx.describe() + ": channels " + std::to_string(c.in_channels) + " and weights " +
                shape_to_string(w.shape) + " do not fit group " + std::to_string(c.groups));
  std::vector<int64_t> spatial(x.shape.begin() + 2, x.shape.end());
  std::vector<int64_t> kernel(w.shape.begin() + 2, w.shape.end());
  c.g = resolve_window_geometry(ctx, spatial, kernel, WindowOptions{});
  return c;
}

Shape integer_conv_output(const IntegerConv& c) {
  Shape out{c.batch, c.out_channels};
  for (int64_t d : c.g.output_dims()) out.push_back(d);
  return out;
}

// Direct convolution of zero-point-corrected 8-bit values into int32 accumulators (padding reads
// as the zero point, i.e. contributes 0). w_zp is a scalar or one value per output channel.
void integer_conv(const IntegerConv& c, const Tensor& x, const Tensor* x_zp, const Tensor& w,
                  const Tensor* w_zp, int32_t* acc) {
  const SpatialGeometry& g = c.g;
  int32_t xzp = x_zp ? read_quantized(*x_zp, 0) : 0;
  int64_t group_in = c.in_channels / c.groups, group_out = c.out_channels / c.groups;
  for (int64_t n = 0; n < c.batch; ++n)
    for (int64_t oc = 0; oc < c.out_channels; ++oc) {
      int64_t group = oc / group_out;
      int32_t wzp = w_zp ? read_quantized(*w_zp, w_zp->numel() == 1 ? 0 : oc) : 0;
      for (int64_t od = 0; od < g.output[0]; ++od)
        for (int64_t oh = 0; oh < g.output[1]; ++oh)
          for (int64_t ow = 0; ow < g.output[2]; ++ow) {
            int32_t sum = 0;
            for (int64_t ic = 0; ic < group_in; ++ic) {
              int64_t channel = group * group_in + ic;
              for (int64_t kd = 0; kd < g.kernel[0]; ++kd) {
                int64_t id = od * g.stride[0] + kd * g.dilation[0] - g.pad_begin[0];
                if (id < 0 || id >= g.input[0]) continue;
                for (int64_t kh = 0; kh < g.kernel[1]; ++kh) {
                  int64_t ih = oh * g.stride[1] + kh * g.dilation[1] - g.pad_begin[1];
                  if (ih < 0 || ih >= g.input[1]) continue;
                  for (int64_t kw = 0; kw < g.kernel[2]; ++kw) {
                    int64_t iw = ow * g.stride[2] + kw * g.dilation[2] - g.pad_begin[2];
                    if (iw < 0 || iw >= g.input[2]) continue;
                    int64_t xi = ((n * c.in_channels + channel) * g.input[0] + id) * g.input[1] * g.input[2] +
                                 ih * g.input[2] + iw;
                    int64_t wi = ((oc * group_in + ic) * g.kernel[0] + kd) * g.kernel[1] * g.kernel[2] +
                                 kh * g.kernel[2] + kw;
                    sum += (read_quantized(x, xi) - xzp) * (read_quantized(w, wi) - wzp);
                  }
                }
              }
            }
            acc[((n * c.out_channels + oc) * g.output[0] + od) * g.output[1] * g.output[2] +
                oh * g.output[2] + ow] = sum;
          }
    }
}

double integer_conv_flops(const IntegerConv& c) {
  return 2.0 * double(c.batch * c.out_channels * c.g.output_size() * c.g.kernel_size() *
                      (c.in_channels / c.groups));
}

std::unique_ptr<Kernel> make_conv_integer(KernelCreateContext& ctx) {
  IntegerConv c = integer_conv_shape(ctx, required_input(ctx, 0), required_input(ctx, 1));
  ctx.set_output(0, DType::i32, integer_conv_output(c));
  return std::make_unique<LambdaKernel>(
      [c](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext&) {
        const Tensor* x_zp = in.size() > 2 ? in[2] : nullptr;
        const Tensor* w_zp = in.size() > 3 ? in[3] : nullptr;
        integer_conv(c, *in[0], x_zp, *in[1], w_zp, o[0]->data<int32_t>());
      },
      integer_conv_flops(c));
}

// Inputs: x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, optional
// int32 bias (already in x_scale * w_scale units).
std::unique_ptr<Kernel> make_qlinear_conv(KernelCreateContext& ctx) {
  for (size_t i = 0; i < 8; ++i) required_input(ctx, i);
  IntegerConv c = integer_conv_shape(ctx, ctx.input(0), ctx.input(3));
  if (!is_8bit(ctx.input(7).dtype)) throw Error(ctx.describe() + ": y_zero_point must be uint8 or int8");
  Shape out = integer_conv_output(c);
  ctx.set_output(0, ctx.input(7).dtype, out);
  int64_t spatial = c.g.output_size();
  return std::make_unique<LambdaKernel>(
      [c, out, spatial](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext&) {
        std::vector<int32_t> acc(size_t(shape_numel(out)));
        integer_conv(c, *in[0], in[2], *in[3], in[5], acc.data());
        const Tensor* bias = in.size() > 8 ? in[8] : nullptr;
        float x_scale = in[1]->data<float>()[0];
        const Tensor& w_scale = *in[4];
        for (size_t i = 0; i < acc.size(); ++i)
          if (bias) acc[i] += bias->data<int32_t>()[(int64_t(i) / spatial) % c.out_channels];
        auto scale = [&](int64_t i) {
          int64_t oc = (i / spatial) % c.out_channels;
          return x_scale * w_scale.data<float>()[w_scale.numel() == 1 ? 0 : oc];
        };
        requantize(acc.data(), int64_t(acc.size()), scale, in[6]->data<float>()[0], read_quantized(*in[7], 0),
                   *o[0]);
      },
      integer_conv_flops(c));
}

}  // namespace

void register_quantize_operators(OperatorRegistry& registry) {
  registry.add("QuantizeLinear", 10, 18, make_quantize_linear);
  registry.add("DequantizeLinear", 10, 18, make_dequantize_linear);
  registry.add("DynamicQuantizeLinear", 11, 18, make_dynamic_quantize_linear);
  registry.add("MatMulInteger", 10, 18, make_matmul_integer);
  registry.add("QLinearMatMul", 10, 18, make_qlinear_matmul);
  registry.add("ConvInteger", 10, 18, make_conv_integer);
  registry.add("QLinearConv", 10, 18, make_qlinear_conv);
}

}  // namespace tessera
