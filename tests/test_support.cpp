// Shared helpers for tests.
#include "test_support.h"

#include <algorithm>

namespace tessera::testing {

std::vector<float> random_floats(size_t n, uint32_t seed, float low, float high) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

Tensor random_tensor(Shape shape, uint32_t seed, float low, float high) {
  Tensor t(DType::f32, std::move(shape));
  auto v = random_floats(size_t(t.numel()), seed, low, high);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

double relative_l2_error(const Tensor& actual, const Tensor& expected) {
  Tensor a = actual.cast(DType::f32), b = expected.cast(DType::f32);
  if (a.numel() != b.numel()) return INFINITY;
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double d = double(a.data<float>()[i]) - double(b.data<float>()[i]);
    diff += d * d;
    norm += double(b.data<float>()[i]) * double(b.data<float>()[i]);
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

double max_abs_difference(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

std::string source_path(const std::string& relative) {
  return std::string(TESSERA_SOURCE_DIR) + "/" + relative;
}

}  // namespace tessera::testing
