// AVX2 element-wise kernels (WIP).
#include "primitives/vector_activation.h"

namespace tessera::primitives::detail {

void activation_avx2(const UnaryParams& params, __m256* values, int count) {
  for (int i = 0; i < count; ++i) {
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, values[i]);
    for (float& x : lanes) x = unary_one(params, x);
    values[i] = _mm256_load_ps(lanes);
  }
}

}  // namespace tessera::primitives::detail
