// Conv (1-D/2-D/3-D, groups, dilations, pads, auto_pad) in NCHW built on the GEMM primitive:
// 1x1 stride-1 is one GEMM, depthwise is a direct loop, 3x3 stride-1 may use Winograd (chosen by
// cost), the rest is GEMM over bounded im2col tiles.
#include "ops/conv.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "ops/conv_depthwise.h"
#include "ops/conv_small_channels.h"
#include "ops/fused_activation.h"
#include "ops/operator.h"
#include "ops/spatial_geometry.h"
#include "ops/winograd.h"
#include "primitives/primitives.h"

namespace tessera {

void register_conv_transpose_operators(OperatorRegistry& registry);  // conv_transpose.cpp

void depthwise_plane_f32(const DepthwisePlaneShape& shape, const float* input, const float* weights,
                         float bias, float* output) {
  switch (primitives::active_isa()) {
    case primitives::Isa::avx512: return depthwise_avx512::plane(shape, input, weights, bias, output);
    case primitives::Isa::avx2: return depthwise_avx2::plane(shape, input, weights, bias, output);
    default: return depthwise_scalar::plane(shape, input, weights, bias, output);
  }
}

namespace {

using primitives::GemmEpilogue;

enum class ConvAlgorithm { pointwise, depthwise, im2col, small_channels, winograd_f2x2, winograd_f4x4 };

const char* algorithm_name(ConvAlgorithm a) {
  switch (a) {
    case ConvAlgorithm::pointwise: return "pointwise";
    case ConvAlgorithm::depthwise: return "depthwise";
    case ConvAlgorithm::im2col: return "im2col";
    case ConvAlgorithm::small_channels: return "small_channels";
    case ConvAlgorithm::winograd_f2x2: return "winograd_f2x2";
    case ConvAlgorithm::winograd_f4x4: return "winograd_f4x4";
  }
  return "";
}

// What the user asked for (attribute, else TESSERA_CONV_ALGO, else the cost model).
enum class AlgorithmRequest { automatic, direct, winograd2, winograd4 };

// What to compute, resolved at plan time from the node and the input shapes.
struct ConvDescriptor {
  int64_t batch = 0, in_channels = 0, out_channels = 0, groups = 1;
  SpatialGeometry geometry;
  bool has_bias = false;
  int residual_input = -1;  // input index of a tensor added before the activation, -1 if none
  primitives::UnaryParams activation;
  AlgorithmRequest request = AlgorithmRequest::automatic;

  int64_t in_per_group() const { return in_channels / groups; }
  int64_t out_per_group() const { return out_channels / groups; }
  int64_t gemm_k() const { return in_per_group() * geometry.kernel_size(); }
};

// The im2col buffer holds gemm_k x (rows * output width) floats; this bounds it (~512 KiB)
// so a tile stays in L2 while the GEMM packs it.
constexpr int64_t kIm2colBudgetFloats = 128 * 1024;
// Below this many GEMM columns per tile the microkernel runs mostly on tails; then it is better
// to let the GEMM itself parallelize over a larger tile.
constexpr int64_t kMinColumnsPerThreadTile = 96;
// Output planes up to this size run pixel-major (see run_pixel_major): with few output pixels the
// weight-major GEMM has a narrow N (49 columns fill 64: 77% of its 32-wide tiles) and repacks the
// weights on every run, while pixel-major fills 14-row tiles (49 of 56) and reads weights packed
// at plan time. Measured on ResNet-50: 7x7 planes gain 20-25%, 14x14 planes already lose 15%.
constexpr int64_t kPixelMajorMaxPlane = 100;
// Depthwise planes of at least this many output rows are split over the threads by bands of rows
// (see run_depthwise); smaller ones by whole planes: on MobileNetV2's 28x28 to 7x7 planes the
// bands cost more in per-call overhead (7-row bands of 14x14) than they saved.
constexpr int64_t kDepthwiseBandMinRows = 56;

// Row strides that are multiples of 1 KiB alias the GEMM's A rows in L1 (it then copies A);
// one extra vector of padding avoids that.
int64_t padded_row_stride(int64_t floats) {
  const int64_t padded = (std::max<int64_t>(floats, 1) + 15) / 16 * 16;
  return padded % 256 == 0 ? padded + 16 : padded;
}

// Grow-only per-thread buffers, so repeated runs do not allocate.
thread_local std::vector<float> column_scratch, product_scratch, phase_scratch;
float* scratch(std::vector<float>& buffer, size_t floats) {
  if (buffer.size() < floats) buffer.resize(floats);
  return buffer.data();
}

class ConvKernel : public Kernel {
 public:
  // constant_weights: the weights when known at plan time (Winograd needs them), else nullptr.
  ConvKernel(ConvDescriptor d, const Tensor* constant_weights, int threads) : d_(std::move(d)) {
    const SpatialGeometry& g = d_.geometry;
    bool unit_window = true;
    for (int i = 0; i < 3; ++i)
      unit_window = unit_window && g.kernel[i] == 1 && g.stride[i] == 1 && g.pad_begin[i] == 0 &&
                    g.pad_end[i] == 0;
    if (unit_window)
      algorithm_ = ConvAlgorithm::pointwise;
    else if (d_.in_per_group() == 1)
      algorithm_ = ConvAlgorithm::depthwise;
    else
      algorithm_ = ConvAlgorithm::im2col;
    // A single input channel with one group is "depthwise" too, but Winograd serves it as well.
    if (algorithm_ != ConvAlgorithm::pointwise && constant_weights) plan_winograd(*constant_weights, threads);
    if (algorithm_ == ConvAlgorithm::im2col && constant_weights) plan_small_channels(*constant_weights);
    if ((algorithm_ == ConvAlgorithm::pointwise || algorithm_ == ConvAlgorithm::im2col) && constant_weights &&
        g.output_size() <= kPixelMajorMaxPlane) {
      // B = W_g^T [K x C_out_g] for each group, packed once.
      const float* w = constant_weights->data<float>();
      const int64_t k = d_.gemm_k(), cout = d_.out_per_group();
      for (int64_t grp = 0; grp < d_.groups; ++grp)
        packed_weights_.emplace_back(k, cout, w + grp * cout * k, k, true);
    }
    if ((algorithm_ == ConvAlgorithm::pointwise || algorithm_ == ConvAlgorithm::im2col) && constant_weights &&
        packed_weights_.empty()) {
      // For a global ABFT check of the weight-major GEMMs: the weights' column sums, once.
      const float* w = constant_weights->data<float>();
      const int64_t k = d_.gemm_k(), cout = d_.out_per_group();
      weight_column_sums_.assign(size_t(2 * d_.groups * k), 0.f);
      for (int64_t grp = 0; grp < d_.groups; ++grp)
        for (int64_t co = 0; co < cout; ++co)
          for (int64_t i = 0; i < k; ++i) {
            const float v = w[(grp * cout + co) * k + i];
            weight_column_sums_[size_t(grp * k + i)] += v;
            weight_column_sums_[size_t((d_.groups + grp) * k + i)] += std::fabs(v);
          }
    }
    for (int i = 0; i < 3; ++i) {
      depthwise_shape_.input[i] = g.input[i];
      depthwise_shape_.output[i] = g.output[i];
      depthwise_shape_.kernel[i] = g.kernel[i];
      depthwise_shape_.stride[i] = g.stride[i];
      depthwise_shape_.dilation[i] = g.dilation[i];
      depthwise_shape_.pad_begin[i] = g.pad_begin[i];
    }
    // Per horizontal tap, the output columns whose input column is inside the image.
    for (int64_t kw = 0; kw < g.kernel[2]; ++kw) {
      int64_t lo, hi;
      valid_output_range(g.input[2], g.output[2], g.stride[2], kw * g.dilation[2] - g.pad_begin[2],
                         &lo, &hi);
      column_lo_.push_back(lo);
      column_hi_.push_back(hi);
    }
    const int64_t rows = g.output[0] * g.output[1];
    tile_rows_ = std::clamp<int64_t>(kIm2colBudgetFloats / std::max<int64_t>(1, d_.gemm_k() * g.output[2]),
                                     1, rows);
  }

  ConvAlgorithm algorithm() const { return algorithm_; }

  double flops() const override {
    return 2.0 * double(d_.batch) * double(d_.out_channels) * double(d_.geometry.output_size()) *
           double(d_.gemm_k());
  }

  void run(const std::vector<const Tensor*>& inputs, const std::vector<Tensor*>& outputs,
           ExecContext& context) override {
    const float* x = inputs[0]->data<float>();
    const float* w = inputs[1]->data<float>();
    const float* bias = d_.has_bias ? inputs[2]->data<float>() : nullptr;
    const float* residual = d_.residual_input >= 0 ? inputs[size_t(d_.residual_input)]->data<float>()
                                                   : nullptr;
    float* y = outputs[0]->data<float>();
    switch (algorithm_) {
      case ConvAlgorithm::pointwise:
        if (!packed_weights_.empty()) return run_pixel_major(x, bias, residual, y, context.pool, context.gemm_check);
        return run_pointwise(x, w, bias, residual, y, context.pool, context.gemm_check);
      case ConvAlgorithm::depthwise: return run_depthwise(x, w, bias, residual, y, context.pool);
      case ConvAlgorithm::im2col:
        if (!packed_weights_.empty()) return run_pixel_major(x, bias, residual, y, context.pool, context.gemm_check);
        return run_im2col(x, w, bias, residual, y, context.pool, context.gemm_check);
      case ConvAlgorithm::small_channels:
        // ABFT's checks live in the GEMM driver, and the kernel is AVX-512 only (the ISA can be
        // switched after planning): then im2col serves the layer. A hook-only check (the fault
        // injector's accumulator site, with no ABFT) stays here, so that the injected run
        // computes this layer exactly as the clean run did.
        if ((context.gemm_check && context.gemm_check->scheme != primitives::GemmCheckScheme::hook_only) ||
            !SmallChannelConv::runs_on_active_isa())
          return run_im2col(x, w, bias, residual, y, context.pool, context.gemm_check);
        for (int64_t n = 0; n < d_.batch; ++n) {
          const int64_t in_offset = n * d_.in_channels * d_.geometry.input_size();
          const int64_t out_offset = n * d_.out_channels * d_.geometry.output_size();
          small_channels_->run(x + in_offset, bias, residual ? residual + out_offset : nullptr, d_.activation,
                               context.gemm_check ? context.gemm_check->fault_hook : nullptr,
                               context.gemm_check ? context.gemm_check->fault_context : nullptr, y + out_offset,
                               context.pool);
        }
        return;
      case ConvAlgorithm::winograd_f2x2:
      case ConvAlgorithm::winograd_f4x4:
        return winograd_->run(x, bias, residual, d_.activation, y, context.pool, context.gemm_check);
    }
  }

 private:
  // Few input channels (a network's stem), one group, dilation 1, 1-D or 2-D, a plane too large
  // for pixel-major: the direct kernel of conv_small_channels.h instead of im2col + GEMM.
  void plan_small_channels(const Tensor& weights) {
    const SpatialGeometry& g = d_.geometry;
    if (d_.groups != 1 || g.input[0] != 1 || g.kernel[0] != 1 || g.output[0] != 1 || g.pad_begin[0] != 0 ||
        g.dilation[1] != 1 || g.dilation[2] != 1 || g.output_size() <= kPixelMajorMaxPlane)
      return;
    SmallChannelConvShape shape;
    shape.in_channels = d_.in_channels;
    shape.in_h = g.input[1];
    shape.in_w = g.input[2];
    shape.out_channels = d_.out_channels;
    shape.out_h = g.output[1];
    shape.out_w = g.output[2];
    shape.kernel_h = g.kernel[1];
    shape.kernel_w = g.kernel[2];
    shape.stride_h = g.stride[1];
    shape.stride_w = g.stride[2];
    shape.pad_top = g.pad_begin[1];
    shape.pad_left = g.pad_begin[2];
    if (!small_channel_conv_fits(shape)) return;
    small_channels_ = std::make_unique<SmallChannelConv>(shape, weights.data<float>());
    algorithm_ = ConvAlgorithm::small_channels;
  }

  // Switches a 3x3 stride-1 dilation-1 single-group 2-D convolution to Winograd when forced or
  // when the cost model expects it to be faster than im2col + GEMM.
  void plan_winograd(const Tensor& weights, int threads) {
    const SpatialGeometry& g = d_.geometry;
    const bool eligible = g.input[0] == 1 && g.kernel[0] == 1 && g.kernel[1] == 3 && g.kernel[2] == 3 &&
                          g.stride[1] == 1 && g.stride[2] == 1 && g.dilation[1] == 1 &&
                          g.dilation[2] == 1 && d_.groups == 1 && g.rank >= 2;
    if (!eligible || d_.request == AlgorithmRequest::direct) return;
    WinogradProblem p;
    p.batch = d_.batch;
    p.in_channels = d_.in_channels;
    p.out_channels = d_.out_channels;
    p.in_h = g.input[1];
    p.in_w = g.input[2];
    p.out_h = g.output[1];
    p.out_w = g.output[2];
    p.pad_top = g.pad_begin[1];
    p.pad_left = g.pad_begin[2];
    int variant = 0;
    if (d_.request == AlgorithmRequest::winograd2) variant = 2;
    else if (d_.request == AlgorithmRequest::winograd4) variant = 4;
    else {
      // The estimate depends on the plan's threads (weights that do not fit in L2 stream at the
      // same speed on any number of threads): a large layer may take Winograd on one thread and
      // im2col + GEMM on two, with the rounding of each.
      double best = estimate_conv3x3_seconds(p, 0, threads);
      for (int candidate : {2, 4}) {
        const double seconds = estimate_conv3x3_seconds(p, candidate, threads);
        if (seconds < best) {
          best = seconds;
          variant = candidate;
        }
      }
    }
    if (variant == 0) return;
    winograd_ = std::make_unique<WinogradConvolution>(
        p, variant == 2 ? WinogradVariant::f2x2 : WinogradVariant::f4x4, weights.data<float>(), threads);
    algorithm_ = variant == 2 ? ConvAlgorithm::winograd_f2x2 : ConvAlgorithm::winograd_f4x4;
  }

  GemmEpilogue epilogue_for(const float* bias, const float* residual, int64_t channel_offset,
                            int64_t residual_offset, const primitives::GemmCheck* check) const {
    GemmEpilogue e;
    e.check = check;
    if (check && !weight_column_sums_.empty()) {
      const int64_t group = channel_offset / d_.out_per_group(), k = d_.gemm_k();
      e.check_a_column_sums = weight_column_sums_.data() + group * k;
      e.check_a_column_abs_sums = weight_column_sums_.data() + (d_.groups + group) * k;
    }
    e.bias_per_row = bias ? bias + channel_offset : nullptr;
    e.residual = residual ? residual + residual_offset : nullptr;
    e.ld_residual = d_.geometry.output_size();
    e.activation = d_.activation;
    return e;
  }

  // Y_g[C_out_g, HW] = W_g[C_out_g, C_in_g] * X_g[C_in_g, HW]: the input is used in place.
  void run_pointwise(const float* x, const float* w, const float* bias, const float* residual,
                     float* y, ThreadPool& pool, const primitives::GemmCheck* check) const {
    const int64_t hw = d_.geometry.output_size();
    const int64_t cin = d_.in_per_group(), cout = d_.out_per_group();
    const int64_t problems = d_.batch * d_.groups;
    auto one = [&](int64_t p, ThreadPool* gemm_pool) {
      const int64_t n = p / d_.groups, g = p % d_.groups;
      const int64_t out_offset = (n * d_.out_channels + g * cout) * hw;
      GemmEpilogue e = epilogue_for(bias, residual, g * cout, out_offset, check);
      primitives::gemm_f32(false, false, cout, hw, cin, 1.f, w + g * cout * cin, cin,
                           x + (n * d_.in_channels + g * cin) * hw, hw, 0.f, y + out_offset, hw,
                           gemm_pool, &e);
    };
    if (problems >= pool.size() && problems > 1) {
      pool.parallel_for(problems, [&](int64_t begin, int64_t end) {
        for (int64_t p = begin; p < end; ++p) one(p, nullptr);
      });
    } else {
      for (int64_t p = 0; p < problems; ++p) one(p, &pool);
    }
  }

  void run_depthwise(const float* x, const float* w, const float* bias, const float* residual,
                     float* y, ThreadPool& pool) const {
    const int64_t in_plane = d_.geometry.input_size(), out_plane = d_.geometry.output_size();
    const int64_t ksize = d_.geometry.kernel_size();
    const int64_t multiplier = d_.out_per_group();  // output channels per input channel
    const int64_t planes = d_.batch * d_.out_channels;
    // Residual and clamp-like activations (Relu, Clip) are applied in the kernel's store; other
    // activations run after it, on the plane while it is still in cache.
    DepthwiseEpilogue epilogue;
    const bool has_activation = !depthwise_epilogue_for(d_.activation, &epilogue);
    // Plane p's operands (p = n * out_channels + co; input channel co / multiplier).
    struct PlaneOperands {
      const float *input, *weights;
      float bias;
      DepthwiseEpilogue epilogue;
      float* output;
    };
    auto operands = [&](int64_t p) {
      const int64_t n = p / d_.out_channels, co = p % d_.out_channels;
      PlaneOperands o{x + (n * d_.in_channels + co / multiplier) * in_plane, w + co * ksize,
                      bias ? bias[co] : 0.f, epilogue, y + p * out_plane};
      o.epilogue.residual = residual ? residual + p * out_plane : nullptr;
      return o;
    };
    const int threads = pool.size();
    const int64_t rows = depthwise_shape_.output[1];
    // An empty range asks whether the active ISA has a row-range kernel for this shape. Bands
    // only with a clamp (or no) activation: any other runs after the kernel, on whole planes.
    if (threads > 1 && rows >= kDepthwiseBandMinRows && !has_activation &&
        depthwise_plane_rows_fused_f32(depthwise_shape_, nullptr, nullptr, 0.f, epilogue, nullptr, 0, 0)) {
      // Each thread takes the same band of rows of every plane: the band of pixels that the 1x1
      // convolutions around this one give the same thread (their GEMMs split the pixels on a
      // fixed thread each, ThreadPool::run_pinned), so each core reads what it wrote. Split by
      // planes, each core read half of its input from the other core's cache (MobileNetV2 at 2
      // threads: its projections after a depthwise layer scaled 1.0-1.3x).
      pool.run_pinned([&](int t) {
        const int64_t r0 = rows * t / threads, r1 = rows * (t + 1) / threads;
        for (int64_t p = 0; p < planes; ++p) {
          const PlaneOperands o = operands(p);
          depthwise_plane_rows_fused_f32(depthwise_shape_, o.input, o.weights, o.bias, o.epilogue, o.output,
                                         r0, r1);
        }
      });
      return;
    }
    pool.parallel_for(planes, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const PlaneOperands o = operands(p);
        depthwise_plane_fused_f32(depthwise_shape_, o.input, o.weights, o.bias, o.epilogue, o.output);
        if (has_activation) primitives::unary_f32(d_.activation, out_plane, o.output, o.output);
      }
    });
  }

  // Writes im2col rows for output rows [r0, r1) (a row is one (od, oh) pair) and input channels
  // [c0, c1): column layout is col[(ci - c0, kd, kh, kw), (r - r0) * W_out + ow] with row length
  // `columns`. With `phases_group` (see uses_column_phases), strided taps copy contiguous runs of
  // the input rows' column phases instead of gathering every other element.
  void im2col_tile(const float* x_group, const float* phases_group, int64_t r0, int64_t r1, float* col) const {
    im2col_channels(x_group, phases_group, 0, d_.in_per_group(), r0, r1, col);
  }
  void im2col_channels(const float* x_group, const float* phases_group, int64_t c0, int64_t c1, int64_t r0,
                       int64_t r1, float* col) const {
    const SpatialGeometry& g = d_.geometry;
    const int64_t out_w = g.output[2], columns = (r1 - r0) * out_w;
    const int64_t in_plane = g.input_size(), half_w = phase_width(), phase_channel = phase_channel_floats();
    int64_t row = 0;
    for (int64_t ci = c0; ci < c1; ++ci) {
      const float* plane = x_group + ci * in_plane;
      for (int64_t kd = 0; kd < g.kernel[0]; ++kd)
        for (int64_t kh = 0; kh < g.kernel[1]; ++kh)
          for (int64_t kw = 0; kw < g.kernel[2]; ++kw, ++row) {
            float* dst_row = col + row * columns;
            const int64_t tap = kw * g.dilation[2] - g.pad_begin[2];
            const int64_t lo = column_lo_[size_t(kw)], hi = column_hi_[size_t(kw)];
            // Input column 2 * ow + tap is element ow + (tap - phase) / 2 of phase `phase`.
            const int64_t phase = tap & 1, phase_offset = (tap - phase) / 2;
            for (int64_t r = r0; r < r1; ++r) {
              float* dst = dst_row + (r - r0) * out_w;
              const int64_t od = r / g.output[1], oh = r % g.output[1];
              const int64_t id = od * g.stride[0] + kd * g.dilation[0] - g.pad_begin[0];
              const int64_t ih = oh * g.stride[1] + kh * g.dilation[1] - g.pad_begin[1];
              if (id < 0 || id >= g.input[0] || ih < 0 || ih >= g.input[1] || lo >= hi) {
                std::memset(dst, 0, size_t(out_w) * sizeof(float));
                continue;
              }
              const int64_t in_row = id * g.input[1] + ih;
              const float* src = plane + in_row * g.input[2];
              if (lo > 0) std::memset(dst, 0, size_t(lo) * sizeof(float));
              if (g.stride[2] == 1) {
                std::memcpy(dst + lo, src + lo + tap, size_t(hi - lo) * sizeof(float));
              } else if (phases_group) {
                const float* phase_row = phases_group + ci * phase_channel + (in_row * 2 + phase) * half_w;
                std::memcpy(dst + lo, phase_row + lo + phase_offset, size_t(hi - lo) * sizeof(float));
              } else {
                for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * g.stride[2] + tap];
              }
              if (hi < out_w) std::memset(dst + hi, 0, size_t(out_w - hi) * sizeof(float));
            }
          }
    }
  }

  // Stride-2 windows wider than one column read each input row several times at every other
  // element: splitting the rows once into their even and odd columns makes every tap a
  // contiguous copy (ResNet-50's 3x3 stride-2 layers spent a quarter of their time gathering).
  bool uses_column_phases() const {
    const SpatialGeometry& g = d_.geometry;
    return g.stride[2] == 2 && g.dilation[2] == 1 && g.kernel[2] > 1;
  }
  // Floats per phase row (the even phase's length), and per channel of the split input.
  int64_t phase_width() const { return (d_.geometry.input[2] + 1) / 2; }
  int64_t phase_channel_floats() const {
    return 2 * phase_width() * d_.geometry.input[0] * d_.geometry.input[1];
  }
  // Splits every input row of every image and channel into its two column phases: row r of
  // channel c goes to phases[((c * rows) + r) * 2 + p][j] = x[c][r][2j + p], on the pool.
  const float* split_column_phases(const float* x, ThreadPool& pool) const {
    const SpatialGeometry& g = d_.geometry;
    const int64_t in_w = g.input[2], half_w = phase_width();
    const int64_t rows = d_.batch * d_.in_channels * g.input[0] * g.input[1];
    float* phases = scratch(phase_scratch, size_t(rows * 2 * half_w));
    pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float* src = x + r * in_w;
        float* even = phases + r * 2 * half_w;
        float* odd = even + half_w;
        for (int64_t j = 0; j < in_w / 2; ++j) {
          even[j] = src[2 * j];
          odd[j] = src[2 * j + 1];
        }
        if (in_w % 2) even[half_w - 1] = src[in_w - 1];
      }
    }, 64);
    return phases;
  }

  void run_im2col(const float* x, const float* w, const float* bias, const float* residual,
                  float* y, ThreadPool& pool, const primitives::GemmCheck* check) const {
    const SpatialGeometry& g = d_.geometry;
    const int64_t rows = g.output[0] * g.output[1], out_w = g.output[2];
    const int64_t out_plane = g.output_size(), in_plane = g.input_size();
    const int64_t k = d_.gemm_k(), cin = d_.in_per_group(), cout = d_.out_per_group();
    const int64_t images = d_.batch * d_.groups;
    // Prefer independent tiles (im2col and GEMM both parallel) when each thread still gets a
    // GEMM wide enough for the microkernel; otherwise one GEMM at a time over the whole pool.
    const int64_t threads = pool.size();
    const int64_t rows_per_thread = (images * rows + threads - 1) / threads;
    bool tile_parallel = threads > 1 && rows_per_thread * out_w >= kMinColumnsPerThreadTile;
    int64_t tiles_per_image = (rows + tile_rows_ - 1) / tile_rows_;
    // Tiles are handed out in contiguous chunks, so their count must divide evenly among the
    // threads (7 tiles on 2 threads run 4 against 3); rows are spread so tiles differ by at most one.
    if (tile_parallel)
      while ((images * tiles_per_image) % threads != 0 && tiles_per_image < rows) ++tiles_per_image;
    const int64_t tasks = images * tiles_per_image;
    if (tasks < threads) tile_parallel = false;
    const int64_t tile_rows = (rows + tiles_per_image - 1) / tiles_per_image;  // the largest tile

    const float* phases = uses_column_phases() ? split_column_phases(x, pool) : nullptr;
    auto do_tile = [&](int64_t task, float* col, ThreadPool* gemm_pool) {
      const int64_t image = task / tiles_per_image, tile = task % tiles_per_image;
      const int64_t n = image / d_.groups, grp = image % d_.groups;
      const int64_t r0 = tile * rows / tiles_per_image, r1 = (tile + 1) * rows / tiles_per_image;
      const int64_t columns = (r1 - r0) * out_w;
      const int64_t first_channel = n * d_.in_channels + grp * cin;
      const float* phases_group = phases ? phases + first_channel * phase_channel_floats() : nullptr;
      im2col_tile(x + first_channel * in_plane, phases_group, r0, r1, col);
      const int64_t out_offset = (n * d_.out_channels + grp * cout) * out_plane + r0 * out_w;
      GemmEpilogue e = epilogue_for(bias, residual, grp * cout, out_offset, check);
      primitives::gemm_f32(false, false, cout, columns, k, 1.f, w + grp * cout * k, k, col, columns,
                           0.f, y + out_offset, out_plane, gemm_pool, &e);
    };
    const size_t buffer_floats = size_t(k * tile_rows * out_w);
    if (tile_parallel) {
      // Per-thread grow-only buffers: a fresh vector would be zeroed and faulted in every run.
      pool.parallel_for(tasks, [&](int64_t begin, int64_t end) {
        float* col = scratch(column_scratch, buffer_floats);
        for (int64_t t = begin; t < end; ++t) do_tile(t, col, nullptr);
      });
    } else {
      float* col = scratch(column_scratch, buffer_floats);
      for (int64_t t = 0; t < tasks; ++t) do_tile(t, col, &pool);
    }
  }

  // Y^T[pixels x C_out] = X^T[pixels x K] * W^T[K x C_out]: the constant weights are the packed B
  // operand, and the input columns (the image itself for 1x1, else im2col rows) are A given
  // transposed, which the GEMM's packing reads as they are; the product is transposed back into
  // the NCHW planes, then residual and activation. Each step is split over the whole pool (input
  // channels for im2col, the GEMM's own grid, output channels): these planes are small, so
  // splitting by pixels would leave a thread idle (7 rows do not halve).
  void run_pixel_major(const float* x, const float* bias, const float* residual, float* y,
                       ThreadPool& pool, const primitives::GemmCheck* check) const {
    const SpatialGeometry& g = d_.geometry;
    const int64_t rows = g.output[0] * g.output[1];
    const int64_t pixels = g.output_size(), in_plane = g.input_size();
    const int64_t k = d_.gemm_k(), cin = d_.in_per_group(), cout = d_.out_per_group();
    const int64_t taps = g.kernel_size();
    const int64_t ldy = padded_row_stride(cout);
    const bool pointwise = algorithm_ == ConvAlgorithm::pointwise;
    const bool has_activation = d_.activation.kind != primitives::UnaryKind::identity;
    // The calling thread's buffers, shared with the workers for the duration of this call.
    float* columns = pointwise ? nullptr : scratch(column_scratch, size_t(k * pixels));
    float* product = scratch(product_scratch, size_t(pixels * ldy));
    // Enough channels per chunk that a chunk is worth a wake-up.
    const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, pixels * taps));
    const float* phases = !pointwise && uses_column_phases() ? split_column_phases(x, pool) : nullptr;
    for (int64_t image = 0; image < d_.batch * d_.groups; ++image) {
      const int64_t n = image / d_.groups, grp = image % d_.groups;
      const float* x_group = x + (n * d_.in_channels + grp * cin) * in_plane;
      const float* phases_group = phases ? phases + (n * d_.in_channels + grp * cin) * phase_channel_floats() : nullptr;
      // A^T [K x pixels]: for 1x1 the input planes themselves.
      if (!pointwise)
        pool.parallel_for(cin, [&](int64_t c0, int64_t c1) {
          im2col_channels(x_group, phases_group, c0, c1, 0, rows, columns + c0 * taps * pixels);
        }, grain);
      GemmEpilogue e;
      e.check = check;
      e.bias_per_column = bias ? bias + grp * cout : nullptr;
      primitives::gemm_packed_f32(pixels, pointwise ? x_group : columns, pixels, packed_weights_[size_t(grp)],
                                  product, ldy, e, &pool, /*a_transposed=*/true);
      const int64_t offset = (n * d_.out_channels + grp * cout) * pixels;
      pool.parallel_for(cout, [&](int64_t c0, int64_t c1) {
        float* out = y + offset + c0 * pixels;
        primitives::transpose_2d(pixels, c1 - c0, product + c0, ldy, out, pixels, sizeof(float));
        if (residual)
          primitives::binary_f32(primitives::BinaryKind::add, c1 - c0, pixels, out, pixels, 1,
                                 residual + offset + c0 * pixels, pixels, 1, out, pixels);
        if (has_activation) primitives::unary_f32(d_.activation, (c1 - c0) * pixels, out, out);
      }, grain);
    }
  }

  ConvDescriptor d_;
  ConvAlgorithm algorithm_ = ConvAlgorithm::im2col;
  std::vector<primitives::PackedB> packed_weights_;  // per group, for run_pixel_major
  // Per group the weights' column sums, then per group those of |weights| (gemm_k each): ABFT.
  std::vector<float> weight_column_sums_;
  std::unique_ptr<WinogradConvolution> winograd_;
  std::unique_ptr<SmallChannelConv> small_channels_;
  DepthwisePlaneShape depthwise_shape_{};
  std::vector<int64_t> column_lo_, column_hi_;
  int64_t tile_rows_ = 1;
};

void require_f32(const KernelCreateContext& ctx, size_t i, const char* what) {
  if (ctx.input(i).dtype != DType::f32)
    throw Error(ctx.describe() + ": " + what + " has type " + dtype_name(ctx.input(i).dtype) +
                "; only float32 is supported");
}

AlgorithmRequest algorithm_request(const KernelCreateContext& ctx) {
  std::string value = ctx.node.attributes.get_string(kConvAlgorithmAttribute, "");
  if (value.empty()) {
    const char* env = std::getenv("TESSERA_CONV_ALGO");
    value = env ? env : "auto";
  }
  if (value == "auto" || value.empty()) return AlgorithmRequest::automatic;
  if (value == "direct") return AlgorithmRequest::direct;
  if (value == "winograd2") return AlgorithmRequest::winograd2;
  if (value == "winograd4") return AlgorithmRequest::winograd4;
  throw Error(ctx.describe() + ": unknown convolution algorithm '" + value +
              "' (expected auto, direct, winograd2 or winograd4)");
}

std::unique_ptr<Kernel> create_conv(KernelCreateContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1))
    throw Error(ctx.describe() + ": needs inputs X and W");
  require_f32(ctx, 0, "input X");
  require_f32(ctx, 1, "weights W");
  const Shape& xs = ctx.input(0).shape;
  const Shape& ws = ctx.input(1).shape;
  if (xs.size() < 3 || xs.size() > 5)
    throw Error(ctx.describe() + ": input must be N x C x spatial (1 to 3 spatial dims), got " +
                shape_to_string(xs));
  if (ws.size() != xs.size())
    throw Error(ctx.describe() + ": weights " + shape_to_string(ws) + " and input " +
                shape_to_string(xs) + " differ in rank");
  ConvDescriptor d;
  d.batch = xs[0];
  d.in_channels = xs[1];
  d.out_channels = ws[0];
  d.groups = ctx.node.attributes.get_int("group", 1);
  if (d.groups < 1 || d.in_channels % d.groups != 0 || d.out_channels % d.groups != 0 ||
      ws[1] * d.groups != d.in_channels)
    throw Error(ctx.describe() + ": group=" + std::to_string(d.groups) + " does not fit input " +
                shape_to_string(xs) + " and weights " + shape_to_string(ws));
  std::vector<int64_t> spatial(xs.begin() + 2, xs.end());
  std::vector<int64_t> kernel(ws.begin() + 2, ws.end());
  d.geometry = resolve_window_geometry(ctx, spatial, kernel, WindowOptions{});
  if (ctx.has_input(2)) {
    require_f32(ctx, 2, "bias B");
    if (shape_numel(ctx.input(2).shape) != d.out_channels || ctx.input(2).shape.size() != 1)
      throw Error(ctx.describe() + ": bias must have shape [" + std::to_string(d.out_channels) +
                  "], got " + shape_to_string(ctx.input(2).shape));
    d.has_bias = true;
  }
  Shape out_shape = {d.batch, d.out_channels};
  for (int64_t v : d.geometry.output_dims()) out_shape.push_back(v);
  int64_t residual = ctx.node.attributes.get_int("tessera.residual_input", -1);
  if (residual >= 0) {
    if (residual < 3 || !ctx.has_input(size_t(residual)))
      throw Error(ctx.describe() + ": tessera.residual_input names a missing input " +
                  std::to_string(residual));
    require_f32(ctx, size_t(residual), "residual input");
    if (ctx.input(size_t(residual)).shape != out_shape)
      throw Error(ctx.describe() + ": residual input " +
                  shape_to_string(ctx.input(size_t(residual)).shape) +
                  " must have the output shape " + shape_to_string(out_shape));
    d.residual_input = int(residual);
  }
  d.activation = fused_activation(ctx.node);
  d.request = algorithm_request(ctx);
  ctx.set_output(0, DType::f32, out_shape);
  return std::make_unique<ConvKernel>(std::move(d), ctx.input(1).constant, ctx.pool ? ctx.pool->size() : 1);
}

}  // namespace

std::string conv_algorithm_name(const Kernel& kernel) {
  const auto* conv = dynamic_cast<const ConvKernel*>(&kernel);
  return conv ? algorithm_name(conv->algorithm()) : "";
}

void register_conv_operators(OperatorRegistry& registry) {
  registry.add("Conv", 1, 22, create_conv);
  register_conv_transpose_operators(registry);
}

}  // namespace tessera
