// Range calibration (int8_calibration.h).
#include "compression/int8_calibration.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tessera/error.h"

namespace tessera::compression {

CalibrationMethod calibration_method_from_string(const std::string& name) {
  if (name == "minmax" || name == "min-max" || name == "min_max") return CalibrationMethod::min_max;
  if (name == "percentile") return CalibrationMethod::percentile;
  if (name == "entropy" || name == "kl") return CalibrationMethod::entropy;
  throw Error("unknown calibration method '" + name + "' (expected minmax, percentile or entropy)");
}

const char* calibration_method_name(CalibrationMethod method) {
  switch (method) {
    case CalibrationMethod::min_max:
      return "minmax";
    case CalibrationMethod::percentile:
      return "percentile";
    case CalibrationMethod::entropy:
      return "entropy";
  }
  return "?";
}

void RangeObserver::observe_range(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) continue;
    if (!seen_) {
      min_ = max_ = x[i];
      seen_ = true;
    }
    min_ = std::min(min_, x[i]);
    max_ = std::max(max_, x[i]);
  }
}

void RangeObserver::observe_histogram(const float* x, int64_t n) {
  if (histogram_.empty()) histogram_.assign(kBins, 0.0);
  const double width = (double(max_) - double(min_)) / kBins;
  if (!(width > 0)) return;
  for (int64_t i = 0; i < n; ++i) {
    // Exact zeros (most of a ReLU output) are represented exactly whatever the range, so they do
    // not weigh in the choice of the range: left in, their spike in the first bin would dominate
    // the entropy method's divergence and push it to clip the real values.
    if (!std::isfinite(x[i]) || x[i] == 0.f) continue;
    const int bin = std::clamp(int((double(x[i]) - min_) / width), 0, kBins - 1);
    histogram_[size_t(bin)] += 1;
  }
}

double entropy_threshold(const std::vector<double>& hist, double bin_width, int levels) {
  const int bins = int(hist.size());
  double best_divergence = std::numeric_limits<double>::infinity();
  int best = bins;
  for (int i = std::min(levels, bins); i <= bins; ++i) {
    // P: the first i bins, with everything past them folded into the last one (clipping).
    std::vector<double> p(hist.begin(), hist.begin() + i);
    for (int j = i; j < bins; ++j) p[size_t(i - 1)] += hist[size_t(j)];
    // Q: the first i bins merged into `levels` groups, each group's mass spread evenly over its
    // non-empty bins (the quantized distribution, expanded back).
    std::vector<double> q(size_t(i), 0.0);
    for (int level = 0; level < levels; ++level) {
      const int begin = int(int64_t(level) * i / levels), end = int(int64_t(level + 1) * i / levels);
      double mass = 0;
      int nonzero = 0;
      for (int j = begin; j < end; ++j) {
        mass += hist[size_t(j)];
        nonzero += hist[size_t(j)] > 0;
      }
      for (int j = begin; j < end; ++j)
        if (hist[size_t(j)] > 0) q[size_t(j)] = mass / nonzero;
    }
    double p_total = 0, q_total = 0;
    for (int j = 0; j < i; ++j) {
      p_total += p[size_t(j)];
      q_total += q[size_t(j)];
    }
    if (p_total <= 0 || q_total <= 0) continue;
    double divergence = 0;
    for (int j = 0; j < i; ++j) {
      if (p[size_t(j)] <= 0) continue;
      const double pj = p[size_t(j)] / p_total;
      // A bin that P has and Q lacks (the folded outlier bin) gets a small floor, as TensorRT does.
      const double qj = q[size_t(j)] > 0 ? q[size_t(j)] / q_total : 1e-12;
      divergence += pj * std::log(pj / qj);
    }
    if (divergence < best_divergence) {
      best_divergence = divergence;
      best = i;
    }
  }
  return best * bin_width;
}

void RangeObserver::range(CalibrationMethod method, double percentile, int levels, float* low, float* high) const {
  float lo = std::min(min_, 0.f), hi = std::max(max_, 0.f);
  if (method == CalibrationMethod::min_max || histogram_.empty() || !(max_ > min_)) {
    *low = lo;
    *high = hi;
    return;
  }
  const double width = (double(max_) - double(min_)) / kBins;
  if (method == CalibrationMethod::percentile) {
    double total = 0;
    for (double c : histogram_) total += c;
    const double tail = total * (1.0 - percentile / 100.0) / (min_ < 0 ? 2.0 : 1.0);
    double seen = 0;
    int top = kBins - 1;
    while (top > 0 && seen + histogram_[size_t(top)] <= tail) seen += histogram_[size_t(top--)];
    seen = 0;
    int bottom = 0;
    if (min_ < 0)
      while (bottom < kBins - 1 && seen + histogram_[size_t(bottom)] <= tail) seen += histogram_[size_t(bottom++)];
    *high = std::max(0.f, float(min_ + (top + 1) * width));
    *low = min_ < 0 ? std::min(0.f, float(min_ + bottom * width)) : 0.f;
    return;
  }
  // Entropy, on each side of zero separately (an asymmetric range need not clip both sides
  // alike: normalized images, for one, reach twice as far above zero as below): the side's
  // values re-binned into kBins bins over [0, its extent], with the share of the levels its
  // extent takes.
  auto side_threshold = [&](bool positive) {
    const double extent = positive ? double(max_) : -double(min_);
    if (!(extent > 0)) return 0.0;
    const double side_width = extent / kBins;
    std::vector<double> side(kBins, 0.0);
    for (int b = 0; b < kBins; ++b) {
      const double center = min_ + (b + 0.5) * width;
      if ((center > 0) != positive || center == 0) continue;
      side[size_t(std::clamp(int(std::fabs(center) / side_width), 0, kBins - 1))] += histogram_[size_t(b)];
    }
    const int side_levels = std::max(16, int(std::lround(levels * extent / (double(hi) - double(lo)))));
    return entropy_threshold(side, side_width, side_levels);
  };
  *high = float(std::min<double>(hi, side_threshold(true)));
  *low = float(std::max<double>(lo, -side_threshold(false)));
}

}  // namespace tessera::compression
