// What the per-ISA LUT-GEMM kernels share: the tables' layout and one call's description.
// Internal to lut_gemm*.cpp.
#pragma once
#include <cstdint>

#include "compression/bcq.h"

namespace tessera::compression::detail {

// Tables: per batch row, words_per_row * 8 groups of 4 activations, 16 floats each: entry p of
// group c is sum_t (bit t of p ? +x : -x)[4 c + t], activations past the columns taken as 0.
constexpr int64_t kTableEntries = 16;
inline int64_t table_floats_per_row(const PackedBcq& w) { return w.words_per_row() * 8 * kTableEntries; }

struct LutGemmCall {
  const PackedBcq* weights = nullptr;
  int64_t batch = 0;
  const float* tables = nullptr;  // batch x table_floats_per_row
  const float* bias = nullptr;
  bool accumulate = false;
  float* y = nullptr;
  int64_t ldy = 0;
};

// Builds the tables of `rows` activation rows.
using BuildTablesFn = void (*)(const PackedBcq& w, int64_t rows, const float* x, int64_t ldx, float* tables);
// Computes the outputs of row blocks [block_begin, block_end) for every batch row.
using LutRowBlocksFn = void (*)(const LutGemmCall& call, int64_t block_begin, int64_t block_end);

void build_tables_avx512(const PackedBcq& w, int64_t rows, const float* x, int64_t ldx, float* tables);
void lut_row_blocks_avx512(const LutGemmCall& call, int64_t block_begin, int64_t block_end);
void build_tables_avx2(const PackedBcq& w, int64_t rows, const float* x, int64_t ldx, float* tables);
void lut_row_blocks_avx2(const LutGemmCall& call, int64_t block_begin, int64_t block_end);

}  // namespace tessera::compression::detail
