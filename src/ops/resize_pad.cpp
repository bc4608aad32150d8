// Resize / Upsample (nearest, linear, cubic over any axes, all coordinate transformation modes)
// and Pad (constant, reflect, edge, wrap). Resize runs as one separable pass per resized axis.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/broadcast.h"
#include "ops/dtype_dispatch.h"
#include "ops/operator.h"

namespace tessera {
namespace {

using Ints = std::vector<int64_t>;

enum class Mode { nearest, linear, cubic };

// For each output position along one axis: the input taps and weights, or "extrapolate"
// (tf_crop_and_resize outside the image). Nearest uses exactly one tap of weight 1.
struct AxisTaps {
  int axis = 0;
  int64_t in_size = 0, out_size = 0;
  std::vector<int64_t> first;        // index into taps per output position
  std::vector<int64_t> count;        // taps per output position (0 = extrapolate)
  std::vector<int64_t> index;        // input index of each tap
  std::vector<float> weight;
};

struct ResizeAttributes {
  Mode mode = Mode::nearest;
  std::string coordinate_mode = "half_pixel";
  std::string nearest_mode = "round_prefer_floor";
  float cubic_a = -0.75f;
  bool exclude_outside = false;
  float extrapolation = 0.f;
};

// ONNX's coordinate transformations. `out` is the integer output length; the spec's
// length_resized is scale * in, which differs from it when the scale does not divide evenly.
double original_coordinate(const ResizeAttributes& a, double x, double scale, int64_t in,
                           int64_t out, double roi_start, double roi_end) {
  const std::string& m = a.coordinate_mode;
  double resized = scale * double(in);
  if (m == "half_pixel") return (x + 0.5) / scale - 0.5;
  if (m == "pytorch_half_pixel") return resized > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
  if (m == "align_corners") return resized == 1 ? 0.0 : x * double(in - 1) / (resized - 1);
  if (m == "asymmetric") return x / scale;
  if (m == "tf_half_pixel_for_nn") return (x + 0.5) / scale;
  if (m == "half_pixel_symmetric") {
    double adjustment = double(out) / resized;
    double offset = double(in) / 2.0 * (1.0 - adjustment);
    return offset + (x + 0.5) / scale - 0.5;
  }
  // tf_crop_and_resize: sample the roi box [start, end] (normalized) of the input.
  if (out > 1) return roi_start * double(in - 1) + x * (roi_end - roi_start) * double(in - 1) / double(out - 1);
  return 0.5 * (roi_start + roi_end) * double(in - 1);
}

int64_t nearest_index(const std::string& mode, double x, bool downsample) {
  double fl = std::floor(x);
  if (mode == "floor") return int64_t(fl);
  if (mode == "ceil") return int64_t(std::ceil(x));
  if (mode == "simple") return downsample ? int64_t(std::ceil(x)) : int64_t(fl);  // Resize-10 / Upsample
  if (x - fl == 0.5) return mode == "round_prefer_ceil" ? int64_t(fl) + 1 : int64_t(fl);
  return int64_t(std::round(x));
}

void cubic_coefficients(double r, double a, double c[4]) {
  auto near = [a](double t) { return ((a + 2) * t - (a + 3)) * t * t + 1; };          // |t| <= 1
  auto far = [a](double t) { return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a; };  // 1 < |t| < 2
  c[0] = far(r + 1);
  c[1] = near(r);
  c[2] = near(1 - r);
  c[3] = far(2 - r);
}

AxisTaps make_taps(const ResizeAttributes& a, int axis, int64_t in, int64_t out, double scale,
                   double roi_start, double roi_end) {
  AxisTaps taps;
  taps.axis = axis;
  taps.in_size = in;
  taps.out_size = out;
  auto clamp = [in](int64_t i) { return std::clamp<int64_t>(i, 0, in - 1); };
  for (int64_t j = 0; j < out; ++j) {
    double x = original_coordinate(a, double(j), scale, in, out, roi_start, roi_end);
    taps.first.push_back(int64_t(taps.index.size()));
    if (a.coordinate_mode == "tf_crop_and_resize" && (x < 0 || x > double(in - 1))) {
      taps.count.push_back(0);
      continue;
    }
    if (a.mode == Mode::nearest) {
      taps.index.push_back(clamp(nearest_index(a.nearest_mode, x, scale < 1)));
      taps.weight.push_back(1.f);
      taps.count.push_back(1);
      continue;
    }
    double fl = std::floor(x), r = x - fl;
    int64_t base = int64_t(fl);
    double w[4];
    int64_t idx[4];
    int n;
    if (a.mode == Mode::linear) {
      n = 2;
      w[0] = 1 - r;
      w[1] = r;
      idx[0] = base;
      idx[1] = base + 1;
    } else {
      n = 4;
      cubic_coefficients(r, a.cubic_a, w);
      for (int k = 0; k < 4; ++k) idx[k] = base - 1 + k;
      if (a.exclude_outside) {  // drop taps outside the input and renormalize the rest
        double sum = 0;
        for (int k = 0; k < 4; ++k) {
          if (idx[k] < 0 || idx[k] >= in) w[k] = 0;
          sum += w[k];
        }
        for (int k = 0; k < 4; ++k) w[k] = sum != 0 ? w[k] / sum : 0;
      }
    }
    int64_t used = 0;
    for (int k = 0; k < n; ++k) {
      if (w[k] == 0) continue;
      taps.index.push_back(clamp(idx[k]));
      taps.weight.push_back(float(w[k]));
      ++used;
    }
    if (used == 0) {  // all weights vanished (cannot happen for valid coefficients); keep a tap
      taps.index.push_back(clamp(base));
      taps.weight.push_back(0.f);
      used = 1;
    }
    taps.count.push_back(used);
  }
  return taps;
}

bool is_identity(const AxisTaps& t) {
  if (t.in_size != t.out_size) return false;
  for (int64_t j = 0; j < t.out_size; ++j)
    if (t.count[size_t(j)] != 1 || t.index[size_t(t.first[size_t(j)])] != j ||
        t.weight[size_t(t.first[size_t(j)])] != 1.f)
      return false;
  return true;
}

// One resize pass along taps.axis: [outer, in, inner] -> [outer, out, inner].
void resize_pass_f32(const AxisTaps& t, const Shape& in_shape, const float* src, float* dst,
                     float extrapolation, ThreadPool* pool) {
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < in_shape.size(); ++d)
    if (int(d) < t.axis) outer *= in_shape[d];
    else if (int(d) > t.axis) inner *= in_shape[d];
  int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, inner));
  parallel_range(pool, outer * t.out_size, grain, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      int64_t o = u / t.out_size, j = u % t.out_size;
      float* y = dst + u * inner;
      int64_t n = t.count[size_t(j)], f = t.first[size_t(j)];
      if (n == 0) {
        std::fill(y, y + inner, extrapolation);
        continue;
      }
      const float* x0 = src + (o * t.in_size + t.index[size_t(f)]) * inner;
      float w0 = t.weight[size_t(f)];
      for (int64_t i = 0; i < inner; ++i) y[i] = w0 * x0[i];
      for (int64_t k = 1; k < n; ++k) {
        const float* xk = src + (o * t.in_size + t.index[size_t(f + k)]) * inner;
        float wk = t.weight[size_t(f + k)];
        for (int64_t i = 0; i < inner; ++i) y[i] += wk * xk[i];
      }
    }
  });
}

// Nearest pass for any dtype: row copies; extrapolated rows take `fill` (one element's bytes).
void resize_pass_nearest(const AxisTaps& t, const Shape& in_shape, const char* src, char* dst,
                         size_t es, const char* fill, ThreadPool* pool) {
  int64_t outer = 1, inner = int64_t(es);
  for (size_t d = 0; d < in_shape.size(); ++d)
    if (int(d) < t.axis) outer *= in_shape[d];
    else if (int(d) > t.axis) inner *= in_shape[d];
  int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, inner));
  parallel_range(pool, outer * t.out_size, grain, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      int64_t o = u / t.out_size, j = u % t.out_size;
      char* y = dst + u * inner;
      if (t.count[size_t(j)] == 0) {
        for (int64_t i = 0; i < inner; i += int64_t(es)) std::memcpy(y + i, fill, es);
        continue;
      }
      std::memcpy(y, src + (o * t.in_size + t.index[size_t(t.first[size_t(j)])]) * inner, size_t(inner));
    }
  });
}

struct ResizeKernel : Kernel {
  std::vector<AxisTaps> passes;
  Shape in_shape;
  DType dtype;
  Mode mode;
  float extrapolation;

  void run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           ExecContext& context) override {
    Tensor& y = *out[0];
    if (y.numel() == 0) return;
    if (passes.empty()) {
      copy_tensor_bytes(*in[0], y, &context.pool);
      return;
    }
    bool as_f32 = mode != Mode::nearest;
    Tensor current = as_f32 && dtype != DType::f32 ? in[0]->cast(DType::f32) : *in[0];
    Shape shape = in_shape;
    Tensor fill = Tensor(DType::f32, {1});
    fill.data<float>()[0] = extrapolation;
    fill = fill.cast(current.dtype());
    for (size_t p = 0; p < passes.size(); ++p) {
      const AxisTaps& t = passes[p];
      Shape next_shape = shape;
      next_shape[size_t(t.axis)] = t.out_size;
      bool last = p + 1 == passes.size();
      Tensor next = last && (!as_f32 || dtype == DType::f32) ? y : Tensor(current.dtype(), next_shape);
      if (as_f32)
        resize_pass_f32(t, shape, current.data<float>(), next.data<float>(), extrapolation, &context.pool);
      else
        resize_pass_nearest(t, shape, static_cast<const char*>(current.raw_data()),
                            static_cast<char*>(next.raw_data()), dtype_size(dtype),
                            static_cast<const char*>(fill.raw_data()), &context.pool);
      current = next;
      shape = next_shape;
    }
    if (current.raw_data() != y.raw_data()) {
      Tensor converted = current.cast(dtype);
      copy_tensor_bytes(converted, y, &context.pool);
    }
  }
};

std::vector<float> float_list(const Tensor& t) {
  std::vector<float> v(size_t(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(t.value_as_double(int64_t(i)));
  return v;
}

// Shared by Resize (10..18) and Upsample (7..9).
std::unique_ptr<Kernel> make_resize_kernel(KernelCreateContext& ctx, bool upsample) {
  const ValueInfo& x = required_input(ctx, 0);
  const Attributes& at = ctx.node.attributes;
  int64_t rank = int64_t(x.shape.size());
  ResizeAttributes a;
  std::string mode = at.get_string("mode", "nearest");
  if (mode == "nearest") a.mode = Mode::nearest;
  else if (mode == "linear" || mode == "bilinear") a.mode = Mode::linear;
  else if (mode == "cubic" && !upsample) a.mode = Mode::cubic;
  else throw Error(ctx.describe() + ": unsupported mode '" + mode + "'");
  bool legacy = upsample || ctx.opset < 11;  // Upsample and Resize-10: asymmetric, no roi/sizes
  if (legacy) {
    a.coordinate_mode = "asymmetric";
    a.nearest_mode = "simple";
  } else {
    a.coordinate_mode = at.get_string("coordinate_transformation_mode", "half_pixel");
    a.nearest_mode = at.get_string("nearest_mode", "round_prefer_floor");
    a.cubic_a = at.get_float("cubic_coeff_a", -0.75f);
    a.exclude_outside = at.get_int("exclude_outside", 0) != 0;
    a.extrapolation = at.get_float("extrapolation_value", 0.f);
    if (at.get_int("antialias", 0) != 0)
      throw Error(ctx.describe() + ": antialias is not supported");
  }
  static const char* kModes[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                                 "tf_half_pixel_for_nn", "tf_crop_and_resize", "half_pixel_symmetric"};
  if (std::find(std::begin(kModes), std::end(kModes), a.coordinate_mode) == std::end(kModes))
    throw Error(ctx.describe() + ": unsupported coordinate_transformation_mode '" + a.coordinate_mode + "'");
  if (a.mode != Mode::nearest && !dtype_is_float(x.dtype))
    throw Error(ctx.describe() + ": " + mode + " mode needs a floating-point input");

  // Axes the scales/sizes/roi refer to (opset 18), all axes otherwise.
  Ints axes;
  if (!legacy && ctx.opset >= 18 && at.has("axes")) {
    for (int64_t v : at.get_ints("axes")) axes.push_back(normalize_axis(v, rank, ctx.describe()));
  } else {
    for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
  }
  size_t k = axes.size();
  std::vector<double> scales(size_t(rank), 1.0), roi_start(size_t(rank), 0.0), roi_end(size_t(rank), 1.0);
  Shape out = x.shape;
  auto given = [&](size_t i) { return ctx.has_input(i) && shape_numel(ctx.inputs[i].shape) > 0; };
  std::vector<float> scale_values;
  if (upsample && ctx.opset < 9) {
    scale_values = at.get_floats("scales");
  } else if (legacy) {
    scale_values = float_list(ctx.constant_input(1, "scales"));
  } else {
    if (given(1) && a.coordinate_mode == "tf_crop_and_resize") {
      std::vector<float> roi = float_list(ctx.constant_input(1, "roi"));
      if (roi.size() != 2 * k) throw Error(ctx.describe() + ": roi must have 2 * rank entries");
      for (size_t i = 0; i < k; ++i) {
        roi_start[size_t(axes[i])] = roi[i];
        roi_end[size_t(axes[i])] = roi[k + i];
      }
    }
    if (given(2)) scale_values = float_list(ctx.constant_input(2, "scales"));
    else if (!given(3)) throw Error(ctx.describe() + ": one of scales and sizes is required");
  }
  if (!scale_values.empty()) {
    if (scale_values.size() != k)
      throw Error(ctx.describe() + ": " + std::to_string(scale_values.size()) + " scales for " +
                  std::to_string(k) + " axes");
    for (size_t i = 0; i < k; ++i) {
      size_t d = size_t(axes[i]);
      if (scale_values[i] <= 0) throw Error(ctx.describe() + ": scales must be positive");
      scales[d] = scale_values[i];
      double extent = a.coordinate_mode == "tf_crop_and_resize" ? roi_end[d] - roi_start[d] : 1.0;
      out[d] = int64_t(std::floor(double(x.shape[d]) * extent * double(scale_values[i])));
    }
  } else {
    Ints sizes = ctx.constant_input(3, "sizes").to_int64_vector();
    if (sizes.size() != k)
      throw Error(ctx.describe() + ": " + std::to_string(sizes.size()) + " sizes for " +
                  std::to_string(k) + " axes");
    std::string policy = at.get_string("keep_aspect_ratio_policy", "stretch");
    if (policy == "stretch") {
      for (size_t i = 0; i < k; ++i) {
        size_t d = size_t(axes[i]);
        out[d] = sizes[i];
        scales[d] = double(float(sizes[i]) / float(x.shape[d]));
      }
    } else if (policy == "not_larger" || policy == "not_smaller") {
      // One scale for all axes, the largest (smallest) that keeps every axis within its size.
      double s = policy == "not_larger" ? 1e300 : 0.0;
      for (size_t i = 0; i < k; ++i) {
        double r = double(float(sizes[i]) / float(x.shape[size_t(axes[i])]));
        s = policy == "not_larger" ? std::min(s, r) : std::max(s, r);
      }
      for (size_t i = 0; i < k; ++i) {
        size_t d = size_t(axes[i]);
        scales[d] = s;
        out[d] = int64_t(std::nearbyint(s * double(x.shape[d])));
      }
    } else {
      throw Error(ctx.describe() + ": unknown keep_aspect_ratio_policy '" + policy + "'");
    }
  }
  ctx.set_output(0, x.dtype, out);

  auto kernel = std::make_unique<ResizeKernel>();
  kernel->in_shape = x.shape;
  kernel->dtype = x.dtype;
  kernel->mode = a.mode;
  kernel->extrapolation = a.extrapolation;
  if (shape_numel(out) > 0) {
    for (int64_t d = 0; d < rank; ++d) {
      if (x.shape[size_t(d)] == 0) continue;
      AxisTaps taps = make_taps(a, int(d), x.shape[size_t(d)], out[size_t(d)], scales[size_t(d)],
                                roi_start[size_t(d)], roi_end[size_t(d)]);
      if (!is_identity(taps)) kernel->passes.push_back(std::move(taps));
    }
    // Shrinking axes first keeps the intermediate tensors small.
    std::stable_sort(kernel->passes.begin(), kernel->passes.end(), [](const AxisTaps& l, const AxisTaps& r) {
      return l.out_size * r.in_size < r.out_size * l.in_size;
    });
  }
  return kernel;
}

std::unique_ptr<Kernel> make_resize(KernelCreateContext& ctx) { return make_resize_kernel(ctx, false); }
std::unique_ptr<Kernel> make_upsample(KernelCreateContext& ctx) { return make_resize_kernel(ctx, true); }

enum class PadMode { constant, reflect, edge, wrap };

// Source index along one axis for output position j, or -1 for the constant fill.
int64_t pad_source(PadMode mode, int64_t j, int64_t before, int64_t size) {
  int64_t c = j - before;
  if (c >= 0 && c < size) return c;
  switch (mode) {
    case PadMode::constant: return -1;
    case PadMode::edge: return std::clamp<int64_t>(c, 0, size - 1);
    case PadMode::wrap: return ((c % size) + size) % size;
    case PadMode::reflect: {
      if (size == 1) return 0;
      int64_t period = 2 * (size - 1);
      c = ((c % period) + period) % period;
      return c < size ? c : period - c;
    }
  }
  return -1;
}

template <typename T>
void pad_rows(const std::vector<Ints>& maps, const Shape& in_shape, const Shape& out_shape,
              const T* src, T* dst, T fill) {
  size_t rank = out_shape.size();
  Shape in_strides = contiguous_strides(in_shape);
  int64_t cols = out_shape[rank - 1];
  int64_t rows = cols == 0 ? 0 : shape_numel(out_shape) / cols;
  Ints position(rank - 1, 0);
  const Ints& last = maps[rank - 1];
  for (int64_t r = 0; r < rows; ++r) {
    T* y = dst + r * cols;
    int64_t base = 0;
    bool constant_row = false;
    for (size_t d = 0; d + 1 < rank; ++d) {
      int64_t s = maps[d][size_t(position[d])];
      if (s < 0) constant_row = true;
      base += s * in_strides[d];
    }
    if (constant_row) {
      std::fill(y, y + cols, fill);
    } else {
      for (int64_t c = 0; c < cols; ++c) y[c] = last[size_t(c)] < 0 ? fill : src[base + last[size_t(c)]];
    }
    for (size_t d = rank - 1; d-- > 0;) {
      if (++position[d] < out_shape[d]) break;
      position[d] = 0;
    }
  }
}

std::unique_ptr<Kernel> make_pad(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  const Attributes& at = ctx.node.attributes;
  int64_t rank = int64_t(x.shape.size());
  std::string mode_name = at.get_string("mode", "constant");
  PadMode mode;
  if (mode_name == "constant") mode = PadMode::constant;
  else if (mode_name == "reflect") mode = PadMode::reflect;
  else if (mode_name == "edge") mode = PadMode::edge;
  else if (mode_name == "wrap") mode = PadMode::wrap;
  else throw Error(ctx.describe() + ": unsupported mode '" + mode_name + "'");
  Ints pads = ctx.opset < 11 ? at.get_ints("pads") : ctx.constant_input(1, "pads").to_int64_vector();
  Ints axes;
  if (ctx.opset >= 18 && ctx.has_input(3)) {
    for (int64_t v : ctx.constant_input(3, "axes").to_int64_vector())
      axes.push_back(normalize_axis(v, rank, ctx.describe()));
  } else {
    for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
  }
  if (pads.size() != 2 * axes.size())
    throw Error(ctx.describe() + ": pads has " + std::to_string(pads.size()) + " entries for " +
                std::to_string(axes.size()) + " axes");
  Ints before(size_t(rank), 0), after(size_t(rank), 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    before[size_t(axes[i])] = pads[i];
    after[size_t(axes[i])] = pads[axes.size() + i];
  }
  Shape out(static_cast<size_t>(rank));
  std::vector<Ints> maps(static_cast<size_t>(rank));
  for (int64_t d = 0; d < rank; ++d) {
    int64_t size = x.shape[size_t(d)];
    out[size_t(d)] = size + before[size_t(d)] + after[size_t(d)];
    if (out[size_t(d)] < 0) throw Error(ctx.describe() + ": pads remove more than the whole axis");
    if (mode != PadMode::constant && size == 0 && out[size_t(d)] > 0)
      throw Error(ctx.describe() + ": cannot " + mode_name + "-pad an empty axis");
    for (int64_t j = 0; j < out[size_t(d)]; ++j)
      maps[size_t(d)].push_back(pad_source(mode, j, before[size_t(d)], size));
  }
  ctx.set_output(0, x.dtype, out);
  float attr_value = at.get_float("value", 0.f);
  bool value_input = ctx.opset >= 11;
  Shape in_shape = x.shape;
  DType dtype = x.dtype;
  return std::make_unique<LambdaKernel>([=](const std::vector<const Tensor*>& in,
                                            const std::vector<Tensor*>& o, ExecContext& e) {
    Tensor& y = *o[0];
    if (y.numel() == 0) return;
    if (rank == 0) {
      copy_tensor_bytes(*in[0], y, &e.pool);
      return;
    }
    Tensor fill;
    if (value_input && in.size() > 2 && in[2] && in[2]->numel() > 0) {
      fill = in[2]->cast(dtype);
    } else {
      fill = Tensor(DType::f32, {1});
      fill.data<float>()[0] = value_input ? 0.f : attr_value;
      fill = fill.cast(dtype);
    }
    switch (dtype_size(dtype)) {
      case 1: pad_rows(maps, in_shape, y.shape(), in[0]->data<uint8_t>(), y.data<uint8_t>(), fill.data<uint8_t>()[0]); break;
      case 2: pad_rows(maps, in_shape, y.shape(), in[0]->data<uint16_t>(), y.data<uint16_t>(), fill.data<uint16_t>()[0]); break;
      case 4: pad_rows(maps, in_shape, y.shape(), in[0]->data<uint32_t>(), y.data<uint32_t>(), fill.data<uint32_t>()[0]); break;
      default: pad_rows(maps, in_shape, y.shape(), in[0]->data<uint64_t>(), y.data<uint64_t>(), fill.data<uint64_t>()[0]); break;
    }
  });
}

}  // namespace

void register_resize_pad_operators(OperatorRegistry& registry) {
  registry.add("Resize", 10, 18, make_resize);
  registry.add("Upsample", 7, 9, make_upsample);
  registry.add("Pad", 2, 18, make_pad);
}

}  // namespace tessera
