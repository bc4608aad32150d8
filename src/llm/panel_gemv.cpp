// Picks the panel GEMV for the active ISA (baseline code: nothing here runs vector code).
#include "llm/panel_gemv.h"

namespace tessera::llm::detail {

PanelGemvFn panel_gemv(primitives::Isa isa) {
  switch (isa) {
    case primitives::Isa::avx512:
      return panel_gemv_avx512;
    case primitives::Isa::avx2:
      return panel_gemv_avx2;
    default:
      return nullptr;
  }
}

}  // namespace tessera::llm::detail
