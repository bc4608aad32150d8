// Direct depthwise convolution of one channel plane (each output channel reads one input
// channel), compiled once per ISA so the inner loop over output width is vectorized.
#pragma once
#include <cstdint>

namespace tessera {

// Plain-data view of the window geometry (3-D; leading dims are 1 for 1-D/2-D problems).
struct DepthwisePlaneShape {
  int64_t input[3];
  int64_t output[3];
  int64_t kernel[3];
  int64_t stride[3];
  int64_t dilation[3];
  int64_t pad_begin[3];
};

// out[plane] = bias + sum over taps of w[tap] * in[shifted plane]; padding reads as zero.
void depthwise_plane_f32(const DepthwisePlaneShape& shape, const float* input, const float* weights,
                         float bias, float* output);

namespace depthwise_scalar {
void plane(const DepthwisePlaneShape&, const float*, const float*, float, float*);
}
namespace depthwise_avx2 {
void plane(const DepthwisePlaneShape&, const float*, const float*, float, float*);
}
namespace depthwise_avx512 {
void plane(const DepthwisePlaneShape&, const float*, const float*, float, float*);
}

}  // namespace tessera
