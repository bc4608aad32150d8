// The measurement loops behind the machine ceilings: register-only FMA and VNNI loops and the
// STREAM triad, one variant per ISA in its own file; call a variant only after a CPUID check.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tessera::analysis::loops {

// FLOPs per iteration of each FMA loop (accumulators x lanes x 2); the loops keep that many
// independent accumulators so the FMA units never wait on a previous result.
constexpr double kFlopsPerIterationAvx512 = 16 * 16 * 2;
constexpr double kFlopsPerIterationAvx2 = 12 * 8 * 2;
constexpr double kFlopsPerIterationScalar = 32 * 2;  // one multiply and one add per accumulator
// Integer ops per iteration of the VNNI loop: 16 accumulators x 16 lanes x 4 u8*s8 products x 2.
constexpr double kOpsPerIterationVnni = 16 * 16 * 4 * 2;

// Each returns a value that depends on every accumulator so the compiler keeps all the work.
// `multiplier` comes from the caller at run time so nothing can be folded at compile time.
float fma_loop_avx512(int64_t iterations, float multiplier);
float fma_loop_avx2(int64_t iterations, float multiplier);
float fma_loop_scalar(int64_t iterations, float multiplier);
int32_t vnni_loop_avx512(int64_t iterations, int32_t seed);

// a[i] = b[i] + scalar * c[i] for i in [0, n).
void triad_avx512(float* a, const float* b, const float* c, float scalar, size_t n);
void triad_avx2(float* a, const float* b, const float* c, float scalar, size_t n);
void triad_scalar(float* a, const float* b, const float* c, float scalar, size_t n);

}  // namespace tessera::analysis::loops
