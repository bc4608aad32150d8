// Direct convolution on channels-last (NHWC) activations as batch-reduce GEMMs, with no im2col
// copy and no packing of the activations: a register tile is a run of up to mr output pixels of
// one output row x nr output channels, and its sum over the kernel taps is one batch-reduce call
// whose A operands are the input pixels of each tap read in place (a pixel's channels are
// contiguous, so a tap's depth is the input channels) and whose B operands are the weights of
// each tap, packed once. The first building block of a channels-last execution path for CNNs
// (issue 3): in NCHW, a 1x1 convolution packs its whole input per call and a KxK one copies it
// into im2col columns first.
#pragma once
#include <cstdint>

#include "primitives/primitives.h"
#include "tessera/thread_pool.h"

namespace tessera::primitives {

// One group, 2-D. The output size is given (pads past the last input row/column are implied by
// it); padded taps read nothing.
struct ConvNhwcShape {
  int64_t batch = 1, in_h = 1, in_w = 1, in_channels = 1;
  int64_t out_h = 1, out_w = 1, out_channels = 1;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0;

  int64_t taps() const { return kernel_h * kernel_w; }
  int64_t output_pixels() const { return batch * out_h * out_w; }
};

// Throws std::invalid_argument when a size is not positive, or when some output pixel would
// read past the padded input.
void validate_conv_nhwc_shape(const ConvNhwcShape& shape);

// The weights as the kernels read them: taps x in_channels rows (tap-major) by out_channels
// columns, packed once.
class ConvNhwcWeights {
 public:
  // weights: [out_channels][in_channels][kernel_h][kernel_w] (ONNX's OIHW).
  ConvNhwcWeights(const ConvNhwcShape& shape, const float* weights);
  const PackedB& packed() const { return packed_; }

 private:
  PackedB packed_;
};

// y[n, oh, ow, co] = epilogue(sum over taps and channels) for x [batch, in_h, in_w, in_channels]
// and y [batch, out_h, out_w, out_channels]. The epilogue's row is the output pixel (n, oh, ow)
// in order and its column the output channel: bias_per_column, a residual in y's layout
// (ld_residual = out_channels) and the activation; no checks. pool may be nullptr.
void conv_nhwc_f32(const ConvNhwcShape& shape, const ConvNhwcWeights& weights, const float* x,
                   const GemmEpilogue* epilogue, float* y, ThreadPool* pool);

// Plain loops, sums in double: the reference the kernel is tested against.
void conv_nhwc_reference_f32(const ConvNhwcShape& shape, const float* weights, const float* x,
                             const float* bias, const float* residual, bool relu, float* y);

}  // namespace tessera::primitives
