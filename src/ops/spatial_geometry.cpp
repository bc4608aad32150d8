// Resolves the ONNX window attributes (kernel_shape, strides, dilations, pads, auto_pad,
// ceil_mode) of Conv and pooling nodes into concrete pads and output sizes.
#include "ops/spatial_geometry.h"

#include <algorithm>

namespace tessera {

namespace {

std::vector<int64_t> ints_or(const Attributes& attributes, const char* name, size_t count,
                             int64_t fallback, const KernelCreateContext& ctx) {
  std::vector<int64_t> values = attributes.get_ints(name, std::vector<int64_t>(count, fallback));
  if (values.size() != count)
    throw Error(ctx.describe() + ": attribute '" + name + "' has " +
                std::to_string(values.size()) + " values, expected " + std::to_string(count));
  return values;
}

}  // namespace

SpatialGeometry resolve_window_geometry(const KernelCreateContext& ctx,
                                        const std::vector<int64_t>& spatial_input,
                                        const std::vector<int64_t>& kernel_from_weights,
                                        const WindowOptions& options) {
  const Attributes& attrs = ctx.node.attributes;
  const size_t rank = spatial_input.size();
  if (rank < 1 || rank > 3)
    throw Error(ctx.describe() + ": only 1, 2 or 3 spatial dims are supported, input has " +
                std::to_string(rank));
  std::vector<int64_t> kernel = attrs.has("kernel_shape") ? attrs.get_ints("kernel_shape")
                                                          : kernel_from_weights;
  if (kernel.size() != rank)
    throw Error(ctx.describe() + ": kernel_shape has " + std::to_string(kernel.size()) +
                " dims but the input has " + std::to_string(rank) + " spatial dims");
  if (!kernel_from_weights.empty() && kernel != kernel_from_weights)
    throw Error(ctx.describe() + ": kernel_shape attribute disagrees with the weight shape");
  std::vector<int64_t> strides = ints_or(attrs, "strides", rank, 1, ctx);
  std::vector<int64_t> dilations = ints_or(attrs, "dilations", rank, 1, ctx);
  std::vector<int64_t> pads = ints_or(attrs, "pads", 2 * rank, 0, ctx);
  std::string auto_pad = attrs.get_string("auto_pad", "NOTSET");

  SpatialGeometry g;
  g.rank = int(rank);
  const size_t shift = 3 - rank;  // model dim i lives in slot i + shift
  for (size_t i = 0; i < rank; ++i) {
    const size_t s = i + shift;
    g.input[s] = spatial_input[i];
    g.kernel[s] = kernel[i];
    g.stride[s] = strides[i];
    g.dilation[s] = dilations[i];
    if (kernel[i] < 1 || strides[i] < 1 || dilations[i] < 1)
      throw Error(ctx.describe() + ": kernel_shape, strides and dilations must be positive");
    if (!options.allow_dilations && dilations[i] != 1)
      throw Error(ctx.describe() + ": dilations are not allowed at this opset");
    const int64_t in = spatial_input[i];
    const int64_t dilated_kernel = (kernel[i] - 1) * dilations[i] + 1;
    if (auto_pad == "NOTSET" || auto_pad.empty()) {
      g.pad_begin[s] = pads[i];
      g.pad_end[s] = pads[i + rank];
      if (pads[i] < 0 || pads[i + rank] < 0)
        throw Error(ctx.describe() + ": negative pads are not supported");
      const int64_t span = in + pads[i] + pads[i + rank] - dilated_kernel;
      if (span < 0)
        throw Error(ctx.describe() + ": the kernel (" + std::to_string(dilated_kernel) +
                    " with dilation) is larger than the padded input (" +
                    std::to_string(in + pads[i] + pads[i + rank]) + ")");
      int64_t out = span / strides[i] + 1;
      if (options.ceil_mode) {
        out = (span + strides[i] - 1) / strides[i] + 1;
        // A window must start inside the input or its left padding (PyTorch/ORT rule).
        if ((out - 1) * strides[i] >= in + pads[i]) --out;
      }
      g.output[s] = out;
    } else if (auto_pad == "VALID") {
      if (in < dilated_kernel)
        throw Error(ctx.describe() + ": the kernel is larger than the input with auto_pad=VALID");
      g.output[s] = (in - dilated_kernel) / strides[i] + 1;
    } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      const int64_t out = (in + strides[i] - 1) / strides[i];
      const int64_t total = std::max<int64_t>(0, (out - 1) * strides[i] + dilated_kernel - in);
      // SAME_UPPER puts the odd pad at the end, SAME_LOWER at the beginning.
      g.pad_begin[s] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      g.pad_end[s] = total - g.pad_begin[s];
      g.output[s] = out;
    } else {
      throw Error(ctx.describe() + ": unknown auto_pad '" + auto_pad + "'");
    }
  }
  return g;
}

void valid_output_range(int64_t input, int64_t output, int64_t stride, int64_t tap, int64_t* lo,
                        int64_t* hi) {
  // Need 0 <= o * stride + tap < input.
  int64_t first = tap >= 0 ? 0 : (-tap + stride - 1) / stride;
  int64_t last = input - tap <= 0 ? 0 : (input - tap - 1) / stride + 1;  // exclusive
  *lo = std::min(first, output);
  *hi = std::max(*lo, std::min(last, output));
}

}  // namespace tessera
