// AVX-512 measurement loops (compiled with AVX-512 flags; the VNNI loop adds avx512vnni by
// attribute): only called after CPUID reports the features.
#include <immintrin.h>

#include "analysis/ceiling_loops.h"

namespace tessera::analysis::loops {

float fma_loop_avx512(int64_t iterations, float multiplier) {
  // 16 accumulators cover FMA latency (4 cycles) x 2 FMA ports with room to spare, and with the
  // two operands still fit the 32 zmm registers, so the loop never touches memory.
  const __m512 m = _mm512_set1_ps(multiplier);
  const __m512 add = _mm512_set1_ps(1e-6f);
  __m512 acc[16];
#pragma GCC unroll 16
  for (int k = 0; k < 16; ++k) acc[k] = _mm512_set1_ps(float(k) * 1e-3f);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
    for (int k = 0; k < 16; ++k) acc[k] = _mm512_fmadd_ps(acc[k], m, add);
  }
  __m512 sum = acc[0];
#pragma GCC unroll 16
  for (int k = 1; k < 16; ++k) sum = _mm512_add_ps(sum, acc[k]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, sum);
  float total = 0;
  for (float x : lanes) total += x;
  return total;
}

__attribute__((target("avx512vnni"))) int32_t vnni_loop_avx512(int64_t iterations, int32_t seed) {
  const __m512i a = _mm512_set1_epi32(seed | 0x01010101);
  const __m512i b = _mm512_set1_epi32(0x01010101);
  __m512i acc[16];
#pragma GCC unroll 16
  for (int k = 0; k < 16; ++k) acc[k] = _mm512_set1_epi32(k);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
    for (int k = 0; k < 16; ++k) acc[k] = _mm512_dpbusd_epi32(acc[k], a, b);
  }
  __m512i sum = acc[0];
#pragma GCC unroll 16
  for (int k = 1; k < 16; ++k) sum = _mm512_add_epi32(sum, acc[k]);
  alignas(64) int32_t lanes[16];
  _mm512_store_si512(lanes, sum);
  uint32_t total = 0;  // wraps by design: only a dependence on every lane is wanted
  for (int32_t x : lanes) total += uint32_t(x);
  return int32_t(total);
}

void triad_avx512(float* __restrict a, const float* __restrict b, const float* __restrict c, float scalar,
                  size_t n) {
  const __m512 s = _mm512_set1_ps(scalar);
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(a + i, _mm512_fmadd_ps(s, _mm512_loadu_ps(c + i), _mm512_loadu_ps(b + i)));
  for (; i < n; ++i) a[i] = b[i] + scalar * c[i];
}

}  // namespace tessera::analysis::loops
