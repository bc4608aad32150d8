// GEMM ABFT helpers: the error bound and the per-thread counts. The checksum loops themselves are
// per ISA, in the GemmKernel tables (gemm_<isa>.cpp).
#include "primitives/gemm_check.h"

#include <cmath>
#include <limits>

#include "primitives/kernels.h"

namespace tessera::primitives::detail {

CheckBound::CheckBound(const GemmCheck& check, int64_t terms) {
  constexpr double u = 1.0 / (1 << 24);  // unit round-off of float
  const double m = double(terms + 2) * u;
  const double gamma = check.probabilistic_lambda > 0
                           ? double(check.probabilistic_lambda) * std::sqrt(double(terms + 2)) * u + m * u
                           : (m < 0.5 ? m / (1 - m) : 1.0);
  factor = double(check.safety_factor) * 2 * gamma;
  // The smallest normal float covers products that underflow (their error is not relative).
  floor = double(terms) * double(std::numeric_limits<float>::min());
}

void LocalCheckCounts::flush(GemmCheckCounters& counters) const {
  counters.checks.fetch_add(checks, std::memory_order_relaxed);
  if (detections) counters.detections.fetch_add(detections, std::memory_order_relaxed);
  counters.record_clean_ratio(worst_clean_ratio);
}

}  // namespace tessera::primitives::detail
