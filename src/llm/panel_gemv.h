// Decode's matrix-vector products: y = x W + bias (+ y) for a few rows of x, with W in the GEMM's
// packed panel layout (primitives::PackedB), each panel streamed once, front to back, whatever
// the number of rows: at batch 1 the weights' bandwidth is the whole cost of a token.
#pragma once
#include <cstdint>

#include "primitives/primitives.h"

namespace tessera::llm::detail {

// y[r * ldy + n] = (accumulate ? y[r * ldy + n] : 0) + bias[n] + sum_k x[r * ldx + k] W(k, n) for
// r < rows and the columns n < W.N() of panels [panel_begin, panel_end); bias may be null.
// Single-threaded: callers split the panels between threads.
using PanelGemvFn = void (*)(int64_t rows, const float* x, int64_t ldx, const primitives::PackedB& weight,
                             int64_t panel_begin, int64_t panel_end, const float* bias, bool accumulate,
                             float* y, int64_t ldy);

void panel_gemv_avx2(int64_t rows, const float* x, int64_t ldx, const primitives::PackedB& weight,
                     int64_t panel_begin, int64_t panel_end, const float* bias, bool accumulate, float* y,
                     int64_t ldy);
void panel_gemv_avx512(int64_t rows, const float* x, int64_t ldx, const primitives::PackedB& weight,
                       int64_t panel_begin, int64_t panel_end, const float* bias, bool accumulate, float* y,
                       int64_t ldy);

// The kernel for an ISA; nullptr for the portable one, which has none of its own (the caller
// then takes the GEMM, whose portable microkernel is no slower than a portable GEMV would be).
PanelGemvFn panel_gemv(primitives::Isa isa);

}  // namespace tessera::llm::detail
