// Token sampling: temperature, top-k and top-p in Hugging Face's order, and a seeded draw from
// what is left. Top-p sorts only as much of the vocabulary as it needs (the nucleus is usually
// a few dozen tokens out of 50257).
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "tessera/error.h"
#include "tessera/text_generation.h"

namespace tessera::llm {

namespace {

using Candidate = std::pair<int32_t, float>;

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[size_t(best)] || std::isnan(logits[size_t(best)])) best = int32_t(i);
  return best;
}

void normalize(std::vector<Candidate>& candidates) {
  double total = 0;
  for (const Candidate& c : candidates) total += c.second;
  for (Candidate& c : candidates) c.second = float(double(c.second) / total);
}

// The tokens that may be drawn with their probabilities (summing to 1); most probable first
// when top-p had to sort them.
void find_candidates(std::span<const float> logits, const SamplingOptions& options,
                     std::vector<Candidate>& out) {
  out.clear();
  const int64_t n = int64_t(logits.size());
  TESSERA_CHECK(n > 0, "cannot sample from an empty vocabulary");
  if (options.temperature == 0.f) {
    out.push_back({argmax(logits), 1.f});
    return;
  }
  // Divided, not multiplied by the inverse: the same rounding as the reference's scores / T.
  const float temperature = options.temperature;
  float threshold = -std::numeric_limits<float>::infinity();
  if (options.top_k > 0 && options.top_k < n) {
    thread_local std::vector<float> scaled;
    scaled.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) scaled[size_t(i)] = logits[size_t(i)] / temperature;
    std::nth_element(scaled.begin(), scaled.begin() + (options.top_k - 1), scaled.end(),
                     std::greater<float>());
    threshold = scaled[size_t(options.top_k - 1)];
  }
  float largest = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) largest = std::max(largest, logits[size_t(i)] / temperature);
  TESSERA_CHECK(std::isfinite(largest), "no token has a finite logit");
  for (int64_t i = 0; i < n; ++i) {
    const float scaled = logits[size_t(i)] / temperature;
    if (scaled >= threshold) out.push_back({int32_t(i), std::exp(scaled - largest)});
  }
  normalize(out);
  if (options.top_p >= 1.f) return;

  // Keep tokens, most probable first, while the mass before each is under p. Sort the top 64,
  // and eight times more whenever those do not reach p.
  auto more_probable = [](const Candidate& a, const Candidate& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  };
  const size_t total = out.size();
  for (size_t sorted = std::min<size_t>(total, 64);; sorted = std::min(total, sorted * 8)) {
    std::partial_sort(out.begin(), out.begin() + std::ptrdiff_t(sorted), out.end(), more_probable);
    double mass = 0;
    size_t keep = 0;
    while (keep < sorted && mass < double(options.top_p)) mass += out[keep++].second;
    if (mass >= double(options.top_p) || sorted == total) {
      out.resize(keep);
      break;
    }
  }
  normalize(out);
}

}  // namespace

void check_sampling_options(const SamplingOptions& options) {
  TESSERA_CHECK(std::isfinite(options.temperature) && options.temperature >= 0.f,
                "temperature must be a finite number >= 0 (0: greedy)");
  TESSERA_CHECK(options.top_k >= 0, "top-k must be >= 0 (0: off)");
  TESSERA_CHECK(options.top_p > 0.f && options.top_p <= 1.f, "top-p must be in (0, 1] (1: off)");
}

std::vector<float> sampling_distribution(std::span<const float> logits, const SamplingOptions& options) {
  check_sampling_options(options);
  std::vector<Candidate> candidates;
  find_candidates(logits, options, candidates);
  std::vector<float> distribution(logits.size(), 0.f);
  for (const Candidate& c : candidates) distribution[size_t(c.first)] = c.second;
  return distribution;
}

TokenSampler::TokenSampler(const SamplingOptions& options, uint64_t stream) : options_(options) {
  check_sampling_options(options);
  std::seed_seq seed{uint32_t(options.seed), uint32_t(options.seed >> 32), uint32_t(stream),
                     uint32_t(stream >> 32)};
  random_.seed(seed);
}

int32_t TokenSampler::sample(std::span<const float> logits) {
  find_candidates(logits, options_, candidates_);
  if (candidates_.size() == 1) return candidates_[0].first;
  // 53 random bits: a uniform double in [0, 1), the same on every platform.
  const double u = double(random_() >> 11) * 0x1p-53;
  double mass = 0;
  for (const Candidate& c : candidates_) {
    mass += c.second;
    if (u < mass) return c.first;
  }
  return candidates_.back().first;  // u beyond the rounded total
}

}  // namespace tessera::llm
