// Winograd convolution F(2x2,3x3) and F(4x4,3x3) for f32 3x3 stride-1 convolutions on NCHW or
// NHWC activations: weights transformed and packed at plan time, per-band input transform
// (from a channel-last copy of the band), batched GEMMs, fused output step.
#pragma once
#include <cstdint>
#include <vector>

#include "primitives/conv_nhwc.h"
#include "primitives/primitives.h"
#include "tessera/thread_pool.h"

namespace tessera {

// Output tile size m of F(m x m, 3x3); the transform works on (m + 2) x (m + 2) input patches.
enum class WinogradVariant { f2x2 = 2, f4x4 = 4 };

// One 2-D problem: a 3x3 window, stride 1, dilation 1, one group, any pads.
struct WinogradProblem {
  int64_t batch = 0, in_channels = 0, out_channels = 0;
  int64_t in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int64_t pad_top = 0, pad_left = 0;
  bool channels_last = false;  // x, y and the residual are NHWC instead of NCHW
};

// Channels are processed in blocks of this many lanes (one zmm); buffers are padded to it.
constexpr int64_t kWinogradLanes = 16;

// Arguments of the per-ISA transform kernels (plain data, so the ISA files need nothing else).
struct WinogradInputArgs {
  const float* band = nullptr;  // channel-last padded input band [rows][cols][channel_stride]
  int64_t row_stride = 0;       // floats between consecutive band rows
  int64_t channel_stride = 0;   // floats per band pixel (channels padded to kWinogradLanes)
  int64_t channel_blocks = 0;   // channel_stride / kWinogradLanes
  int64_t tile_rows = 0, tile_cols = 0;
  float* v = nullptr;  // V[point][tile][ldv]
  int64_t point_stride = 0, ldv = 0;
};
struct WinogradOutputArgs {
  const float* m = nullptr;  // M[point][tile][ldm], channels padded to kWinogradLanes
  int64_t point_stride = 0, ldm = 0;
  int64_t channels = 0;  // real output channels (lanes past it are not stored)
  int64_t tile_rows = 0, tile_cols = 0;
  const float* bias = nullptr;             // padded to the lane multiple, or nullptr
  float* y = nullptr;                      // output of one image at the band's first output row
  int64_t plane = 0, width = 0;            // NCHW: channel plane size; both: row length of y
  int64_t pixel_stride = 0;                // NHWC: floats from one pixel to the next (0: NCHW)
  int64_t valid_rows = 0, valid_cols = 0;  // output rows/cols of the band inside the image
};
struct WinogradTransformKernels {
  void (*input_f2x2)(const WinogradInputArgs&);
  void (*input_f4x4)(const WinogradInputArgs&);
  void (*output_f2x2)(const WinogradOutputArgs&);
  void (*output_f4x4)(const WinogradOutputArgs&);
};
namespace winograd_scalar {
extern const WinogradTransformKernels kKernels;
}
namespace winograd_avx2 {
extern const WinogradTransformKernels kKernels;
}
namespace winograd_avx512 {
extern const WinogradTransformKernels kKernels;
}

// Plan-time state of one Winograd convolution: transformed weights packed as one GEMM B operand
// per transform point ([C_in x C_out], so a band's tiles are the GEMM rows), plus the band size.
class WinogradConvolution {
 public:
  // weights: C_out x C_in x 3 x 3, row-major. `threads` sizes the bands so each thread gets work.
  WinogradConvolution(const WinogradProblem& problem, WinogradVariant variant, const float* weights,
                      int threads);
  // y = conv(x) + bias, then + residual, then activation (all optional; NCHW, or NHWC with
  // channels_last; no aliasing of x/y).
  void run(const float* x, const float* bias, const float* residual,
           const primitives::UnaryParams& activation, float* y, ThreadPool& pool,
           const primitives::GemmCheck* check = nullptr) const;
  WinogradVariant variant() const { return variant_; }
  // Multiply-add work of the batched GEMMs (x2), for reporting.
  double gemm_flops() const;

 private:
  void run_band(int64_t image, int64_t band, const float* x, const float* bias, float* y,
                ThreadPool* gemm_pool, const primitives::GemmCheck* check) const;

  WinogradProblem p_;
  WinogradVariant variant_;
  int64_t tile_ = 0, alpha_ = 0, points_ = 0;
  // The first tile row of a band (band_start(bands_) == tiles_h_).
  int64_t band_start(int64_t band) const { return band * tiles_h_ / bands_; }
  int64_t tiles_h_ = 0, tiles_w_ = 0, band_tile_rows_ = 1, bands_ = 1;
  int64_t cin_padded_ = 0, cout_padded_ = 0, ldv_ = 0, ldm_ = 0;
  std::vector<primitives::PackedB> transformed_weights_;  // one per transform point
};

// The problem of a 3x3 stride-1 channels-last convolution (channels_last set; the kernel,
// stride and dilation of `shape` are not checked here).
WinogradProblem channels_last_winograd_problem(const primitives::ConvNhwcShape& shape);

// Estimated seconds per run of a 3x3 stride-1 convolution with each algorithm on `threads`
// threads; used at plan time to choose. `variant` 0 means the direct (im2col + GEMM) path.
double estimate_conv3x3_seconds(const WinogradProblem& problem, int variant, int threads = 1);

}  // namespace tessera
