// Body of the Winograd input and output transforms, included by one .cpp per ISA with
// WINOGRAD_NAMESPACE set; 16 channels form one GCC vector, so each ISA's flags pick the width.
#include <cstring>

#include "ops/winograd.h"

// 64-byte vectors as function arguments change the ABI without AVX-512; everything here is
// inlined into this file's own entry points, so the warning does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace tessera::WINOGRAD_NAMESPACE {

namespace {

typedef float Vec __attribute__((vector_size(64)));
static_assert(sizeof(Vec) == kWinogradLanes * sizeof(float), "one vector per channel block");

#define WINOGRAD_INLINE inline __attribute__((always_inline))

WINOGRAD_INLINE Vec load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);  // unaligned load; compiles to one vector move
  return v;
}
WINOGRAD_INLINE void store(float* p, const Vec& v) { std::memcpy(p, &v, sizeof v); }

// 1-D transforms of a column of the patch, in place in `d` with element stride `s` (the 2-D
// transform is a column pass then a row pass). The formulas are the rows of B^T and A^T of
// Lavin and Gray's F(2,3) and F(4,3), written out so no multiply by 0 or 1 is spent.
WINOGRAD_INLINE void input_1d_f2(Vec* d, int s) {
  const Vec d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s];
  d[0] = d0 - d2;
  d[s] = d1 + d2;
  d[2 * s] = d2 - d1;
  d[3 * s] = d1 - d3;
}
WINOGRAD_INLINE void input_1d_f4(Vec* d, int s) {
  const Vec d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
  const Vec a = d4 - 4.f * d2;  // shared by rows 1 and 2
  const Vec b = d3 - 4.f * d1;
  const Vec c = d4 - d2;  // shared by rows 3 and 4
  const Vec e = 2.f * (d3 - d1);
  d[0] = 4.f * d0 - 5.f * d2 + d4;
  d[s] = a + b;
  d[2 * s] = a - b;
  d[3 * s] = c + e;
  d[4 * s] = c - e;
  d[5 * s] = 4.f * d1 - 5.f * d3 + d5;
}
// Output: m (length alpha, stride s) -> o (length m, stride so).
WINOGRAD_INLINE void output_1d_f2(const Vec* m, int s, Vec* o, int so) {
  o[0] = m[0] + m[s] + m[2 * s];
  o[so] = m[s] - m[2 * s] - m[3 * s];
}
WINOGRAD_INLINE void output_1d_f4(const Vec* m, int s, Vec* o, int so) {
  const Vec sum12 = m[s] + m[2 * s], diff12 = m[s] - m[2 * s];
  const Vec sum34 = m[3 * s] + m[4 * s], diff34 = m[3 * s] - m[4 * s];
  o[0] = m[0] + sum12 + sum34;
  o[so] = diff12 + 2.f * diff34;
  o[2 * so] = sum12 + 4.f * sum34;
  o[3 * so] = diff12 + 8.f * diff34 + m[5 * s];
}

template <int Tile>
WINOGRAD_INLINE void input_transform(const WinogradInputArgs& a) {
  constexpr int alpha = Tile + 2;
  for (int64_t tr = 0; tr < a.tile_rows; ++tr)
    for (int64_t tc = 0; tc < a.tile_cols; ++tc) {
      const int64_t tile = tr * a.tile_cols + tc;
      const float* origin = a.band + tr * Tile * a.row_stride + tc * Tile * a.channel_stride;
      float* out = a.v + tile * a.ldv;
      for (int64_t cb = 0; cb < a.channel_blocks; ++cb) {
        Vec d[alpha * alpha];
        for (int r = 0; r < alpha; ++r)
          for (int c = 0; c < alpha; ++c)
            d[r * alpha + c] = load(origin + r * a.row_stride + c * a.channel_stride + cb * kWinogradLanes);
        for (int c = 0; c < alpha; ++c) {  // columns: B^T d
          if constexpr (Tile == 2)
            input_1d_f2(d + c, alpha);
          else
            input_1d_f4(d + c, alpha);
        }
        for (int r = 0; r < alpha; ++r) {  // rows: (B^T d) B
          if constexpr (Tile == 2)
            input_1d_f2(d + r * alpha, 1);
          else
            input_1d_f4(d + r * alpha, 1);
        }
        for (int p = 0; p < alpha * alpha; ++p) store(out + p * a.point_stride + cb * kWinogradLanes, d[p]);
      }
    }
}

template <int Tile>
WINOGRAD_INLINE void output_transform(const WinogradOutputArgs& a) {
  constexpr int alpha = Tile + 2;
  const int64_t blocks = (a.channels + kWinogradLanes - 1) / kWinogradLanes;
  for (int64_t tr = 0; tr < a.tile_rows; ++tr) {
    const int64_t rows = a.valid_rows - tr * Tile < Tile ? a.valid_rows - tr * Tile : Tile;
    for (int64_t tc = 0; tc < a.tile_cols; ++tc) {
      const int64_t cols = a.valid_cols - tc * Tile < Tile ? a.valid_cols - tc * Tile : Tile;
      const int64_t tile = tr * a.tile_cols + tc;
      const float* in = a.m + tile * a.ldm;
      float* y = a.y + (tr * Tile * a.width + tc * Tile) * (a.pixel_stride > 0 ? a.pixel_stride : 1);
      for (int64_t cb = 0; cb < blocks; ++cb) {
        Vec m[alpha * alpha];
        for (int p = 0; p < alpha * alpha; ++p) m[p] = load(in + p * a.point_stride + cb * kWinogradLanes);
        Vec t[Tile * alpha];  // A^T m: Tile rows x alpha columns
        for (int c = 0; c < alpha; ++c) {
          if constexpr (Tile == 2)
            output_1d_f2(m + c, alpha, t + c, alpha);
          else
            output_1d_f4(m + c, alpha, t + c, alpha);
        }
        Vec o[Tile * Tile];  // (A^T m) A
        for (int r = 0; r < Tile; ++r) {
          if constexpr (Tile == 2)
            output_1d_f2(t + r * alpha, 1, o + r * Tile, 1);
          else
            output_1d_f4(t + r * alpha, 1, o + r * Tile, 1);
        }
        if (a.bias) {
          const Vec b = load(a.bias + cb * kWinogradLanes);
          for (int i = 0; i < Tile * Tile; ++i) o[i] += b;
        }
        const int64_t lanes = a.channels - cb * kWinogradLanes < kWinogradLanes
                                  ? a.channels - cb * kWinogradLanes
                                  : kWinogradLanes;
        if (a.pixel_stride > 0) {  // NHWC: the lanes are a pixel's channels, stored as they are
          for (int64_t i = 0; i < rows; ++i)
            for (int64_t j = 0; j < cols; ++j) {
              float* dst = y + (i * a.width + j) * a.pixel_stride + cb * kWinogradLanes;
              if (lanes == kWinogradLanes)
                store(dst, o[i * Tile + j]);
              else
                std::memcpy(dst, &o[i * Tile + j], size_t(lanes) * sizeof(float));
            }
          continue;
        }
        // Lanes are channels and y is NCHW: each lane goes to its own plane. The rows of a tile
        // are contiguous in every plane, so the stores still fill cache lines in order.
        float lane_values[Tile * Tile][kWinogradLanes];
        std::memcpy(lane_values, o, sizeof lane_values);
        float* plane0 = y + cb * kWinogradLanes * a.plane;
        for (int64_t l = 0; l < lanes; ++l) {
          float* dst = plane0 + l * a.plane;
          for (int64_t i = 0; i < rows; ++i)
            for (int64_t j = 0; j < cols; ++j) dst[i * a.width + j] = lane_values[i * Tile + j][l];
        }
      }
    }
  }
}

void input_f2x2(const WinogradInputArgs& a) { input_transform<2>(a); }
void input_f4x4(const WinogradInputArgs& a) { input_transform<4>(a); }
void output_f2x2(const WinogradOutputArgs& a) { output_transform<2>(a); }
void output_f4x4(const WinogradOutputArgs& a) { output_transform<4>(a); }

#undef WINOGRAD_INLINE

}  // namespace

constinit const WinogradTransformKernels kKernels = {input_f2x2, input_f4x4, output_f2x2, output_f4x4};

}  // namespace tessera::WINOGRAD_NAMESPACE
