// AVX-512 element-wise kernels (WIP).
#include "primitives/vector_activation.h"

namespace tessera::primitives::detail {

void activation_avx512(const UnaryParams& params, __m512* values, int count) {
  for (int i = 0; i < count; ++i) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, values[i]);
    for (float& x : lanes) x = unary_one(params, x);
    values[i] = _mm512_load_ps(lanes);
  }
}

}  // namespace tessera::primitives::detail
