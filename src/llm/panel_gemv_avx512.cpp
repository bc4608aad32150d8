// The panel GEMV for AVX-512 (one zmm per 16-column panel row, eight rows at a time).
#include "llm/panel_gemv_impl.h"

namespace tessera::llm::detail {

void panel_gemv_avx512(int64_t rows, const float* x, int64_t ldx, const primitives::PackedB& weight,
                       int64_t panel_begin, int64_t panel_end, const float* bias, bool accumulate, float* y,
                       int64_t ldy) {
  PanelGemv<Avx512>::run(rows, x, ldx, weight, panel_begin, panel_end, bias, accumulate, y, ldy);
}

}  // namespace tessera::llm::detail
