// Int8 Winograd convolution F(2x2,3x3) / F(4x4,3x3) for 3x3 stride-1 NCHW f32 convolutions, with
// one quantization scale per transform point ("tap-wise", Andri et al., MICRO 2022) or one for all.
//
// The rule (tests re-derive it): V = B^T d B per input tile and channel (f32), quantized per tap p
// as q = clamp(round_half_even(V / sa[p]), -127, 127); U = G g G^T per (tap, input channel, output
// channel), quantized as w = clamp(round_half_even(U / sw[p][n]), -127, 127); per tap an int8 GEMM
// over input channels (exact int32) gives M[p][tile][n] = sa[p] * sw[p][n] * sum_c q * w; then
// y = A^T M A + bias (f32), optionally ReLU. Plain (non-tap-wise) quantization is the same
// computation with sa and sw equal across taps (sw still per output channel).
#pragma once
#include <cstdint>
#include <vector>

#include "ops/winograd.h"
#include "primitives/gemm_int8.h"
#include "tessera/thread_pool.h"

namespace tessera::compression {

// How the scales are chosen. tap_wise: one activation scale per tap and one weight scale per
// (tap, output channel); otherwise one activation scale per layer and one weight scale per output
// channel for all taps. power_of_two: every scale rounded up to a power of two (the paper's choice:
// rescaling becomes a shift); otherwise max|x| / 127.
struct WinogradInt8Scheme {
  int tile = 4;  // output tile m of F(m x m, 3x3): 2 or 4
  bool tap_wise = true;
  bool power_of_two = true;
};

// max|x| / 127, or the smallest power of two not below it; 1 when max_abs is 0 or not finite.
float winograd_int8_scale(float max_abs, bool power_of_two);

// Transformed and quantized weights of one layer.
struct WinogradInt8Weights {
  int tile = 4;
  int64_t in_channels = 0, out_channels = 0;
  std::vector<int8_t> codes;   // [taps][in_channels][out_channels]
  std::vector<float> scales;   // [taps][out_channels]
  int64_t taps() const { return int64_t(tile + 2) * (tile + 2); }
};
// weights: C_out x C_in x 3 x 3 (ONNX order). U = G g G^T computed in double.
WinogradInt8Weights quantize_winograd_weights(const float* weights, int64_t out_channels, int64_t in_channels,
                                              const WinogradInt8Scheme& scheme);

// Per tap, max |V| over every input tile and channel of x (NCHW, `problem` with its pads), for
// calibration; the caller keeps the running maximum over batches.
std::vector<float> winograd_input_tap_max(const float* x, const WinogradProblem& problem, int tile);
// Histogram of |V| per tap over [0, range[tap]] in `bins` equal bins ([tap][bin] counts), for
// choosing scales that minimize the quantization error instead of covering the maximum.
std::vector<double> winograd_input_tap_histograms(const float* x, const WinogradProblem& problem, int tile,
                                                  const std::vector<float>& range, int bins);
// Scales from the histograms: among candidates at or below the max-based scale (power-of-two
// steps of 2^-k, k = 0..4, or float ratios 1 .. 0.25 of max / 127), the one with the least
// estimated squared error (s^2 / 12 per value inside the range, the clipped excess beyond);
// per tap when tap-wise, else one scale minimizing the sum over taps.
std::vector<float> winograd_activation_scales_mse(const std::vector<float>& tap_max,
                                                  const std::vector<double>& histograms, int bins,
                                                  const WinogradInt8Scheme& scheme);
// Activation scales from per-tap maxima: per tap, or the overall maximum repeated for every tap.
std::vector<float> winograd_activation_scales(const std::vector<float>& tap_max, const WinogradInt8Scheme& scheme);

// Plan-time state: weight codes packed per tap for the int8 GEMM, each with a prepared epilogue
// that dequantizes with sa[p] * sw[p][n]; activation scales fixed (static calibration).
class WinogradInt8Convolution {
 public:
  // codes/weight_scales as in WinogradInt8Weights; activation_scales: one per tap (all > 0).
  WinogradInt8Convolution(const WinogradProblem& problem, int tile, const int8_t* codes,
                          const float* weight_scales, const float* activation_scales);
  // y = conv(x) + bias (optional), then ReLU when asked. NCHW, x and y must not alias.
  void run(const float* x, const float* bias, bool relu, float* y, ThreadPool& pool) const;
  double gemm_ops() const;  // 2 x multiply-adds of the per-tap GEMMs

 private:
  void run_image(const float* x, const float* padded_bias, bool relu, float* y, ThreadPool* gemm_pool) const;

  WinogradProblem p_;
  int64_t tile_ = 0, alpha_ = 0, taps_ = 0, tiles_h_ = 0, tiles_w_ = 0;
  int64_t cin_padded_ = 0, cout_padded_ = 0, lda_ = 0;
  std::vector<float> activation_scales_;
  std::vector<primitives::PackedInt8B> packed_;             // per tap, K = C_in, N = C_out
  std::vector<primitives::PreparedInt8Epilogue> epilogues_;  // per tap
};

}  // namespace tessera::compression
