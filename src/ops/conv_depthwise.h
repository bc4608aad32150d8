// Direct depthwise convolution of one channel plane (each output channel reads one input
// channel), compiled once per ISA; bias, a residual add and a clamp activation fuse into the store.
#pragma once
#include <cstdint>

namespace tessera {

// Declared, not included: the per-ISA kernel files must not pull in inline library code.
namespace primitives {
struct UnaryParams;
}

// Plain-data view of the window geometry (3-D; leading dims are 1 for 1-D/2-D problems).
struct DepthwisePlaneShape {
  int64_t input[3];
  int64_t output[3];
  int64_t kernel[3];
  int64_t stride[3];
  int64_t dilation[3];
  int64_t pad_begin[3];
};

// What happens to each output value after bias: out = clamp(out + residual, low, high).
// Identity, Relu and Clip are all clamps, so MobileNet's ReLU6 costs nothing extra.
struct DepthwiseEpilogue {
  const float* residual = nullptr;  // the plane-shaped tensor to add, nullptr for none
  bool clamp = false;
  float clamp_low = 0.f, clamp_high = 0.f;
};

// The clamp that `activation` is, written into *epilogue; false if it is not a clamp (the caller
// then applies it after the kernel).
bool depthwise_epilogue_for(const primitives::UnaryParams& activation, DepthwiseEpilogue* epilogue);

// out[plane] = bias + sum over taps of w[tap] * in[shifted plane]; padding reads as zero.
void depthwise_plane_f32(const DepthwisePlaneShape& shape, const float* input, const float* weights,
                         float bias, float* output);
// The same followed by the epilogue, for the active ISA.
void depthwise_plane_fused_f32(const DepthwisePlaneShape& shape, const float* input,
                               const float* weights, float bias, const DepthwiseEpilogue& epilogue,
                               float* output);

// Output rows [row_begin, row_end) of the plane only (input, output and the epilogue's residual
// are the whole planes), each output to the bit as depthwise_plane_fused_f32 gives it; false,
// touching nothing, where the active ISA has no row-range kernel for the shape (3x3 with pads of
// 1, stride 1 or 2, on AVX-512 only): then split the work by whole planes. An empty range reads
// nothing (the pointers may be null): it only asks whether the shape is served.
bool depthwise_plane_rows_fused_f32(const DepthwisePlaneShape& shape, const float* input,
                                    const float* weights, float bias, const DepthwiseEpilogue& epilogue,
                                    float* output, int64_t row_begin, int64_t row_end);

namespace depthwise_scalar {
void plane(const DepthwisePlaneShape&, const float*, const float*, float, float*);
void plane_fused(const DepthwisePlaneShape&, const float*, const float*, float,
                 const DepthwiseEpilogue&, float*);
bool plane_rows_fused(const DepthwisePlaneShape&, const float*, const float*, float,
                      const DepthwiseEpilogue&, float*, int64_t, int64_t);
}  // namespace depthwise_scalar
namespace depthwise_avx2 {
void plane(const DepthwisePlaneShape&, const float*, const float*, float, float*);
void plane_fused(const DepthwisePlaneShape&, const float*, const float*, float,
                 const DepthwiseEpilogue&, float*);
bool plane_rows_fused(const DepthwisePlaneShape&, const float*, const float*, float,
                      const DepthwiseEpilogue&, float*, int64_t, int64_t);
}  // namespace depthwise_avx2
namespace depthwise_avx512 {
void plane(const DepthwisePlaneShape&, const float*, const float*, float, float*);
void plane_fused(const DepthwisePlaneShape&, const float*, const float*, float,
                 const DepthwiseEpilogue&, float*);
bool plane_rows_fused(const DepthwisePlaneShape&, const float*, const float*, float,
                      const DepthwiseEpilogue&, float*, int64_t, int64_t);
}  // namespace depthwise_avx512

}  // namespace tessera
