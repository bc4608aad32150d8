// The portable GEMM microkernel (4 x 16 tile in plain C++, which the compiler maps onto SSE2)
// and the stand-in tables for ISAs whose vector kernels are not compiled in.
#include "primitives/kernels.h"

namespace tessera::primitives::detail {

namespace {

constexpr int kRows = 4;
constexpr int kCols = 16;

void tile_scalar(const GemmTileArgs& t) {
  float acc[kRows][kCols] = {};
  const int rows = t.rows, cols = t.cols;
  // Packed B panels are zero padded, so the full width can be read; in-place B cannot.
  const int width = t.b_padded ? kCols : cols;
  for (int64_t b = 0; b < t.batch; ++b) {
    const float* a = t.a_batch[b] + t.a_offset;
    const float* bp = t.b_batch[b] + t.b_offset;
    const int64_t a_row = t.a_packed ? 1 : t.a_row_stride;
    const int64_t a_depth = t.a_packed ? kRows : 1;
    for (int64_t k = 0; k < t.k; ++k) {
      const float* b_row = bp + k * t.b_row_stride;
      for (int r = 0; r < rows; ++r) {
        const float av = a[r * a_row + k * a_depth];
        for (int j = 0; j < width; ++j) acc[r][j] += av * b_row[j];
      }
    }
  }
  for (int r = 0; r < rows; ++r) {
    float* c = t.c + r * t.ldc;
    for (int j = 0; j < cols; ++j) {
      float v = acc[r][j];
      if (t.beta == 1.f)
        v += c[j];
      else if (t.beta != 0.f)
        v += t.beta * c[j];
      if (t.epilogue) v = apply_epilogue_one(*t.epilogue, t.row0 + r, t.col0 + j, v);
      c[j] = v;
    }
  }
}

void pack_a_rows4(const float* a, int64_t lda, bool transposed, int64_t rows, int64_t depth, float alpha,
                  float* out) {
  pack_a_scalar(a, lda, transposed, rows, depth, alpha, out, kRows);
}

}  // namespace

void pack_a_scalar(const float* a, int64_t lda, bool transposed, int64_t rows, int64_t depth, float alpha,
                   float* out, int mr) {
  for (int64_t i0 = 0; i0 < rows; i0 += mr) {
    const int64_t height = rows - i0 < mr ? rows - i0 : mr;
    float* panel = out + (i0 / mr) * depth * mr;
    if (!transposed) {
      for (int64_t r = 0; r < height; ++r) {
        const float* src = a + (i0 + r) * lda;
        for (int64_t k = 0; k < depth; ++k) panel[k * mr + r] = alpha * src[k];
      }
    } else {
      for (int64_t k = 0; k < depth; ++k) {
        const float* src = a + k * lda + i0;
        for (int64_t r = 0; r < height; ++r) panel[k * mr + r] = alpha * src[r];
      }
    }
  }
}

constinit const GemmKernel kGemmScalar = {kRows, kCols, kCols, tile_scalar, pack_a_rows4};

}  // namespace tessera::primitives::detail
