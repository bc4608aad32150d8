// LUT-GEMM (Park et al., nuQmm): y = x W^T for BCQ weights by table lookups. For every group of
// mu = 4 activations the 16 sums +-x0 +-x1 +-x2 +-x3 are tabulated once per call; each weight
// plane's 4 sign bits then index that table, so multiply-adds become lookups and adds shared by
// all output rows and planes. For batch 1 (GEMV) and small batches (LLM decode).
#pragma once
#include <cstdint>

#include "compression/bcq.h"
#include "primitives/primitives.h"
#include "tessera/thread_pool.h"

namespace tessera::compression {

// y[b * ldy + n] = (accumulate ? y[b * ldy + n] : 0) + bias[n] + sum_k W[n, k] x[b * ldx + k]
// for b < batch and n < weights.rows(), W the BCQ reconstruction; bias may be null. Parallel over
// blocks of output rows on the pool when given. Any batch works; the kernels are made for a few
// rows (beyond ~16 a dequantized GEMM reuses each weight better).
void lut_gemm(const PackedBcq& weights, int64_t batch, const float* x, int64_t ldx, const float* bias,
              bool accumulate, float* y, int64_t ldy, ThreadPool* pool = nullptr);

// The same with an explicit ISA (clamped to what the CPU supports), for tests and benchmarks.
void lut_gemm(primitives::Isa isa, const PackedBcq& weights, int64_t batch, const float* x, int64_t ldx,
              const float* bias, bool accumulate, float* y, int64_t ldy, ThreadPool* pool = nullptr);

}  // namespace tessera::compression
