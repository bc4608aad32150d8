// Direct convolution for layers with few input channels: network stems such as MobileNetV2's
// 3 -> 32 3x3 stride 2 and ResNet's 3 -> 64 7x7 stride 2. As im2col + GEMM these have a tiny
// K (27, 147) and a wide N (12544 pixels): the copy of K rows of the whole image and the GEMM's
// stores bound them (MobileNetV2's stem ran at 42 GFLOP/s, 7% of the model). Here the input is
// split once per run into zero-padded column-phase planes (column j of phase p holds input
// column j * stride + p), so that for every tap 16 neighbouring outputs read 16 consecutive
// floats; the kernel keeps 8 output channels x 48 outputs of a row in registers over all taps,
// then adds bias and residual and applies the activation before its only store.
#pragma once
#include <vector>

#include "ops/conv_small_channels_kernel.h"
#include "primitives/primitives.h"
#include "tessera/thread_pool.h"

namespace tessera {

// Whether the kernel serves this shape: few input channels, a kernel and stride it blocks for.
bool small_channel_conv_fits(const SmallChannelConvShape& shape);

class SmallChannelConv {
 public:
  // weights: [out_channels][in_channels][kernel_h][kernel_w].
  SmallChannelConv(const SmallChannelConvShape& shape, const float* weights);
  // Whether run() can serve the active ISA (AVX-512 only; callers fall back to im2col otherwise).
  static bool runs_on_active_isa();
  // One image: output = activation(conv(input) + bias + residual); bias/residual may be nullptr.
  // hook (may be nullptr) sees every tile's raw sums, as a GemmFaultHook sees the GEMM's.
  void run(const float* input, const float* bias, const float* residual, const primitives::UnaryParams& activation,
           primitives::GemmFaultHook hook, void* hook_context, float* output, ThreadPool& pool) const;

 private:
  SmallChannelConvPlan plan_;
  std::vector<float> packed_weights_;
};

}  // namespace tessera
