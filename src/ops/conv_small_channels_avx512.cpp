// The small-input-channel direct convolution (conv_small_channels.h) for AVX-512.
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "ops/conv_small_channels_kernel.h"
#include "primitives/vector_activation.h"

namespace tessera::small_channel_conv_avx512 {

namespace {

// 8 output channels x V vectors of 16 outputs of one row, from column ow0 (`in` points at that
// row's first tap), over every tap; the last vector's lanes are limited by `last_lanes`.
template <int V>
void output_block(const SmallChannelConvPlan& plan, const float* in, const int64_t* tap_offsets, const float* weights,
                  int64_t oh, int64_t ow0, int64_t channel0, __mmask16 last_lanes, const float* bias,
                  const float* residual, const primitives::UnaryParams& activation, SmallChannelConvHook hook,
                  void* hook_context, float* output) {
  const SmallChannelConvShape& s = plan.shape;
  __m512 acc[kSmallChannelConvBlock][V];
  for (auto& row : acc)
    for (auto& v : row) v = _mm512_setzero_ps();
  const int64_t taps = s.in_channels * s.kernel_h * s.kernel_w;
  const float* w = weights;
  for (int64_t t = 0; t < taps; ++t, w += kSmallChannelConvBlock) {
    const float* x_at = in + tap_offsets[t];
    __m512 x[V];
    for (int v = 0; v < V; ++v) x[v] = _mm512_loadu_ps(x_at + 16 * v);
#pragma GCC unroll 8
    for (int ch = 0; ch < kSmallChannelConvBlock; ++ch) {
      const __m512 weight = _mm512_set1_ps(w[ch]);
      for (int v = 0; v < V; ++v) acc[ch][v] = _mm512_fmadd_ps(x[v], weight, acc[ch][v]);
    }
  }
  const int64_t plane = s.out_h * s.out_w;
  const int channels = int(s.out_channels - channel0 < kSmallChannelConvBlock ? s.out_channels - channel0
                                                                                : kSmallChannelConvBlock);
  if (hook) {
    float tile[kSmallChannelConvBlock][16 * V];
    for (int ch = 0; ch < kSmallChannelConvBlock; ++ch)
      for (int v = 0; v < V; ++v) _mm512_storeu_ps(&tile[ch][16 * v], acc[ch][v]);
    hook(hook_context, channel0, oh * s.out_w + ow0, channels, 16 * (V - 1) + __builtin_popcount(last_lanes),
         &tile[0][0], 16 * V);
    for (int ch = 0; ch < kSmallChannelConvBlock; ++ch)
      for (int v = 0; v < V; ++v) acc[ch][v] = _mm512_loadu_ps(&tile[ch][16 * v]);
  }
  for (int ch = 0; ch < channels; ++ch) {
    const int64_t offset = (channel0 + ch) * plane + oh * s.out_w + ow0;
    if (bias)
      for (int v = 0; v < V; ++v) acc[ch][v] = _mm512_add_ps(acc[ch][v], _mm512_set1_ps(bias[channel0 + ch]));
    if (residual) {
      for (int v = 0; v + 1 < V; ++v)
        acc[ch][v] = _mm512_add_ps(acc[ch][v], _mm512_loadu_ps(residual + offset + 16 * v));
      acc[ch][V - 1] =
          _mm512_add_ps(acc[ch][V - 1], _mm512_maskz_loadu_ps(last_lanes, residual + offset + 16 * (V - 1)));
    }
  }
  // One call for the whole block: with a few taps (27 for MobileNetV2's stem) a call per
  // channel cost as much as the sums.
  if (activation.kind != primitives::UnaryKind::identity)
    primitives::detail::activation_avx512(activation, &acc[0][0], channels * V);
  for (int ch = 0; ch < channels; ++ch) {
    float* out = output + (channel0 + ch) * plane + oh * s.out_w + ow0;
    for (int v = 0; v + 1 < V; ++v) _mm512_storeu_ps(out + 16 * v, acc[ch][v]);
    _mm512_mask_storeu_ps(out + 16 * (V - 1), last_lanes, acc[ch][V - 1]);
  }
}

}  // namespace

void split_rows(const SmallChannelConvPlan& plan, const float* image, int64_t c, int64_t row0, int64_t row1,
                float* planes) {
  const SmallChannelConvShape& s = plan.shape;
  float* channel = planes + c * plan.channel_floats();
  const float* source_plane = image + c * s.in_h * s.in_w;
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t ih = row - s.pad_top;
    if (ih < 0 || ih >= s.in_h) {
      for (int64_t p = 0; p < s.stride_w; ++p)
        std::memset(channel + plan.phase_row(p, row), 0, size_t(plan.phase_width) * sizeof(float));
      continue;
    }
    const float* src = source_plane + ih * s.in_w;
    for (int64_t p = 0; p < s.stride_w; ++p) {
      float* dst = channel + plan.phase_row(p, row);
      // Column j reads input column j * stride + p - pad_left: inside the image for j in [lo, hi).
      const int64_t first = p - s.pad_left;
      const int64_t lo = first >= 0 ? 0 : (-first + s.stride_w - 1) / s.stride_w;
      int64_t hi = s.in_w - first <= 0 ? 0 : (s.in_w - first + s.stride_w - 1) / s.stride_w;
      if (hi > plan.phase_width) hi = plan.phase_width;
      if (hi < lo) hi = lo;
      std::memset(dst, 0, size_t(lo) * sizeof(float));
      int64_t j = lo;
      if (s.stride_w == 1) {
        std::memcpy(dst + lo, src + lo + first, size_t(hi - lo) * sizeof(float));
        j = hi;
      } else if (s.stride_w == 2) {
        // 16 outputs from the even elements of 32 consecutive inputs while all 32 are inside
        // the row (the phase is in `first`). The index is made here, not as a namespace-scope
        // constant: that would run AVX-512 code at start-up on every machine.
        const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        for (; j + 16 <= hi && j * 2 + first + 32 <= s.in_w; j += 16) {
          const float* at = src + j * 2 + first;
          _mm512_storeu_ps(dst + j, _mm512_permutex2var_ps(_mm512_loadu_ps(at), even, _mm512_loadu_ps(at + 16)));
        }
      }
      for (; j < hi; ++j) dst[j] = src[j * s.stride_w + first];
      std::memset(dst + hi, 0, size_t(plan.phase_width - hi) * sizeof(float));
    }
  }
}

void output_rows(const SmallChannelConvPlan& plan, const float* planes, const float* bias, const float* residual,
                 const primitives::UnaryParams& activation, SmallChannelConvHook hook, void* hook_context,
                 int64_t oh0, int64_t oh1, float* output) {
  const SmallChannelConvShape& s = plan.shape;
  // Where each tap (c, kh, kw) reads, from the first output's position in padded row 0: worked
  // out once, so the tap loop does no division by the stride.
  int64_t tap_offsets[kSmallChannelConvMaxTaps];
  int64_t taps = 0;
  for (int64_t c = 0; c < s.in_channels; ++c)
    for (int64_t kh = 0; kh < s.kernel_h; ++kh)
      for (int64_t kw = 0; kw < s.kernel_w; ++kw)
        tap_offsets[taps++] = c * plan.channel_floats() + plan.phase_row(kw % s.stride_w, kh) + kw / s.stride_w;
  const int64_t block_weights = taps * kSmallChannelConvBlock;
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    const float* row = planes + oh * s.stride_h * plan.phase_width;
    for (int64_t block = 0; block < plan.channel_blocks; ++block) {
      const float* weights = plan.packed_weights + block * block_weights;
      const int64_t channel0 = block * kSmallChannelConvBlock;
      auto run = [&](auto width, int64_t ow0, __mmask16 last) {
        output_block<decltype(width)::value>(plan, row + ow0, tap_offsets, weights, oh, ow0, channel0, last, bias,
                                             residual, activation, hook, hook_context, output);
      };
      int64_t ow0 = 0;
      for (; ow0 + 48 <= s.out_w; ow0 += 48) run(std::integral_constant<int, 3>{}, ow0, 0xffff);
      const int64_t left = s.out_w - ow0;
      if (left <= 0) continue;
      const __mmask16 last = __mmask16((1u << ((left - 1) % 16 + 1)) - 1);
      if (left > 32)
        run(std::integral_constant<int, 3>{}, ow0, last);
      else if (left > 16)
        run(std::integral_constant<int, 2>{}, ow0, last);
      else
        run(std::integral_constant<int, 1>{}, ow0, last);
    }
  }
}

}  // namespace tessera::small_channel_conv_avx512
