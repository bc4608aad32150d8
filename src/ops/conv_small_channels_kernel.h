// The plain-data layout and the per-ISA entry points of the small-input-channel convolution
// (conv_small_channels.h). Kept free of library headers: the *_avx512.cpp file includes it, and
// inline library code compiled there with AVX-512 flags could be the copy the linker keeps.
#pragma once
#include <cstdint>

namespace tessera {

namespace primitives {
struct UnaryParams;
}

// One image's 2-D convolution, one group, dilation 1.
struct SmallChannelConvShape {
  int64_t in_channels = 0, in_h = 0, in_w = 0;
  int64_t out_channels = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0;
};

constexpr int64_t kSmallChannelConvBlock = 8;  // output channels per register block
constexpr int64_t kSmallChannelConvMaxTaps = 256;  // input channels x kernel taps

// The layout the per-ISA kernel reads; filled by SmallChannelConv.
struct SmallChannelConvPlan {
  SmallChannelConvShape shape;
  int64_t phase_width = 0;      // floats per phase-plane row: outputs rounded up to 16, plus the taps' reach
  int64_t padded_rows = 0;      // input rows including the top and bottom padding that taps read
  int64_t channel_blocks = 0;   // output channels in blocks of kSmallChannelConvBlock
  const float* packed_weights = nullptr;  // [channel block][c][kh][kw][8], zero past out_channels

  // Floats of one channel's phase planes, and where phase p's padded row r starts in them.
  int64_t channel_floats() const { return shape.stride_w * padded_rows * phase_width; }
  int64_t phase_row(int64_t phase, int64_t row) const { return (phase * padded_rows + row) * phase_width; }
};

// Called with each register tile's raw sums before bias and activation, as primitives::
// GemmFaultHook is by the GEMM driver (the fault injector's accumulator sites): the tile is rows
// (output channels from row0) x cols (output pixels from col0, row-major over the plane) at c.
using SmallChannelConvHook = void (*)(void* context, int64_t row0, int64_t col0, int rows, int cols, float* c,
                                      int64_t ldc);

// AVX-512 kernel (conv_small_channels_avx512.cpp).
namespace small_channel_conv_avx512 {
// Channel c's phase planes for padded input rows [row0, row1), from the image [C][H][W].
void split_rows(const SmallChannelConvPlan& plan, const float* image, int64_t c, int64_t row0, int64_t row1,
                float* planes);
// Output rows [oh0, oh1) of every channel into [C_out][out_h][out_w]; bias, residual may be nullptr.
void output_rows(const SmallChannelConvPlan& plan, const float* planes, const float* bias, const float* residual,
                 const primitives::UnaryParams& activation, SmallChannelConvHook hook, void* hook_context,
                 int64_t oh0, int64_t oh1, float* output);
}  // namespace small_channel_conv_avx512

}  // namespace tessera
