// ConvTranspose (1-D/2-D/3-D, groups, strides, dilations, pads, output_padding, output_shape,
// auto_pad): per image and group, col = W^T X with the GEMM primitive, then col2im scatter-add.
#include <algorithm>
#include <vector>

#include "ops/operator.h"
#include "ops/spatial_geometry.h"
#include "primitives/primitives.h"

namespace tessera {

namespace {

struct ConvTransposeDescriptor {
  int64_t batch = 0, in_channels = 0, out_channels = 0, groups = 1;
  SpatialGeometry geometry;  // input = X's spatial dims, output = Y's; pads as in Conv
  bool has_bias = false;
  int64_t in_per_group() const { return in_channels / groups; }
  int64_t out_per_group() const { return out_channels / groups; }
};

class ConvTransposeKernel : public Kernel {
 public:
  explicit ConvTransposeKernel(ConvTransposeDescriptor d) : d_(std::move(d)) {}

  double flops() const override {
    return 2.0 * double(d_.batch) * double(d_.in_channels) * double(d_.geometry.input_size()) *
           double(d_.out_per_group()) * double(d_.geometry.kernel_size());
  }

  void run(const std::vector<const Tensor*>& inputs, const std::vector<Tensor*>& outputs,
           ExecContext& context) override {
    const SpatialGeometry& g = d_.geometry;
    const float* x = inputs[0]->data<float>();
    const float* w = inputs[1]->data<float>();
    const float* bias = d_.has_bias ? inputs[2]->data<float>() : nullptr;
    float* y = outputs[0]->data<float>();
    const int64_t cin = d_.in_per_group(), cout = d_.out_per_group();
    const int64_t ksize = g.kernel_size(), in_plane = g.input_size(), out_plane = g.output_size();
    const int64_t col_rows = cout * ksize;
    std::vector<float> col(size_t(col_rows * in_plane));
    primitives::GemmEpilogue epilogue;  // ABFT on the GEMM part (col2im is not covered)
    epilogue.check = context.gemm_check;
    for (int64_t n = 0; n < d_.batch; ++n) {
      for (int64_t grp = 0; grp < d_.groups; ++grp) {
        // W_g is [C_in_g, C_out_g * k] row-major; col[C_out_g * k, HW_in] = W_g^T * X_g.
        primitives::gemm_f32(true, false, col_rows, in_plane, cin, 1.f, w + grp * cin * col_rows,
                             col_rows, x + (n * d_.in_channels + grp * cin) * in_plane, in_plane,
                             0.f, col.data(), in_plane, &context.pool, &epilogue);
        float* y_group = y + (n * d_.out_channels + grp * cout) * out_plane;
        context.pool.parallel_for(cout, [&](int64_t begin, int64_t end) {
          for (int64_t co = begin; co < end; ++co)
            col2im_channel(col.data() + co * ksize * in_plane, bias ? bias[grp * cout + co] : 0.f,
                           y_group + co * out_plane);
        });
      }
    }
  }

 private:
  // y[o] = bias + sum over (tap, input position i) with o = i * stride + k * dilation - pad.
  void col2im_channel(const float* col, float bias, float* y) const {
    const SpatialGeometry& g = d_.geometry;
    std::fill(y, y + g.output_size(), bias);
    const int64_t in_plane = g.input_size();
    for (int64_t kd = 0; kd < g.kernel[0]; ++kd)
      for (int64_t kh = 0; kh < g.kernel[1]; ++kh)
        for (int64_t kw = 0; kw < g.kernel[2]; ++kw) {
          const float* src = col + ((kd * g.kernel[1] + kh) * g.kernel[2] + kw) * in_plane;
          const int64_t tap_w = kw * g.dilation[2] - g.pad_begin[2];
          int64_t lo, hi;  // input columns that land inside the output row
          valid_output_range(g.output[2], g.input[2], g.stride[2], tap_w, &lo, &hi);
          for (int64_t id = 0; id < g.input[0]; ++id) {
            const int64_t od = id * g.stride[0] + kd * g.dilation[0] - g.pad_begin[0];
            if (od < 0 || od >= g.output[0]) continue;
            for (int64_t ih = 0; ih < g.input[1]; ++ih) {
              const int64_t oh = ih * g.stride[1] + kh * g.dilation[1] - g.pad_begin[1];
              if (oh < 0 || oh >= g.output[1]) continue;
              const float* s = src + (id * g.input[1] + ih) * g.input[2];
              float* out = y + (od * g.output[1] + oh) * g.output[2];
              for (int64_t iw = lo; iw < hi; ++iw) out[iw * g.stride[2] + tap_w] += s[iw];
            }
          }
        }
  }

  ConvTransposeDescriptor d_;
};

std::unique_ptr<Kernel> create_conv_transpose(KernelCreateContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1))
    throw Error(ctx.describe() + ": needs inputs X and W");
  for (size_t i = 0; i < 3; ++i)
    if (ctx.has_input(i) && ctx.input(i).dtype != DType::f32)
      throw Error(ctx.describe() + ": input " + std::to_string(i) + " has type " +
                  dtype_name(ctx.input(i).dtype) + "; only float32 is supported");
  const Shape& xs = ctx.input(0).shape;
  const Shape& ws = ctx.input(1).shape;
  if (xs.size() < 3 || xs.size() > 5 || ws.size() != xs.size())
    throw Error(ctx.describe() + ": expected N x C x spatial input and matching weights, got " +
                shape_to_string(xs) + " and " + shape_to_string(ws));
  const Attributes& a = ctx.node.attributes;
  ConvTransposeDescriptor d;
  d.batch = xs[0];
  d.in_channels = xs[1];
  d.groups = a.get_int("group", 1);
  if (d.groups < 1 || ws[0] != d.in_channels || d.in_channels % d.groups != 0)
    throw Error(ctx.describe() + ": weights " + shape_to_string(ws) + " do not fit input " +
                shape_to_string(xs) + " with group=" + std::to_string(d.groups));
  d.out_channels = ws[1] * d.groups;
  const size_t rank = xs.size() - 2;
  auto ints = [&](const char* name, int64_t fallback, size_t count) {
    auto v = a.get_ints(name, std::vector<int64_t>(count, fallback));
    if (v.size() != count)
      throw Error(ctx.describe() + ": attribute '" + name + "' must have " + std::to_string(count) +
                  " values");
    return v;
  };
  std::vector<int64_t> kernel(ws.begin() + 2, ws.end());
  if (a.has("kernel_shape") && a.get_ints("kernel_shape") != kernel)
    throw Error(ctx.describe() + ": kernel_shape disagrees with the weight shape");
  auto strides = ints("strides", 1, rank), dilations = ints("dilations", 1, rank);
  auto pads = ints("pads", 0, 2 * rank), output_padding = ints("output_padding", 0, rank);
  std::string auto_pad = a.get_string("auto_pad", "NOTSET");
  std::vector<int64_t> output_shape = a.get_ints("output_shape");
  if (!output_shape.empty() && output_shape.size() != rank) {
    if (output_shape.size() == rank + 2)
      output_shape.erase(output_shape.begin(), output_shape.begin() + 2);
    else
      throw Error(ctx.describe() + ": output_shape must have one value per spatial dim");
  }
  SpatialGeometry& g = d.geometry;
  g.rank = int(rank);
  const size_t shift = 3 - rank;
  for (size_t i = 0; i < rank; ++i) {
    const size_t s = i + shift;
    if (kernel[i] < 1 || strides[i] < 1 || dilations[i] < 1)
      throw Error(ctx.describe() + ": kernel, strides and dilations must be positive");
    g.input[s] = xs[2 + i];
    g.kernel[s] = kernel[i];
    g.stride[s] = strides[i];
    g.dilation[s] = dilations[i];
    const int64_t full = strides[i] * (xs[2 + i] - 1) + output_padding[i] +
                         (kernel[i] - 1) * dilations[i] + 1;
    const bool same = auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER";
    if (!output_shape.empty() || same) {
      const int64_t out = !output_shape.empty() ? output_shape[i] : xs[2 + i] * strides[i];
      // A negative total means output_shape asks for more than the kernel reaches: the extra
      // positions at the end hold only the bias (pad_end is not used by col2im).
      const int64_t total = std::max<int64_t>(0, full - out);
      // The ONNX reference gives the odd pad to the end for SAME_UPPER (and NOTSET), else to the start.
      const bool upper = auto_pad != "SAME_LOWER";
      g.pad_begin[s] = upper ? total / 2 : total - total / 2;
      g.pad_end[s] = total - g.pad_begin[s];
      g.output[s] = out;
    } else if (auto_pad == "NOTSET" || auto_pad == "VALID" || auto_pad.empty()) {
      if (auto_pad != "VALID") {
        g.pad_begin[s] = pads[i];
        g.pad_end[s] = pads[i + rank];
      }
      g.output[s] = full - g.pad_begin[s] - g.pad_end[s];
      if (g.output[s] < 1)
        throw Error(ctx.describe() + ": pads leave no output");
    } else {
      throw Error(ctx.describe() + ": unknown auto_pad '" + auto_pad + "'");
    }
  }
  if (ctx.has_input(2)) {
    if (shape_numel(ctx.input(2).shape) != d.out_channels)
      throw Error(ctx.describe() + ": bias must have " + std::to_string(d.out_channels) +
                  " elements");
    d.has_bias = true;
  }
  Shape out_shape = {d.batch, d.out_channels};
  for (int64_t v : g.output_dims()) out_shape.push_back(v);
  ctx.set_output(0, DType::f32, out_shape);
  return std::make_unique<ConvTransposeKernel>(std::move(d));
}

}  // namespace

void register_conv_transpose_operators(OperatorRegistry& registry) {
  registry.add("ConvTranspose", 1, 22, create_conv_transpose);
}

}  // namespace tessera
