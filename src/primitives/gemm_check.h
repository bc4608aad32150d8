// The pieces of GEMM ABFT the driver (gemm.cpp) calls besides the per-ISA checksum loops: the
// bound (docs/ABFT.md) and the counts a thread keeps before adding them to the shared ones.
#pragma once
#include <cmath>
#include <cstdint>

#include "primitives/primitives.h"

namespace tessera::primitives::detail {

// The ABFT bound for `terms` (K plus the summed line's length) as a factor of the magnitude, plus
// an absolute floor: bound = factor * magnitude + floor (docs/ABFT.md).
struct CheckBound {
  double factor = 0, floor = 0;
  CheckBound(const GemmCheck& check, int64_t terms);
  double operator()(double magnitude) const { return factor * magnitude + floor; }
};

// Counts kept by one thread's range and added to the shared atomics once, at its end.
struct LocalCheckCounts {
  int64_t checks = 0, detections = 0;
  float worst_clean_ratio = 0;
  // Compares one checksum; true when |computed - reference| exceeds the bound (NaN included).
  bool check(double computed, double reference, double bound) {
    ++checks;
    const double difference = std::fabs(computed - reference);
    if (!(difference <= bound)) {
      ++detections;
      return true;
    }
    if (bound > 0 && difference / bound > worst_clean_ratio) worst_clean_ratio = float(difference / bound);
    return false;
  }
  void flush(GemmCheckCounters& counters) const;
};

}  // namespace tessera::primitives::detail
