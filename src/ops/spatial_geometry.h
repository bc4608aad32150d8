// Window geometry shared by Conv, ConvTranspose and the pooling operators: kernel, strides,
// dilations, pads and auto_pad resolved into output sizes, always as 3 spatial dims (D, H, W).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ops/operator.h"

namespace tessera {

// Every spatial operator is handled as 3-D: a 1-D or 2-D problem gets leading dims of size 1
// (kernel 1, stride 1, no pads), so one loop nest serves all ranks.
struct SpatialGeometry {
  int rank = 0;  // number of spatial dims in the model (1..3)
  int64_t input[3] = {1, 1, 1};
  int64_t kernel[3] = {1, 1, 1};
  int64_t stride[3] = {1, 1, 1};
  int64_t dilation[3] = {1, 1, 1};
  int64_t pad_begin[3] = {0, 0, 0};
  int64_t pad_end[3] = {0, 0, 0};
  int64_t output[3] = {1, 1, 1};

  int64_t input_size() const { return input[0] * input[1] * input[2]; }
  int64_t output_size() const { return output[0] * output[1] * output[2]; }
  int64_t kernel_size() const { return kernel[0] * kernel[1] * kernel[2]; }
  // The model's output spatial dims (rank entries).
  std::vector<int64_t> output_dims() const {
    return std::vector<int64_t>(output + 3 - rank, output + 3);
  }
};

struct WindowOptions {
  bool ceil_mode = false;       // pooling only
  bool allow_dilations = true;  // AveragePool before opset 19 has none; harmless when 1
};

// Reads kernel_shape (or uses `kernel_from_weights` when the attribute is absent), strides,
// dilations, pads and auto_pad from the node and computes the output dims per the ONNX rules.
// `spatial_input` are the input's spatial dims (1..3 of them). Throws tessera::Error on bad values.
SpatialGeometry resolve_window_geometry(const KernelCreateContext& ctx,
                                        const std::vector<int64_t>& spatial_input,
                                        const std::vector<int64_t>& kernel_from_weights,
                                        const WindowOptions& options);

// For output column ow of a kernel tap at offset `tap` (kw * dilation - pad_begin): the range
// [lo, hi) of output positions whose input position ow * stride + tap lies in [0, input).
void valid_output_range(int64_t input, int64_t output, int64_t stride, int64_t tap, int64_t* lo,
                        int64_t* hi);

}  // namespace tessera
