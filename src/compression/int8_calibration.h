// Activation range calibration for int8 quantization: a tensor's observed values over a
// calibration set give its clipping range by min-max, a percentile, or the entropy (KL
// divergence) method of TensorRT's calibrator.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tessera::compression {

enum class CalibrationMethod { min_max, percentile, entropy };
CalibrationMethod calibration_method_from_string(const std::string& name);  // throws on unknown
const char* calibration_method_name(CalibrationMethod method);

// Observes one tensor's values in two passes: observe_range over every batch first, then
// observe_histogram over them again (the histogram spans the final range).
class RangeObserver {
 public:
  static constexpr int kBins = 2048;
  void observe_range(const float* x, int64_t n);
  void observe_histogram(const float* x, int64_t n);  // exact zeros are not counted
  // The clipping range [low, high] (low <= 0 <= high, so 0 is exactly representable).
  // percentile: the fraction of values kept inside, e.g. 99.99; levels: 256 for u8.
  void range(CalibrationMethod method, double percentile, int levels, float* low, float* high) const;
  float min() const { return min_; }
  float max() const { return max_; }

 private:
  float min_ = 0.f, max_ = 0.f;
  bool seen_ = false;
  std::vector<double> histogram_;  // kBins bins over [min_, max_]
};

// The threshold on |x| that minimizes KL(P || Q) between the histogram of |x| clipped at it and
// its quantization to `levels` levels (TensorRT's entropy calibration). Exposed for tests.
double entropy_threshold(const std::vector<double>& magnitude_histogram, double bin_width, int levels);

}  // namespace tessera::compression
