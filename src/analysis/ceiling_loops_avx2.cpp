// AVX2/FMA measurement loops (compiled with AVX2 and FMA flags): only called after CPUID
// reports AVX2 and FMA.
#include <immintrin.h>

#include "analysis/ceiling_loops.h"

namespace tessera::analysis::loops {

float fma_loop_avx2(int64_t iterations, float multiplier) {
  // 12 accumulators cover FMA latency x 2 ports and, with the two operands, fit 16 ymm registers.
  const __m256 m = _mm256_set1_ps(multiplier);
  const __m256 add = _mm256_set1_ps(1e-6f);
  __m256 acc[12];
#pragma GCC unroll 12
  for (int k = 0; k < 12; ++k) acc[k] = _mm256_set1_ps(float(k) * 1e-3f);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int k = 0; k < 12; ++k) acc[k] = _mm256_fmadd_ps(acc[k], m, add);
  }
  __m256 sum = acc[0];
#pragma GCC unroll 12
  for (int k = 1; k < 12; ++k) sum = _mm256_add_ps(sum, acc[k]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  float total = 0;
  for (float x : lanes) total += x;
  return total;
}

void triad_avx2(float* __restrict a, const float* __restrict b, const float* __restrict c, float scalar,
                size_t n) {
  const __m256 s = _mm256_set1_ps(scalar);
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(a + i, _mm256_fmadd_ps(s, _mm256_loadu_ps(c + i), _mm256_loadu_ps(b + i)));
  for (; i < n; ++i) a[i] = b[i] + scalar * c[i];
}

}  // namespace tessera::analysis::loops
