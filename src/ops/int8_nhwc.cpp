// Quantized operators on u8 activations in NHWC layout, made by the lower_qdq_to_int8 pass from
// QDQ models (QuantizeLinear / DequantizeLinear around float operators): convolution as an
// implicit batch-reduce int8 GEMM over the kernel taps (VNNI where present), max and global
// average pooling, residual add, matrix products (u8 [M, K] x s8 [K, N]), and the layout changes
// at the edges of the int8 region.
// Each reproduces its QDQ subgraph: the float operator on dequantized inputs, then quantization.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/operator.h"
#include "ops/spatial_geometry.h"
#include "primitives/gemm_int8.h"
#include "primitives/primitives.h"

namespace tessera {
namespace {

namespace prim = primitives;

uint8_t quantize_u8(float x, float inverse_scale, int32_t zero_point) {
  const float q = std::nearbyint(std::min(x * inverse_scale, 1024.f)) + float(zero_point);
  return uint8_t(std::clamp(std::isnan(q) ? float(zero_point) : q, 0.f, 255.f));
}

void require_rank4(const KernelCreateContext& ctx, size_t input, DType dtype) {
  const ValueInfo& info = ctx.input(input);
  if (!info.present || info.shape.size() != 4 || info.dtype != dtype)
    throw Error(ctx.describe() + ": input " + std::to_string(input) + " must be a rank-4 " + dtype_name(dtype) +
                " tensor");
}

// ---------------------------------------------------------------- QuantizeLinearNhwc
// f32 [N, C, H, W] -> u8 [N, H, W, C]: quantize (scale, zero_point attributes) and transpose.
class QuantizeNhwcKernel : public Kernel {
 public:
  QuantizeNhwcKernel(float scale, int32_t zero_point, const Shape& x) : inverse_(1.f / scale), zero_(zero_point), x_(x) {}
  void run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, ExecContext& context) override {
    const int64_t N = x_[0], C = x_[1], HW = x_[2] * x_[3];
    const float* x = in[0]->data<float>();
    uint8_t* y = out[0]->data<uint8_t>();
    context.pool.parallel_for(N * HW, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t n = i / HW, hw = i % HW;
        const float* src = x + n * C * HW + hw;
        uint8_t* dst = y + i * C;
        for (int64_t c = 0; c < C; ++c) dst[c] = quantize_u8(src[c * HW], inverse_, zero_);
      }
    }, 64);
  }

 private:
  float inverse_;
  int32_t zero_;
  Shape x_;
};

std::unique_ptr<Kernel> create_quantize_nhwc(KernelCreateContext& ctx) {
  require_rank4(ctx, 0, DType::f32);
  const float scale = ctx.node.attributes.get_float("scale", 0.f);
  if (!(scale > 0.f)) throw Error(ctx.describe() + ": scale must be positive");
  const Shape& x = ctx.input(0).shape;
  ctx.set_output(0, DType::u8, {x[0], x[2], x[3], x[1]});
  return std::make_unique<QuantizeNhwcKernel>(scale, int32_t(ctx.node.attributes.get_int("zero_point", 0)), x);
}

// ---------------------------------------------------------------- NhwcToNchw (u8)
class NhwcToNchwKernel : public Kernel {
 public:
  explicit NhwcToNchwKernel(const Shape& x) : x_(x) {}
  void run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, ExecContext&) override {
    const int64_t N = x_[0], HW = x_[1] * x_[2], C = x_[3];
    for (int64_t n = 0; n < N; ++n)
      prim::transpose_2d(HW, C, in[0]->data<uint8_t>() + n * HW * C, C, out[0]->data<uint8_t>() + n * HW * C, HW, 1);
  }

 private:
  Shape x_;
};

std::unique_ptr<Kernel> create_nhwc_to_nchw(KernelCreateContext& ctx) {
  require_rank4(ctx, 0, DType::u8);
  const Shape& x = ctx.input(0).shape;
  ctx.set_output(0, DType::u8, {x[0], x[3], x[1], x[2]});
  return std::make_unique<NhwcToNchwKernel>(x);
}

// ---------------------------------------------------------------- Int8Conv
// Inputs: x u8 [N, H, W, Cin], w s8 [Cout, Cin, kh, kw] (constant, symmetric), w_scale f32 [Cout]
// or [1] (constant), bias f32 [Cout] (optional constant), residual u8 [N, OH, OW, Cout]
// (optional). Attributes: the Conv window attributes, x_scale, x_zero_point, y_scale,
// y_zero_point, relu; with a residual: residual_scale, residual_zero_point, sum_scale,
// sum_zero_point, relu_after_residual.
class Int8ConvKernel : public Kernel {
 public:
  Int8ConvKernel(const SpatialGeometry& g, const Shape& x, int64_t out_channels, prim::PackedInt8B packed,
                 const prim::Int8Epilogue& epilogue, bool implicit)
      : g_(g), x_(x), cout_(out_channels), packed_(std::move(packed)), prepared_(packed_, epilogue),
        implicit_(implicit) {
    pointwise_ = g.kernel_size() == 1 && g.stride[1] == 1 && g.stride[2] == 1 && g.pad_begin[1] == 0 &&
                 g.pad_begin[2] == 0 && g.pad_end[1] == 0 && g.pad_end[2] == 0;
    x_zero_ = uint8_t(epilogue.a_zero_point);
  }

  double flops() const override {
    return 2.0 * double(x_[0]) * double(g_.output_size()) * double(cout_) * double(packed_.K());
  }

  void run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, ExecContext& context) override {
    const uint8_t* x = in[0]->data<uint8_t>();
    const uint8_t* residual = in.size() > 4 && in[4] ? in[4]->data<uint8_t>() : nullptr;
    uint8_t* y = out[0]->data<uint8_t>();
    const int64_t N = x_[0], H = x_[1], W = x_[2], C = x_[3];
    const int64_t OH = g_.output[1], OW = g_.output[2];
    if (pointwise_) {
      prim::gemm_u8s8_packed(N * H * W, x, C, packed_, y, cout_, prepared_, residual, cout_, &context.pool);
      return;
    }
    // The input with its pads, filled with the zero point (a quantized 0). The buffer is kept
    // between runs: its border never changes, so only the interior is copied each time.
    const int64_t Hp = H + g_.pad_begin[1] + g_.pad_end[1], Wp = W + g_.pad_begin[2] + g_.pad_end[2];
    const uint8_t* source = x;
    int64_t source_h = H, source_w = W;
    if (Hp != H || Wp != W) {
      if (padded_.size() != size_t(N * Hp * Wp * C)) padded_.assign(size_t(N * Hp * Wp * C), x_zero_);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t h = 0; h < H; ++h)
          std::memcpy(&padded_[size_t(((n * Hp + h + g_.pad_begin[1]) * Wp + g_.pad_begin[2]) * C)],
                      x + ((n * H + h) * W) * C, size_t(W * C));
      source = padded_.data();
      source_h = Hp;
      source_w = Wp;
    }
    const int64_t kh = g_.kernel[1], kw = g_.kernel[2], taps = kh * kw;
    const int64_t lda = g_.stride[2] * C;
    context.pool.parallel_for(N * OH, [&](int64_t begin, int64_t end) {
      std::vector<const uint8_t*> windows(static_cast<size_t>(taps));
      std::vector<uint8_t> columns;
      for (int64_t row = begin; row < end; ++row) {
        const int64_t n = row / OH, oh = row % OH;
        const uint8_t* base = source + (n * source_h + oh * g_.stride[1]) * source_w * C;
        for (int64_t i = 0; i < kh; ++i)
          for (int64_t j = 0; j < kw; ++j)
            windows[size_t(i * kw + j)] = base + (i * g_.dilation[1] * source_w + j * g_.dilation[2]) * C;
        uint8_t* y_row = y + row * OW * cout_;
        const uint8_t* r_row = residual ? residual + row * OW * cout_ : nullptr;
        if (implicit_) {
          prim::brgemm_u8s8(OW, windows.data(), taps, C, lda, packed_, y_row, cout_, prepared_, r_row, cout_, nullptr);
          continue;
        }
        // Channels not a multiple of 4: gather the row's patches (K = taps * C) first. Without
        // dilation the kw taps of a kernel row are kw * C contiguous bytes: one copy each.
        const int64_t K = taps * C;
        columns.resize(size_t(OW * K));
        const bool rows_contiguous = g_.dilation[2] == 1;
        for (int64_t ow = 0; ow < OW; ++ow)
          for (int64_t i = 0; i < kh; ++i) {
            if (rows_contiguous) {
              std::memcpy(&columns[size_t(ow * K + i * kw * C)], windows[size_t(i * kw)] + ow * lda, size_t(kw * C));
              continue;
            }
            for (int64_t j = 0; j < kw; ++j)
              std::memcpy(&columns[size_t(ow * K + (i * kw + j) * C)], windows[size_t(i * kw + j)] + ow * lda, size_t(C));
          }
        const uint8_t* a = columns.data();
        prim::brgemm_u8s8(OW, &a, 1, K, K, packed_, y_row, cout_, prepared_, r_row, cout_, nullptr);
      }
    });
  }

 private:
  SpatialGeometry g_;
  Shape x_;
  int64_t cout_;
  prim::PackedInt8B packed_;
  prim::PreparedInt8Epilogue prepared_;
  bool implicit_, pointwise_ = false;
  uint8_t x_zero_ = 0;
  std::vector<uint8_t> padded_;  // the padded input, kept between runs (a plan runs one at a time)
};

std::unique_ptr<Kernel> create_int8_conv(KernelCreateContext& ctx) {
  require_rank4(ctx, 0, DType::u8);
  const Shape& x = ctx.input(0).shape;  // N, H, W, C
  const Tensor& w = ctx.constant_input(1, "weights");
  const Tensor& w_scale = ctx.constant_input(2, "weight scales");
  if (w.dtype() != DType::i8 || w.rank() != 4 || w.dim(1) != x[3])
    throw Error(ctx.describe() + ": weights must be int8 [Cout, Cin, kh, kw] with Cin = " + std::to_string(x[3]));
  const int64_t cout = w.dim(0), cin = w.dim(1), kh = w.dim(2), kw = w.dim(3);
  if (w_scale.dtype() != DType::f32 || (w_scale.numel() != 1 && w_scale.numel() != cout))
    throw Error(ctx.describe() + ": weight scales must be f32 of 1 or Cout elements");
  const Tensor* bias = nullptr;
  if (ctx.has_input(3)) {
    bias = &ctx.constant_input(3, "bias");
    if (bias->dtype() != DType::f32 || bias->numel() != cout) throw Error(ctx.describe() + ": bias must be f32 [Cout]");
  }
  if (ctx.node.attributes.get_int("group", 1) != 1) throw Error(ctx.describe() + ": only group 1 is supported");
  const SpatialGeometry g = resolve_window_geometry(ctx, {x[1], x[2]}, {kh, kw}, WindowOptions{});
  ctx.set_output(0, DType::u8, {x[0], g.output[1], g.output[2], cout});
  if (ctx.has_input(4)) {
    require_rank4(ctx, 4, DType::u8);
    if (ctx.input(4).shape != Shape{x[0], g.output[1], g.output[2], cout})
      throw Error(ctx.describe() + ": the residual must have the output's shape");
  }
  // B[k][co] with k = (i * kw + j) * Cin + ci: the taps in the order the windows are given.
  const int64_t K = kh * kw * cin;
  std::vector<int8_t> b(size_t(K * cout));
  const int8_t* wd = w.data<int8_t>();
  for (int64_t co = 0; co < cout; ++co)
    for (int64_t ci = 0; ci < cin; ++ci)
      for (int64_t t = 0; t < kh * kw; ++t) b[size_t((t * cin + ci) * cout + co)] = wd[(co * cin + ci) * kh * kw + t];
  prim::PackedInt8B packed(K, cout, b.data(), cout, false);

  const Attributes& a = ctx.node.attributes;
  const float x_scale = a.get_float("x_scale", 0.f), y_scale = a.get_float("y_scale", 0.f);
  if (!(x_scale > 0.f) || !(y_scale > 0.f)) throw Error(ctx.describe() + ": x_scale and y_scale must be positive");
  // The float convolution of dequantized operands is (acc - zx colsum) * x_scale * w_scale.
  std::vector<float> scales(static_cast<size_t>(cout));
  for (int64_t co = 0; co < cout; ++co)
    scales[size_t(co)] = x_scale * w_scale.data<float>()[w_scale.numel() == 1 ? 0 : co];
  prim::Int8Epilogue e;
  e.output = prim::Int8Epilogue::Output::u8;
  e.scale = scales.data();
  e.bias = bias ? bias->data<float>() : nullptr;
  e.a_zero_point = int32_t(a.get_int("x_zero_point", 0));
  e.relu = a.get_int("relu", 0) != 0;
  e.output_scale = y_scale;
  e.output_zero_point = int32_t(a.get_int("y_zero_point", 0));
  if (ctx.has_input(4)) {
    e.residual_scale = a.get_float("residual_scale", 0.f);
    e.residual_zero_point = int32_t(a.get_int("residual_zero_point", 0));
    e.sum_scale = a.get_float("sum_scale", 0.f);
    e.sum_zero_point = int32_t(a.get_int("sum_zero_point", 0));
    e.relu_after_residual = a.get_int("relu_after_residual", 0) != 0;
    if (!(e.residual_scale > 0.f) || !(e.sum_scale > 0.f))
      throw Error(ctx.describe() + ": residual_scale and sum_scale must be positive");
  }
  // PreparedInt8Epilogue folds scale and bias in at construction (scales may go then).
  const bool implicit = cin % 4 == 0;
  return std::make_unique<Int8ConvKernel>(g, x, cout, std::move(packed), e, implicit);
}

// ---------------------------------------------------------------- Int8MaxPool
// Max over the window commutes with the monotone quantization, so it runs on the u8 values;
// the result is requantized when the output's scale or zero point differ from the input's.
class Int8MaxPoolKernel : public Kernel {
 public:
  Int8MaxPoolKernel(const SpatialGeometry& g, const Shape& x, float ratio, int32_t x_zero, int32_t y_zero, bool same)
      : g_(g), x_(x), ratio_(ratio), x_zero_(x_zero), y_zero_(y_zero), same_(same) {}
  void run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, ExecContext& context) override {
    const int64_t H = x_[1], W = x_[2], C = x_[3], OH = g_.output[1], OW = g_.output[2];
    const uint8_t* x = in[0]->data<uint8_t>();
    uint8_t* y = out[0]->data<uint8_t>();
    context.pool.parallel_for(x_[0] * OH, [&](int64_t begin, int64_t end) {
      std::vector<uint8_t> best(static_cast<size_t>(C));
      for (int64_t row = begin; row < end; ++row) {
        const int64_t n = row / OH, oh = row % OH;
        for (int64_t ow = 0; ow < OW; ++ow) {
          std::fill(best.begin(), best.end(), uint8_t(0));
          bool any = false;
          for (int64_t i = 0; i < g_.kernel[1]; ++i) {
            const int64_t h = oh * g_.stride[1] + i * g_.dilation[1] - g_.pad_begin[1];
            if (h < 0 || h >= H) continue;
            for (int64_t j = 0; j < g_.kernel[2]; ++j) {
              const int64_t w = ow * g_.stride[2] + j * g_.dilation[2] - g_.pad_begin[2];
              if (w < 0 || w >= W) continue;
              const uint8_t* src = x + ((n * H + h) * W + w) * C;
              for (int64_t c = 0; c < C; ++c) best[size_t(c)] = std::max(best[size_t(c)], src[c]);
              any = true;
            }
          }
          uint8_t* dst = y + (row * OW + ow) * C;
          for (int64_t c = 0; c < C; ++c) {
            const uint8_t v = any ? best[size_t(c)] : uint8_t(x_zero_);
            dst[c] = same_ ? v : quantize_u8(float(int32_t(v) - x_zero_), ratio_, y_zero_);
          }
        }
      }
    });
  }

 private:
  SpatialGeometry g_;
  Shape x_;
  float ratio_;  // x_scale / y_scale
  int32_t x_zero_, y_zero_;
  bool same_;
};

std::unique_ptr<Kernel> create_int8_max_pool(KernelCreateContext& ctx) {
  require_rank4(ctx, 0, DType::u8);
  const Shape& x = ctx.input(0).shape;
  WindowOptions options;
  options.ceil_mode = ctx.node.attributes.get_int("ceil_mode", 0) != 0;
  const SpatialGeometry g = resolve_window_geometry(ctx, {x[1], x[2]}, {}, options);
  ctx.set_output(0, DType::u8, {x[0], g.output[1], g.output[2], x[3]});
  const Attributes& a = ctx.node.attributes;
  const float xs = a.get_float("x_scale", 0.f), ys = a.get_float("y_scale", 0.f);
  if (!(xs > 0.f) || !(ys > 0.f)) throw Error(ctx.describe() + ": x_scale and y_scale must be positive");
  const int32_t xz = int32_t(a.get_int("x_zero_point", 0)), yz = int32_t(a.get_int("y_zero_point", 0));
  return std::make_unique<Int8MaxPoolKernel>(g, x, xs / ys, xz, yz, xs == ys && xz == yz);
}

// ---------------------------------------------------------------- Int8GlobalAveragePool
class Int8GlobalAveragePoolKernel : public Kernel {
 public:
  Int8GlobalAveragePoolKernel(const Shape& x, float ratio, int32_t x_zero, int32_t y_zero)
      : x_(x), ratio_(ratio), x_zero_(x_zero), y_zero_(y_zero) {}
  void run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, ExecContext&) override {
    const int64_t N = x_[0], HW = x_[1] * x_[2], C = x_[3];
    std::vector<int64_t> sums(static_cast<size_t>(C));
    for (int64_t n = 0; n < N; ++n) {
      std::fill(sums.begin(), sums.end(), 0);
      const uint8_t* x = in[0]->data<uint8_t>() + n * HW * C;
      for (int64_t hw = 0; hw < HW; ++hw)
        for (int64_t c = 0; c < C; ++c) sums[size_t(c)] += x[hw * C + c];
      uint8_t* y = out[0]->data<uint8_t>() + n * C;
      for (int64_t c = 0; c < C; ++c) {
        const float mean = float(double(sums[size_t(c)]) / double(HW)) - float(x_zero_);
        y[c] = quantize_u8(mean, ratio_, y_zero_);
      }
    }
  }

 private:
  Shape x_;
  float ratio_;
  int32_t x_zero_, y_zero_;
};

std::unique_ptr<Kernel> create_int8_global_average_pool(KernelCreateContext& ctx) {
  require_rank4(ctx, 0, DType::u8);
  const Shape& x = ctx.input(0).shape;
  ctx.set_output(0, DType::u8, {x[0], 1, 1, x[3]});
  const Attributes& a = ctx.node.attributes;
  const float xs = a.get_float("x_scale", 0.f), ys = a.get_float("y_scale", 0.f);
  if (!(xs > 0.f) || !(ys > 0.f)) throw Error(ctx.describe() + ": x_scale and y_scale must be positive");
  return std::make_unique<Int8GlobalAveragePoolKernel>(x, xs / ys, int32_t(a.get_int("x_zero_point", 0)),
                                                       int32_t(a.get_int("y_zero_point", 0)));
}

// ---------------------------------------------------------------- Int8Add
// y = Q(DQ(a) + DQ(b)) [with ReLU before Q], same shapes, any layout.
class Int8AddKernel : public Kernel {
 public:
  Int8AddKernel(const float (&scales)[3], const int32_t (&zeros)[3], bool relu, int64_t count)
      : relu_(relu), count_(count) {
    std::copy(scales, scales + 3, scales_);
    std::copy(zeros, zeros + 3, zeros_);
  }
  void run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, ExecContext& context) override {
    const uint8_t* a = in[0]->data<uint8_t>();
    const uint8_t* b = in[1]->data<uint8_t>();
    uint8_t* y = out[0]->data<uint8_t>();
    const float inverse = 1.f / scales_[2];
    context.pool.parallel_for(count_, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        float sum = float(int32_t(a[i]) - zeros_[0]) * scales_[0] + float(int32_t(b[i]) - zeros_[1]) * scales_[1];
        if (relu_) sum = std::max(sum, 0.f);
        y[i] = quantize_u8(sum, inverse, zeros_[2]);
      }
    }, 4096);
  }

 private:
  float scales_[3];
  int32_t zeros_[3];
  bool relu_;
  int64_t count_;
};

std::unique_ptr<Kernel> create_int8_add(KernelCreateContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1) || ctx.input(0).dtype != DType::u8 || ctx.input(1).dtype != DType::u8 ||
      ctx.input(0).shape != ctx.input(1).shape)
    throw Error(ctx.describe() + ": inputs must be two u8 tensors of the same shape");
  ctx.set_output(0, DType::u8, ctx.input(0).shape);
  const Attributes& a = ctx.node.attributes;
  const float scales[3] = {a.get_float("a_scale", 0.f), a.get_float("b_scale", 0.f), a.get_float("y_scale", 0.f)};
  const int32_t zeros[3] = {int32_t(a.get_int("a_zero_point", 0)), int32_t(a.get_int("b_zero_point", 0)),
                            int32_t(a.get_int("y_zero_point", 0))};
  for (float s : scales)
    if (!(s > 0.f)) throw Error(ctx.describe() + ": scales must be positive");
  return std::make_unique<Int8AddKernel>(scales, zeros, a.get_int("relu", 0) != 0, shape_numel(ctx.input(0).shape));
}

// ---------------------------------------------------------------- Int8MatMul
// Inputs: a u8 [M, K], w s8 [K, N] (constant), w_scale f32 [N] or [1], bias f32 [N] (optional).
// Attributes: a_scale, a_zero_point, relu, output ("u8" with y_scale, y_zero_point, or "f32").
class Int8MatMulKernel : public Kernel {
 public:
  Int8MatMulKernel(int64_t m, prim::PackedInt8B packed, const prim::Int8Epilogue& epilogue)
      : m_(m), packed_(std::move(packed)), prepared_(packed_, epilogue) {}
  double flops() const override { return 2.0 * double(m_) * double(packed_.N()) * double(packed_.K()); }
  void run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, ExecContext& context) override {
    prim::gemm_u8s8_packed(m_, in[0]->data<uint8_t>(), packed_.K(), packed_, out[0]->raw_data(), packed_.N(),
                           prepared_, nullptr, 0, &context.pool);
  }

 private:
  int64_t m_;
  prim::PackedInt8B packed_;
  prim::PreparedInt8Epilogue prepared_;
};

std::unique_ptr<Kernel> create_int8_matmul(KernelCreateContext& ctx) {
  if (!ctx.has_input(0) || ctx.input(0).dtype != DType::u8 || ctx.input(0).shape.size() != 2)
    throw Error(ctx.describe() + ": input 0 must be a u8 matrix");
  const Tensor& w = ctx.constant_input(1, "weights");
  const Tensor& w_scale = ctx.constant_input(2, "weight scales");
  const int64_t m = ctx.input(0).shape[0], k = ctx.input(0).shape[1];
  if (w.dtype() != DType::i8 || w.rank() != 2 || w.dim(0) != k)
    throw Error(ctx.describe() + ": weights must be int8 [K, N] with K = " + std::to_string(k));
  const int64_t n = w.dim(1);
  if (w_scale.dtype() != DType::f32 || (w_scale.numel() != 1 && w_scale.numel() != n))
    throw Error(ctx.describe() + ": weight scales must be f32 of 1 or N elements");
  const Tensor* bias = ctx.has_input(3) ? &ctx.constant_input(3, "bias") : nullptr;
  if (bias && (bias->dtype() != DType::f32 || bias->numel() != n)) throw Error(ctx.describe() + ": bias must be f32 [N]");
  const Attributes& a = ctx.node.attributes;
  const float a_scale = a.get_float("a_scale", 0.f);
  if (!(a_scale > 0.f)) throw Error(ctx.describe() + ": a_scale must be positive");
  std::vector<float> scales(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) scales[size_t(i)] = a_scale * w_scale.data<float>()[w_scale.numel() == 1 ? 0 : i];
  prim::Int8Epilogue e;
  e.scale = scales.data();
  e.bias = bias ? bias->data<float>() : nullptr;
  e.a_zero_point = int32_t(a.get_int("a_zero_point", 0));
  e.relu = a.get_int("relu", 0) != 0;
  const std::string output = a.get_string("output", "f32");
  if (output == "u8") {
    e.output = prim::Int8Epilogue::Output::u8;
    e.output_scale = a.get_float("y_scale", 0.f);
    e.output_zero_point = int32_t(a.get_int("y_zero_point", 0));
    if (!(e.output_scale > 0.f)) throw Error(ctx.describe() + ": y_scale must be positive");
    ctx.set_output(0, DType::u8, {m, n});
  } else if (output == "f32") {
    e.output = prim::Int8Epilogue::Output::f32;
    ctx.set_output(0, DType::f32, {m, n});
  } else {
    throw Error(ctx.describe() + ": output must be \"u8\" or \"f32\"");
  }
  return std::make_unique<Int8MatMulKernel>(m, prim::PackedInt8B(k, n, w.data<int8_t>(), n, false), e);
}

}  // namespace

void register_int8_nhwc_operators(OperatorRegistry& registry) {
  registry.add("Int8MatMul", 1, 1000, create_int8_matmul, "tessera");
  registry.add("QuantizeLinearNhwc", 1, 1000, create_quantize_nhwc, "tessera");
  registry.add("NhwcToNchw", 1, 1000, create_nhwc_to_nchw, "tessera");
  registry.add("Int8Conv", 1, 1000, create_int8_conv, "tessera");
  registry.add("Int8MaxPool", 1, 1000, create_int8_max_pool, "tessera");
  registry.add("Int8GlobalAveragePool", 1, 1000, create_int8_global_average_pool, "tessera");
  registry.add("Int8Add", 1, 1000, create_int8_add, "tessera");
}

}  // namespace tessera
