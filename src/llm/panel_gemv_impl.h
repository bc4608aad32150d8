// The panel GEMV written once over the ISA traits of primitives/vector_math.h; included by
// panel_gemv_avx2.cpp and panel_gemv_avx512.cpp, each of which gets its own (internal) copy.
#pragma once
#include <xmmintrin.h>

#include <algorithm>

#include "llm/panel_gemv.h"
#include "primitives/vector_math.h"

namespace tessera::llm::detail {
namespace {

using primitives::detail::Avx2;
#if defined(__AVX512F__)
using primitives::detail::Avx512;
#endif

// How far ahead of the loads the next panel rows are requested, in floats: the hardware
// prefetcher follows the stream too, but starts each panel late.
constexpr int64_t kPrefetchFloats = 2048;

template <class S>
struct PanelGemv {
  using V = typename S::V;
  static constexpr int kLanes = S::lanes;
  static constexpr int kVectors = 16 / kLanes;  // vectors per panel row
  // Rows computed together: all their accumulators stay in registers.
  static constexpr int kMaxRows = kVectors == 1 ? 8 : 4;

  // R rows of y over one panel (cols <= 16 valid columns). With few rows each accumulator is
  // split into `chains` partial sums over k, so the FMA latency does not bound the stream.
  template <int R>
  static void rows_of_panel(const float* x, int64_t ldx, const float* panel, int64_t K, int cols,
                            const float* bias, bool accumulate, float* y, int64_t ldy) {
    constexpr int chains = R * kVectors >= 4 ? 1 : 4 / (R * kVectors);
    V acc[R][kVectors][chains];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < kVectors; ++v)
        for (int c = 0; c < chains; ++c) acc[r][v][c] = S::set1(0.f);
    int64_t k = 0;
    for (; k + chains <= K; k += chains) {
      _mm_prefetch(reinterpret_cast<const char*>(panel + k * 16 + kPrefetchFloats), _MM_HINT_T0);
#pragma GCC unroll 16
      for (int c = 0; c < chains; ++c)
        for (int v = 0; v < kVectors; ++v) {
          const V b = S::load(panel + (k + c) * 16 + v * kLanes);
          for (int r = 0; r < R; ++r) acc[r][v][c] = S::fmadd(S::set1(x[r * ldx + k + c]), b, acc[r][v][c]);
        }
    }
    for (; k < K; ++k)
#pragma GCC unroll 16
      for (int v = 0; v < kVectors; ++v) {
        const V b = S::load(panel + k * 16 + v * kLanes);
        for (int r = 0; r < R; ++r) acc[r][v][0] = S::fmadd(S::set1(x[r * ldx + k]), b, acc[r][v][0]);
      }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < kVectors; ++v) {
        const int64_t valid = cols - v * kLanes;
        if (valid <= 0) continue;
        V sum = acc[r][v][0];
        for (int c = 1; c < chains; ++c) sum = S::add(sum, acc[r][v][c]);
        float* out = y + r * ldy + v * kLanes;
        if (bias) sum = S::add(sum, S::load_first(bias + v * kLanes, valid));
        if (accumulate) sum = S::add(sum, S::load_first(out, valid));
        S::store_first(out, valid, sum);
      }
  }

  static void run(int64_t rows, const float* x, int64_t ldx, const primitives::PackedB& weight,
                  int64_t panel_begin, int64_t panel_end, const float* bias, bool accumulate, float* y,
                  int64_t ldy) {
    const int64_t K = weight.K(), N = weight.N(), width = weight.panel_width();
    // Panels outer, rows inner: a panel is read from memory once and from cache by the other rows.
    for (int64_t p = panel_begin; p < panel_end; ++p) {
      const int64_t n0 = p * width;
      const int cols = int(std::min<int64_t>(width, N - n0));
      const float* panel = weight.panel(p);
      const float* panel_bias = bias ? bias + n0 : nullptr;
      for (int64_t r0 = 0; r0 < rows; r0 += kMaxRows) {
        const float* xr = x + r0 * ldx;
        float* yr = y + r0 * ldy + n0;
        switch (std::min<int64_t>(kMaxRows, rows - r0)) {
#define TESSERA_PANEL_GEMV_ROWS(R)                                                                    \
  case R:                                                                                             \
    rows_of_panel<(R <= kMaxRows ? R : 1)>(xr, ldx, panel, K, cols, panel_bias, accumulate, yr, ldy); \
    break;
          TESSERA_PANEL_GEMV_ROWS(1)
          TESSERA_PANEL_GEMV_ROWS(2)
          TESSERA_PANEL_GEMV_ROWS(3)
          TESSERA_PANEL_GEMV_ROWS(4)
          TESSERA_PANEL_GEMV_ROWS(5)
          TESSERA_PANEL_GEMV_ROWS(6)
          TESSERA_PANEL_GEMV_ROWS(7)
          TESSERA_PANEL_GEMV_ROWS(8)
#undef TESSERA_PANEL_GEMV_ROWS
        }
      }
    }
  }
};

}  // namespace
}  // namespace tessera::llm::detail
