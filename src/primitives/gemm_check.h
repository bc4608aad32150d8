// The pieces of GEMM ABFT the driver (gemm.cpp) calls: panel row sums of B, per-tile references
// from A, row sums of finished tiles, the bound test, and the epilogue applied after a check.
#pragma once
#include <cstdint>

#include "primitives/primitives.h"

namespace tessera::primitives::detail {

// For each of `panels` panels of width `width` (panel_stride floats apart) and each of its
// `depth` rows: sum[p * sum_stride + k] and abs_sum[...] of the row's values.
void panel_row_sums(const float* panels, int64_t panel_count, int64_t panel_stride, int64_t width,
                    int64_t depth, float* sum, float* abs_sum, int64_t sum_stride);

// reference[r] += sum_k a(r, k) * b_sum[k] and magnitude[r] += sum_k |a(r, k)| * b_abs_sum[k]
// for r < rows, k < depth, where a(r, k) = a[k * mr + r] when packed (k-major micro-panel),
// else a[r * lda + k]. Accumulates in double: the reference must be far more accurate than the
// bound it is held to.
void accumulate_tile_reference(const float* a, bool packed, int64_t lda, int mr, int rows, int64_t depth,
                               const float* b_sum, const float* b_abs_sum, double* reference,
                               double* magnitude);

// sums[r] += sum_j c[r * ldc + j] and abs_sums[r] += sum_j |c[r * ldc + j]| for j < cols.
void accumulate_row_sums(const float* c, int64_t ldc, int rows, int cols, double* sums, double* abs_sums);

// Compares one row checksum and counts it; true when the difference exceeds the bound.
// `terms`: K plus the number of summed columns.
bool check_row(const GemmCheck& check, double computed, double reference, double magnitude, int64_t terms);

// Applies the epilogue (bias, residual, activation) to a finished tile in place; the same
// operations in the same order as the microkernels' fused store.
void apply_epilogue_tile(const GemmEpilogue& epilogue, int64_t row0, int64_t col0, int rows, int cols, float* c,
                         int64_t ldc);

}  // namespace tessera::primitives::detail
