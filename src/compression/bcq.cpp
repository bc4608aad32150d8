// BCQ fitting (greedy start, then alternating least squares on the alphas and nearest-level
// signs), reconstruction, and packing into the LUT-GEMM layout.
#include "compression/bcq.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <string>

#include "tessera/error.h"

namespace tessera::compression {

namespace {

constexpr int kMaxBits = 4;

// Solves the q x q system m a = v by Gaussian elimination with partial pivoting; false when m is
// (numerically) singular, e.g. two planes with the same signs.
bool solve_small(int q, std::array<std::array<double, kMaxBits>, kMaxBits> m, std::array<double, kMaxBits> v,
                 double* solution) {
  for (int col = 0; col < q; ++col) {
    int pivot = col;
    for (int r = col + 1; r < q; ++r)
      if (std::fabs(m[size_t(r)][size_t(col)]) > std::fabs(m[size_t(pivot)][size_t(col)])) pivot = r;
    if (std::fabs(m[size_t(pivot)][size_t(col)]) < 1e-9) return false;
    std::swap(m[size_t(col)], m[size_t(pivot)]);
    std::swap(v[size_t(col)], v[size_t(pivot)]);
    for (int r = col + 1; r < q; ++r) {
      const double f = m[size_t(r)][size_t(col)] / m[size_t(col)][size_t(col)];
      for (int c = col; c < q; ++c) m[size_t(r)][size_t(c)] -= f * m[size_t(col)][size_t(c)];
      v[size_t(r)] -= f * v[size_t(col)];
    }
  }
  for (int r = q - 1; r >= 0; --r) {
    double s = v[size_t(r)];
    for (int c = r + 1; c < q; ++c) s -= m[size_t(r)][size_t(c)] * solution[c];
    solution[r] = s / m[size_t(r)][size_t(r)];
  }
  return true;
}

// The level of a code (bit i set: plane i is +1).
double level_of(unsigned code, int q, const double* alpha) {
  double level = 0;
  for (int i = 0; i < q; ++i) level += (code >> i & 1u) ? alpha[i] : -alpha[i];
  return level;
}

double squared_error(const float* w, int64_t n, const uint8_t* codes, int q, const double* alpha) {
  std::array<double, 1 << kMaxBits> levels{};
  for (unsigned c = 0; c < (1u << q); ++c) levels[c] = level_of(c, q, alpha);
  double error = 0;
  for (int64_t e = 0; e < n; ++e) {
    const double d = double(w[e]) - levels[codes[e]];
    error += d * d;
  }
  return error;
}

// Fits one group of n weights; codes[e] gets element e's sign bits, alpha the q scales.
void fit_group(const float* w, int64_t n, int q, int iterations, uint8_t* codes, double* alpha) {
  // Greedy: each plane takes the sign of what the previous ones left and its mean magnitude.
  std::vector<double> residual(w, w + n);
  std::fill(codes, codes + n, uint8_t(0));
  for (int i = 0; i < q; ++i) {
    double magnitude = 0;
    for (int64_t e = 0; e < n; ++e) magnitude += std::fabs(residual[size_t(e)]);
    alpha[i] = magnitude / double(n);
    for (int64_t e = 0; e < n; ++e) {
      if (residual[size_t(e)] >= 0) {
        codes[e] |= uint8_t(1u << i);
        residual[size_t(e)] -= alpha[i];
      } else {
        residual[size_t(e)] += alpha[i];
      }
    }
  }
  if (q == 1) return;  // greedy is already optimal for one plane

  double error = squared_error(w, n, codes, q, alpha);
  std::vector<uint8_t> trial_codes(static_cast<size_t>(n));
  for (int round = 0; round < iterations; ++round) {
    const double before = error;
    // Alphas by least squares for the current signs: (B^T B) alpha = B^T w.
    std::array<std::array<double, kMaxBits>, kMaxBits> gram{};
    std::array<double, kMaxBits> projection{};
    for (int64_t e = 0; e < n; ++e) {
      for (int i = 0; i < q; ++i) {
        const double si = (codes[e] >> i & 1u) ? 1.0 : -1.0;
        projection[size_t(i)] += si * w[e];
        for (int j = i; j < q; ++j) gram[size_t(i)][size_t(j)] += si * ((codes[e] >> j & 1u) ? 1.0 : -1.0);
      }
    }
    for (int i = 0; i < q; ++i)
      for (int j = 0; j < i; ++j) gram[size_t(i)][size_t(j)] = gram[size_t(j)][size_t(i)];
    double solved[kMaxBits];
    if (solve_small(q, gram, projection, solved)) {
      const double trial = squared_error(w, n, codes, q, solved);
      if (trial < error) {
        std::copy_n(solved, q, alpha);
        error = trial;
      }
    }
    // Signs: each weight takes the nearest of the 2^q levels (optimal for fixed alphas).
    const unsigned count = 1u << q;
    std::array<unsigned, 1 << kMaxBits> order{};
    std::array<double, 1 << kMaxBits> levels{};
    for (unsigned c = 0; c < count; ++c) levels[c] = level_of(c, q, alpha);
    std::iota(order.begin(), order.begin() + count, 0u);
    std::sort(order.begin(), order.begin() + count, [&](unsigned a, unsigned b) { return levels[a] < levels[b]; });
    std::array<double, 1 << kMaxBits> midpoints{};
    for (unsigned c = 0; c + 1 < count; ++c) midpoints[c] = 0.5 * (levels[order[c]] + levels[order[c + 1]]);
    for (int64_t e = 0; e < n; ++e) {
      const size_t position =
          size_t(std::upper_bound(midpoints.begin(), midpoints.begin() + (count - 1), double(w[e])) -
                 midpoints.begin());
      trial_codes[size_t(e)] = uint8_t(order[position]);
    }
    const double trial = squared_error(w, n, trial_codes.data(), q, alpha);
    if (trial < error) {
      std::copy(trial_codes.begin(), trial_codes.end(), codes);
      error = trial;
    }
    if (error >= before * (1 - 1e-9)) break;  // converged
  }
}

}  // namespace

void check_bcq_options(const BcqOptions& options) {
  TESSERA_CHECK(options.bits >= 1 && options.bits <= kMaxBits,
                "BCQ bits must be 1 to 4, not " + std::to_string(options.bits));
  TESSERA_CHECK(options.group_size >= PackedBcq::kWordColumns && options.group_size % PackedBcq::kWordColumns == 0,
                "BCQ group size must be a positive multiple of 32, not " + std::to_string(options.group_size));
  TESSERA_CHECK(options.refine_iterations >= 0, "BCQ refine iterations must not be negative");
}

std::vector<float> BcqMatrix::dequantize() const {
  std::vector<float> out(size_t(rows * cols), 0.f);
  for (int i = 0; i < bits; ++i)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) out[size_t(r * cols + c)] += alpha(i, r, c / group_size) * float(sign(i, r, c));
  return out;
}

BcqMatrix bcq_fit(const float* weight, int64_t rows, int64_t cols, int64_t ld, const BcqOptions& options,
                  ThreadPool* pool) {
  check_bcq_options(options);
  TESSERA_CHECK(rows >= 1 && cols >= 1, "BCQ needs a non-empty matrix");
  TESSERA_CHECK(ld >= cols, "BCQ: leading dimension smaller than the column count");
  BcqMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.bits = options.bits;
  m.group_size = options.group_size;
  const int q = options.bits;
  const int64_t groups = m.groups();
  m.signs.assign(size_t(q * rows * cols), int8_t(0));
  m.alphas.assign(size_t(q * rows * groups), 0.f);
  auto fit_rows = [&](int64_t r0, int64_t r1) {
    std::vector<uint8_t> codes(static_cast<size_t>(options.group_size));
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t c0 = g * options.group_size, n = std::min(options.group_size, cols - c0);
        double alpha[kMaxBits];
        fit_group(weight + r * ld + c0, n, q, options.refine_iterations, codes.data(), alpha);
        for (int i = 0; i < q; ++i) {
          m.alphas[size_t((i * rows + r) * groups + g)] = float(alpha[i]);
          int8_t* s = m.signs.data() + (i * rows + r) * cols + c0;
          for (int64_t e = 0; e < n; ++e) s[e] = (codes[size_t(e)] >> i & 1u) ? int8_t(1) : int8_t(-1);
        }
      }
  };
  if (pool && pool->size() > 1 && rows > 1)
    pool->parallel_for(rows, fit_rows);
  else
    fit_rows(0, rows);
  return m;
}

int64_t PackedBcq::sign_word_count(int64_t rows, int64_t cols, int bits) {
  return (rows + kRowBlock - 1) / kRowBlock * kRowBlock * ((cols + kWordColumns - 1) / kWordColumns) * bits;
}

int64_t PackedBcq::alpha_count(int64_t rows, int64_t cols, int bits, int64_t group_size) {
  return (rows + kRowBlock - 1) / kRowBlock * kRowBlock * ((cols + group_size - 1) / group_size) * bits;
}

PackedBcq::PackedBcq(const BcqMatrix& m)
    : rows_(m.rows), cols_(m.cols), bits_(m.bits), group_size_(m.group_size) {
  check_bcq_options(BcqOptions{m.bits, m.group_size, 0});
  sign_words_.assign(size_t(sign_word_count(rows_, cols_, bits_)), 0u);
  alphas_.assign(size_t(alpha_count(rows_, cols_, bits_, group_size_)), 0.f);
  const int64_t words = words_per_row(), group_count = groups();
  for (int64_t r = 0; r < rows_; ++r) {
    const int64_t block = r / kRowBlock, lane = r % kRowBlock;
    for (int i = 0; i < bits_; ++i) {
      for (int64_t c = 0; c < cols_; ++c)
        if (m.sign(i, r, c) > 0)
          sign_words_[size_t(((block * words + c / kWordColumns) * bits_ + i) * kRowBlock + lane)] |=
              1u << (c % kWordColumns);
      for (int64_t g = 0; g < group_count; ++g)
        alphas_[size_t(((block * group_count + g) * bits_ + i) * kRowBlock + lane)] = m.alpha(i, r, g);
    }
  }
}

void PackedBcq::dequantize(float* out, int64_t ld) const {
  const int64_t words = words_per_row(), group_count = groups();
  for (int64_t r = 0; r < rows_; ++r) {
    const int64_t block = r / kRowBlock, lane = r % kRowBlock;
    float* row = out + r * ld;
    std::fill(row, row + cols_, 0.f);
    for (int i = 0; i < bits_; ++i)
      for (int64_t c = 0; c < cols_; ++c) {
        const uint32_t word = sign_words_[size_t(((block * words + c / kWordColumns) * bits_ + i) * kRowBlock + lane)];
        const float alpha = alphas_[size_t(((block * group_count + c / group_size_) * bits_ + i) * kRowBlock + lane)];
        row[c] += (word >> (c % kWordColumns) & 1u) ? alpha : -alpha;
      }
  }
}

PackedBcq::PackedBcq(int64_t rows, int64_t cols, int bits, int64_t group_size, std::vector<uint32_t> sign_words,
                     std::vector<float> alphas)
    : rows_(rows), cols_(cols), bits_(bits), group_size_(group_size) {
  check_bcq_options(BcqOptions{bits, group_size, 0});
  TESSERA_CHECK(rows >= 1 && cols >= 1, "packed BCQ weights need positive rows and columns");
  TESSERA_CHECK(int64_t(sign_words.size()) == sign_word_count(rows, cols, bits),
                "packed BCQ signs hold " + std::to_string(sign_words.size()) + " words; " +
                    std::to_string(rows) + "x" + std::to_string(cols) + " at " + std::to_string(bits) +
                    " bits needs " + std::to_string(sign_word_count(rows, cols, bits)));
  TESSERA_CHECK(int64_t(alphas.size()) == alpha_count(rows, cols, bits, group_size),
                "packed BCQ alphas hold " + std::to_string(alphas.size()) + " values; needs " +
                    std::to_string(alpha_count(rows, cols, bits, group_size)));
  sign_words_ = std::move(sign_words);
  alphas_ = std::move(alphas);
}

}  // namespace tessera::compression
