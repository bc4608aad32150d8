// Plan and threading of the small-input-channel direct convolution (conv_small_channels.h).
#include "ops/conv_small_channels.h"

#include <algorithm>

namespace tessera {

namespace {

// Past these the im2col GEMM's K is deep enough to run it well, or the phase planes and the
// per-tap loop stop paying: stems have 1 to 4 channels and kernels up to 7x7.
constexpr int64_t kMaxInputChannels = 4, kMaxStride = 4;

// The calling thread's, shared with the workers for the duration of one run; grow-only.
thread_local std::vector<float> phase_planes;

}  // namespace

bool small_channel_conv_fits(const SmallChannelConvShape& s) {
  return s.in_channels >= 1 && s.in_channels <= kMaxInputChannels && s.out_channels >= 1 && s.out_h >= 1 &&
         s.out_w >= 1 && s.in_h >= 1 && s.in_w >= 1 && s.kernel_h >= 1 && s.kernel_w >= 1 &&
         s.in_channels * s.kernel_h * s.kernel_w <= kSmallChannelConvMaxTaps && s.stride_h >= 1 &&
         s.stride_h <= kMaxStride && s.stride_w >= 1 && s.stride_w <= kMaxStride && s.pad_top >= 0 &&
         s.pad_left >= 0;
}

SmallChannelConv::SmallChannelConv(const SmallChannelConvShape& shape, const float* weights) {
  plan_.shape = shape;
  plan_.padded_rows = (shape.out_h - 1) * shape.stride_h + shape.kernel_h;
  const int64_t reach = (shape.kernel_w - 1) / shape.stride_w;
  plan_.phase_width = ((shape.out_w + 15) / 16 * 16 + reach + 15) / 16 * 16;
  plan_.channel_blocks = (shape.out_channels + kSmallChannelConvBlock - 1) / kSmallChannelConvBlock;
  const int64_t taps = shape.in_channels * shape.kernel_h * shape.kernel_w;
  packed_weights_.assign(size_t(plan_.channel_blocks * taps * kSmallChannelConvBlock), 0.f);
  for (int64_t co = 0; co < shape.out_channels; ++co)
    for (int64_t tap = 0; tap < taps; ++tap)
      packed_weights_[size_t(((co / kSmallChannelConvBlock) * taps + tap) * kSmallChannelConvBlock +
                             co % kSmallChannelConvBlock)] = weights[co * taps + tap];
  plan_.packed_weights = packed_weights_.data();
}

bool SmallChannelConv::runs_on_active_isa() { return primitives::active_isa() == primitives::Isa::avx512; }

void SmallChannelConv::run(const float* input, const float* bias, const float* residual,
                           const primitives::UnaryParams& activation, primitives::GemmFaultHook hook,
                           void* hook_context, float* output, ThreadPool& pool) const {
  const SmallChannelConvShape& s = plan_.shape;
  if (phase_planes.size() < size_t(s.in_channels * plan_.channel_floats()))
    phase_planes.resize(size_t(s.in_channels * plan_.channel_floats()));
  float* planes = phase_planes.data();
  // (channel, padded row) pairs, then output rows; a chunk is at least a few rows' work.
  pool.parallel_for(s.in_channels * plan_.padded_rows, [&](int64_t begin, int64_t end) {
    for (int64_t at = begin; at < end;) {
      const int64_t c = at / plan_.padded_rows, row = at % plan_.padded_rows;
      const int64_t rows = std::min(end - at, plan_.padded_rows - row);
      small_channel_conv_avx512::split_rows(plan_, input, c, row, row + rows, planes);
      at += rows;
    }
  }, 16);
  pool.parallel_for(s.out_h, [&](int64_t begin, int64_t end) {
    small_channel_conv_avx512::output_rows(plan_, planes, bias, residual, activation, hook, hook_context, begin, end,
                                           output);
  }, 2);
}

}  // namespace tessera
