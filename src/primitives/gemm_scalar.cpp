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

void tile_reference_scalar(const float* a, int mr, int rows, int64_t depth, const float* b_sum, float* reference) {
  float ref[64] = {};
  for (int64_t k = 0; k < depth; ++k) {
    const float* column = a + k * mr;
    for (int r = 0; r < rows; ++r) ref[r] += column[r] * b_sum[k];
  }
  for (int r = 0; r < rows; ++r) reference[r] += ref[r];
}

void panel_row_sums_scalar(const float* panels, int64_t panel_count, int64_t panel_stride, int64_t depth,
                           float* sum, float* abs_sum) {
  for (int64_t p = 0; p < panel_count; ++p)
    for (int64_t k = 0; k < depth; ++k) {
      const float* row = panels + p * panel_stride + k * kCols;
      float s = 0.f, a = 0.f;
      for (int j = 0; j < kCols; ++j) {
        s += row[j];
        a += row[j] < 0 ? -row[j] : row[j];
      }
      sum[p * depth + k] = s;
      if (abs_sum) abs_sum[p * depth + k] = a;
    }
}

void column_reference_scalar(const float* panels, int64_t panel_count, int64_t panel_stride, int64_t depth,
                             const float* a_sum, const float* a_abs_sum, float* reference, float* magnitude) {
  for (int64_t p = 0; p < panel_count; ++p) {
    float* ref = reference + p * kCols;
    float* mag = magnitude + p * kCols;
    for (int64_t k = 0; k < depth; ++k) {
      const float* row = panels + p * panel_stride + k * kCols;
      for (int j = 0; j < kCols; ++j) {
        ref[j] += a_sum[k] * row[j];
        mag[j] += a_abs_sum[k] * (row[j] < 0 ? -row[j] : row[j]);
      }
    }
  }
}

void tile_row_sums_scalar(const float* c, int64_t ldc, int rows, int cols, float* sums, float* abs_sums) {
  for (int r = 0; r < rows; ++r) {
    float s = 0.f, a = 0.f;
    for (int j = 0; j < cols; ++j) {
      s += c[r * ldc + j];
      a += c[r * ldc + j] < 0 ? -c[r * ldc + j] : c[r * ldc + j];
    }
    sums[r] = s;
    abs_sums[r] = a;
  }
}

void tile_column_sums_scalar(const float* c, int64_t ldc, int rows, int cols, float* sums) {
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < cols; ++j) sums[j] += c[r * ldc + j];
}

void tile_partial_row_sums_scalar(const float* c, int64_t ldc, int rows, int cols, float* partial) {
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < cols; ++j) partial[r * 16 + j % 16] += c[r * ldc + j];
}

void dot2_scalar(int64_t n, const float* a, const float* x, const float* y, float* s, float* t) {
  float sum = 0.f, magnitude = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    sum += a[i] * x[i];
    magnitude += (a[i] < 0 ? -a[i] : a[i]) * y[i];
  }
  *s = sum;
  *t = magnitude;
}

void axpy2_scalar(int64_t n, const float* a, float s, float t, float* out1, float* out2) {
  for (int64_t i = 0; i < n; ++i) {
    out1[i] += s * a[i];
    out2[i] += t * (a[i] < 0 ? -a[i] : a[i]);
  }
}

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

constinit const GemmKernel kGemmScalar = {kRows, kCols, kCols, tile_scalar, pack_a_rows4, false,
                                          tile_reference_scalar, panel_row_sums_scalar, column_reference_scalar,
                                          dot2_scalar, axpy2_scalar, tile_column_sums_scalar,
                                          tile_partial_row_sums_scalar, tile_row_sums_scalar};

}  // namespace tessera::primitives::detail
