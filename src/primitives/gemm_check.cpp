// GEMM ABFT helpers: checksums of panels and tiles, the error bound, and the deferred epilogue.
// Off the hot path unless a GemmCheck is given; portable code (the sums are a few percent of
// the tile's work, see docs/ABFT.md for the measured overheads).
#include "primitives/gemm_check.h"

#include <cmath>
#include <limits>

#include "primitives/kernels.h"

namespace tessera::primitives::detail {

void panel_row_sums(const float* panels, int64_t panel_count, int64_t panel_stride, int64_t width,
                    int64_t depth, float* sum, float* abs_sum, int64_t sum_stride) {
  for (int64_t p = 0; p < panel_count; ++p) {
    const float* panel = panels + p * panel_stride;
    for (int64_t k = 0; k < depth; ++k) {
      const float* row = panel + k * width;
      float s = 0.f, a = 0.f;
      for (int64_t j = 0; j < width; ++j) {
        s += row[j];
        a += std::fabs(row[j]);
      }
      sum[p * sum_stride + k] = s;
      abs_sum[p * sum_stride + k] = a;
    }
  }
}

void accumulate_tile_reference(const float* a, bool packed, int64_t lda, int mr, int rows, int64_t depth,
                               const float* b_sum, const float* b_abs_sum, double* reference,
                               double* magnitude) {
  if (packed) {
    for (int64_t k = 0; k < depth; ++k) {
      const float* column = a + k * mr;
      const double bs = b_sum[k], ba = b_abs_sum[k];
      for (int r = 0; r < rows; ++r) {
        reference[r] += double(column[r]) * bs;
        magnitude[r] += std::fabs(double(column[r])) * ba;
      }
    }
    return;
  }
  for (int r = 0; r < rows; ++r) {
    const float* row = a + r * lda;
    double ref = 0, mag = 0;
    for (int64_t k = 0; k < depth; ++k) {
      ref += double(row[k]) * b_sum[k];
      mag += std::fabs(double(row[k])) * b_abs_sum[k];
    }
    reference[r] += ref;
    magnitude[r] += mag;
  }
}

void accumulate_row_sums(const float* c, int64_t ldc, int rows, int cols, double* sums, double* abs_sums) {
  for (int r = 0; r < rows; ++r) {
    const float* row = c + r * ldc;
    float s = 0.f, a = 0.f;
    for (int j = 0; j < cols; ++j) {
      s += row[j];
      a += std::fabs(row[j]);
    }
    sums[r] += s;
    abs_sums[r] += a;
  }
}

bool check_row(const GemmCheck& check, double computed, double reference, double magnitude, int64_t terms) {
  constexpr double u = 1.0 / (1 << 24);  // unit round-off of float
  const double m = double(terms + 2) * u;
  const double gamma = check.probabilistic_lambda > 0
                           ? double(check.probabilistic_lambda) * std::sqrt(double(terms + 2)) * u + m * u
                           : (m < 0.5 ? m / (1 - m) : 1.0);
  // The smallest normal float covers products that underflow (their error is not relative).
  const double bound = double(check.safety_factor) * 2 * gamma * magnitude +
                       double(terms) * double(std::numeric_limits<float>::min());
  const double difference = std::fabs(computed - reference);
  check.counters->checks.fetch_add(1, std::memory_order_relaxed);
  // NaN or infinity in the output is always a detection (the comparison below is false for NaN).
  if (!(difference <= bound)) {
    check.counters->detections.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  if (bound > 0) check.counters->record_clean_ratio(float(difference / bound));
  return false;
}

void apply_epilogue_tile(const GemmEpilogue& e, int64_t row0, int64_t col0, int rows, int cols, float* c,
                         int64_t ldc) {
  for (int r = 0; r < rows; ++r) {
    float* row = c + r * ldc;
    const int64_t m = row0 + r;
    if (e.bias_per_column) {
      const float* bias = e.bias_per_column + col0;
      for (int j = 0; j < cols; ++j) row[j] += bias[j];
    }
    if (e.bias_per_row) {
      const float bias = e.bias_per_row[m];
      for (int j = 0; j < cols; ++j) row[j] += bias;
    }
    if (e.residual) {
      const float* residual = e.residual + m * e.ld_residual + col0;
      for (int j = 0; j < cols; ++j) row[j] += residual[j];
    }
    if (e.activation.kind != UnaryKind::identity) unary_f32(e.activation, cols, row, row);
  }
}

}  // namespace tessera::primitives::detail
