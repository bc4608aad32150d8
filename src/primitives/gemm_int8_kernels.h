// Internal interface of the int8 GEMM microkernels (gemm_int8.h): one register tile of C
// accumulated over the batch-reduce A operands and stored through the epilogue.
#pragma once
#include <cstdint>

#include "primitives/gemm_int8.h"

namespace tessera::primitives::detail {

struct Int8TileArgs {
  int rows = 0;    // <= Int8GemmKernel::mr
  int panels = 0;  // 16-column panels in this tile, <= Int8GemmKernel::max_panels
  int cols = 0;    // columns of C to store, <= panels * 16
  // Row r of A for batch b starts at a_batch[b] + a_offset + r * lda; each batch contributes
  // quads_per_batch full quads, and (batch == 1 only) k_tail < 4 more bytes after them.
  const uint8_t* const* a_batch = nullptr;
  int64_t batch = 1;
  int64_t a_offset = 0;
  int64_t lda = 0;
  int64_t quads_per_batch = 0;
  int k_tail = 0;
  const int8_t* b = nullptr;  // the tile's first panel; next ones b_panel_stride bytes apart
  int64_t b_panel_stride = 0;
  // Output tile origin (element type from the epilogue) and its first column in the whole C.
  void* c = nullptr;
  int64_t ldc = 0;
  int64_t col0 = 0;
  const Int8Epilogue* epilogue = nullptr;
  // The residual's tile origin (row r, column col at residual[r * ld_residual + col]).
  const uint8_t* residual = nullptr;
  int64_t ld_residual = 0;
  // Per column of the whole C: int32 added to every accumulator before scaling
  // (-za colsum(n) + K za zb(n)); nullptr when zero. Per row of this tile: rowsum_a(m), read
  // only with epilogue->b_zero_points. The folded multipliers and addends of
  // PreparedInt8Epilogue (the vector kernel's form of the same epilogue).
  const int32_t* column_offsets = nullptr;
  const int32_t* tile_row_sums = nullptr;
  const float* multipliers = nullptr;
  const float* addends = nullptr;
};

struct Int8GemmKernel {
  int mr;
  int max_panels;
  void (*tile)(const Int8TileArgs& args);
};

extern const Int8GemmKernel kInt8GemmScalar;
extern const Int8GemmKernel kInt8GemmAvx2;
extern const Int8GemmKernel kInt8GemmAvx512Vnni;

// One finished accumulator through the epilogue (scalar; the vector kernels use it for tails of
// nothing, the scalar kernel for everything, and the tests as the definition).
void int8_epilogue_store(const Int8TileArgs& args, int r, int col, int32_t acc);

}  // namespace tessera::primitives::detail
