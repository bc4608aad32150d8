// The panel GEMV for AVX2 + FMA (two ymm per 16-column panel row, four rows at a time).
#include "llm/panel_gemv_impl.h"

namespace tessera::llm::detail {

void panel_gemv_avx2(int64_t rows, const float* x, int64_t ldx, const primitives::PackedB& weight,
                     int64_t panel_begin, int64_t panel_end, const float* bias, bool accumulate, float* y,
                     int64_t ldy) {
  PanelGemv<Avx2>::run(rows, x, ldx, weight, panel_begin, panel_end, bias, accumulate, y, ldy);
}

}  // namespace tessera::llm::detail
