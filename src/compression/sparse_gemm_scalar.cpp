// Portable sparse kernels (any x86-64 or other CPU): plain loops in the same order as the vector
// paths (row by row, non-zeros in column order), so they are also the readable definition.
#include <algorithm>

#include "compression/sparse_gemm.h"

namespace tessera::sparse::kernels_scalar {

void csr_block(const CsrMatrix& w, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end,
               const float* x, int64_t ldx, float* y, int64_t ldy) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    float* out = y + r * ldy;
    std::fill(out + col_begin, out + col_end, 0.f);
    for (int64_t i = w.row_start[size_t(r)]; i < w.row_start[size_t(r + 1)]; ++i) {
      const float v = w.value[size_t(i)];
      const float* in = x + int64_t(w.column[size_t(i)]) * ldx;
      for (int64_t c = col_begin; c < col_end; ++c) out[c] += v * in[c];
    }
  }
}

void n_of_m_block(const NOfMMatrix& w, int64_t row_begin, int64_t row_end, int64_t col_begin,
                  int64_t col_end, const float* x, int64_t ldx, float* y, int64_t ldy) {
  const int64_t per_row = w.entries_per_row();
  for (int64_t r = row_begin; r < row_end; ++r) {
    float* out = y + r * ldy;
    std::fill(out + col_begin, out + col_end, 0.f);
    for (int64_t g = 0; g < w.groups(); ++g)
      for (int j = 0; j < w.n; ++j) {
        const size_t slot = size_t(r * per_row + g * w.n + j);
        const float v = w.value[slot];
        const float* in = x + (g * w.m + w.offset[slot]) * ldx;
        for (int64_t c = col_begin; c < col_end; ++c) out[c] += v * in[c];
      }
  }
}

void complementary_sample(const ComplementaryMatrix& w, int64_t k, const int32_t* indices,
                          const float* values, float* y) {
  std::fill(y, y + w.rows, 0.f);
  for (int64_t i = 0; i < k; ++i) {
    const float* packed = w.packed.data() + int64_t(indices[i]) * w.set_stride;
    const uint8_t* owner = w.owner.data() + int64_t(indices[i]) * w.set_stride;
    for (int64_t s = 0; s < w.sets; ++s) {
      const int64_t row = s * w.set_size + owner[s];
      // Padding slots of a short last set may name a row past the end; their weight is zero.
      if (row < w.rows) y[row] += packed[s] * values[i];
    }
  }
}

void dense_kwta_sample(const float* w_transposed, int64_t rows, int64_t k, const int32_t* indices,
                       const float* values, float* y) {
  std::fill(y, y + rows, 0.f);
  for (int64_t i = 0; i < k; ++i) {
    const float* weights = w_transposed + int64_t(indices[i]) * rows;
    for (int64_t r = 0; r < rows; ++r) y[r] += weights[r] * values[i];
  }
}

}  // namespace tessera::sparse::kernels_scalar
