// Magnitude, N:M and complementary pruning and k-winners-take-all (see sparse_pruning.h). The
// selections use one strict order (key descending, then index ascending) so ties are defined.
#include "compression/sparse_pruning.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "tessera/error.h"

namespace tessera::sparse {

namespace {

void check_sparsity(double sparsity) {
  if (!(sparsity >= 0.0 && sparsity <= 1.0))
    throw Error("sparsity must lie in [0, 1], got " + std::to_string(sparsity));
}

// Indices of the `keep` elements that win under (key descending, index ascending); unordered.
template <typename KeyOf>
void select_winners(std::vector<int64_t>& order, int64_t keep, KeyOf key) {
  // NaN ranks below every number (a NaN weight is pruned first, a NaN activation never wins),
  // which keeps the order strict.
  auto rank_key = [&](int64_t i) {
    const float k = key(i);
    return std::isnan(k) ? -INFINITY : k;
  };
  auto better = [&](int64_t a, int64_t b) {
    const float ka = rank_key(a), kb = rank_key(b);
    return ka > kb || (ka == kb && a < b);
  };
  if (keep <= 0 || keep >= int64_t(order.size())) return;
  std::nth_element(order.begin(), order.begin() + keep, order.end(), better);
}

}  // namespace

int64_t pruned_count(int64_t count, double sparsity) {
  check_sparsity(sparsity);
  return std::min<int64_t>(count, int64_t(std::floor(sparsity * double(count) + 0.5)));
}

int64_t magnitude_prune(float* weights, int64_t count, double sparsity) {
  const int64_t prune = pruned_count(count, sparsity);
  if (prune == 0) return 0;
  std::vector<int64_t> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), 0);
  const int64_t keep = count - prune;
  select_winners(order, keep, [&](int64_t i) { return std::fabs(weights[i]); });
  int64_t zeroed = 0;
  for (size_t i = size_t(keep); i < order.size(); ++i) {
    zeroed += weights[order[i]] != 0.f;
    weights[order[i]] = 0.f;
  }
  return zeroed;
}

std::vector<int64_t> global_magnitude_prune(const std::vector<WeightSpan>& layers, double sparsity) {
  int64_t total = 0;
  std::vector<int64_t> layer_start;
  for (const WeightSpan& layer : layers) {
    layer_start.push_back(total);
    total += layer.count;
  }
  std::vector<int64_t> zeroed(layers.size(), 0);
  const int64_t prune = pruned_count(total, sparsity);
  if (prune == 0) return zeroed;
  // Flat position -> (layer, offset) through the start table.
  auto locate = [&](int64_t flat, size_t* layer, int64_t* offset) {
    *layer = size_t(std::upper_bound(layer_start.begin(), layer_start.end(), flat) - layer_start.begin()) - 1;
    *offset = flat - layer_start[*layer];
  };
  std::vector<float> magnitude(static_cast<size_t>(total));
  for (size_t l = 0; l < layers.size(); ++l)
    for (int64_t i = 0; i < layers[l].count; ++i)
      magnitude[size_t(layer_start[l] + i)] = std::fabs(layers[l].data[i]);
  std::vector<int64_t> order(static_cast<size_t>(total));
  std::iota(order.begin(), order.end(), 0);
  const int64_t keep = total - prune;
  select_winners(order, keep, [&](int64_t i) { return magnitude[size_t(i)]; });
  for (size_t i = size_t(keep); i < order.size(); ++i) {
    size_t layer;
    int64_t offset;
    locate(order[i], &layer, &offset);
    zeroed[layer] += layers[layer].data[offset] != 0.f;
    layers[layer].data[offset] = 0.f;
  }
  return zeroed;
}

namespace {
void check_n_of_m(int n, int m) {
  if (n < 1 || m < 1 || n > m || m > 255)
    throw Error("N:M pruning needs 1 <= N <= M <= 255, got " + std::to_string(n) + ":" + std::to_string(m));
}
}  // namespace

void prune_n_of_m(float* weights, int64_t rows, int64_t reduction, int n, int m) {
  check_n_of_m(n, m);
  std::vector<int64_t> order;
  for (int64_t r = 0; r < rows; ++r) {
    float* row = weights + r * reduction;
    for (int64_t g0 = 0; g0 < reduction; g0 += m) {
      const int64_t length = std::min<int64_t>(m, reduction - g0);
      if (length <= n) continue;
      order.resize(size_t(length));
      std::iota(order.begin(), order.end(), 0);
      select_winners(order, n, [&](int64_t i) { return std::fabs(row[g0 + i]); });
      for (size_t i = size_t(n); i < order.size(); ++i) row[g0 + order[i]] = 0.f;
    }
  }
}

bool satisfies_n_of_m(const float* weights, int64_t rows, int64_t reduction, int n, int m) {
  check_n_of_m(n, m);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g0 = 0; g0 < reduction; g0 += m) {
      int nonzero = 0;
      for (int64_t i = g0; i < std::min<int64_t>(g0 + m, reduction); ++i)
        nonzero += weights[r * reduction + i] != 0.f;
      if (nonzero > n) return false;
    }
  return true;
}

void prune_complementary(float* weights, int64_t rows, int64_t reduction, int set_size) {
  if (set_size < 1 || set_size > 255)
    throw Error("complementary pruning needs a set size in [1, 255], got " + std::to_string(set_size));
  for (int64_t s0 = 0; s0 < rows; s0 += set_size) {
    const int64_t set_rows = std::min<int64_t>(set_size, rows - s0);
    for (int64_t k = 0; k < reduction; ++k) {
      int64_t owner = 0;
      for (int64_t r = 1; r < set_rows; ++r)
        if (std::fabs(weights[(s0 + r) * reduction + k]) > std::fabs(weights[(s0 + owner) * reduction + k]))
          owner = r;
      for (int64_t r = 0; r < set_rows; ++r)
        if (r != owner) weights[(s0 + r) * reduction + k] = 0.f;
    }
  }
}

namespace {
void check_k(int64_t k, int64_t features) {
  if (k < 0 || k > features)
    throw Error("k-winners-take-all needs 0 <= k <= features (" + std::to_string(features) + "), got k = " +
                std::to_string(k));
}
}  // namespace

void k_winners_indices(const float* x, int64_t batch, int64_t features, int64_t k, int32_t* indices,
                       float* values) {
  check_k(k, features);
  std::vector<int64_t> order;
  for (int64_t b = 0; b < batch; ++b) {
    const float* row = x + b * features;
    order.resize(size_t(features));
    std::iota(order.begin(), order.end(), 0);
    select_winners(order, k, [&](int64_t i) { return row[i]; });
    std::sort(order.begin(), order.begin() + k);
    for (int64_t i = 0; i < k; ++i) {
      indices[b * k + i] = int32_t(order[size_t(i)]);
      values[b * k + i] = row[order[size_t(i)]];
    }
  }
}

void k_winners_take_all(const float* x, int64_t batch, int64_t features, int64_t k, float* y) {
  check_k(k, features);
  std::vector<int32_t> indices(static_cast<size_t>(k));
  std::vector<float> values(static_cast<size_t>(k));
  for (int64_t b = 0; b < batch; ++b) {
    k_winners_indices(x + b * features, 1, features, k, indices.data(), values.data());
    float* out = y + b * features;
    std::fill(out, out + features, 0.f);
    for (int64_t i = 0; i < k; ++i) out[indices[size_t(i)]] = values[size_t(i)];
  }
}

}  // namespace tessera::sparse
