// Baseline x86-64 measurement loops: the fallback when CPUID reports neither AVX2/FMA nor
// AVX-512 (plain x86-64 has no FMA, so each step is a multiply and an add).
#include "analysis/ceiling_loops.h"

namespace tessera::analysis::loops {

float fma_loop_scalar(int64_t iterations, float multiplier) {
  // 32 accumulators: the compiler packs them into 8 SSE registers, enough independent chains to
  // hide the multiply and add latencies.
  float acc[32];
  for (int k = 0; k < 32; ++k) acc[k] = float(k) * 1e-3f;
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 32
    for (int k = 0; k < 32; ++k) acc[k] = acc[k] * multiplier + 1e-6f;
  }
  float total = 0;
  for (float x : acc) total += x;
  return total;
}

void triad_scalar(float* __restrict a, const float* __restrict b, const float* __restrict c, float scalar,
                  size_t n) {
  for (size_t i = 0; i < n; ++i) a[i] = b[i] + scalar * c[i];
}

}  // namespace tessera::analysis::loops
