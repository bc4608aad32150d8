// Sparsity: pruning (magnitude per layer and global, N:M, complementary, k-WTA) against selections
// made by stable sorts, and every sparse kernel on every ISA against a plain dense loop in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "compression/sparse_gemm.h"
#include "compression/sparse_pruning.h"
#include "test_support.h"

using namespace tessera;
using namespace tessera::sparse;
using tessera::testing::for_each_isa;
using tessera::testing::random_floats;

namespace {

// Values on a coarse grid, so equal magnitudes (ties) are common.
std::vector<float> grid_values(size_t n, uint32_t seed, int levels = 7) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(-levels, levels);
  std::vector<float> v(n);
  for (auto& x : v) x = float(dist(rng)) * 0.25f;
  return v;
}

// The indices a selection keeps, by a stable sort on the key descending: ties keep lower indices.
std::vector<int64_t> stable_top(const std::vector<float>& keys, int64_t keep) {
  std::vector<int64_t> order(keys.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return keys[a] > keys[b]; });
  order.resize(size_t(keep));
  std::sort(order.begin(), order.end());
  return order;
}

std::vector<float> magnitudes(const float* w, size_t n) {
  std::vector<float> m(n);
  for (size_t i = 0; i < n; ++i) m[i] = std::fabs(w[i]);
  return m;
}

// Y[rows, n] = W[rows, cols] X[cols, n] in double: the reference for every kernel.
std::vector<double> dense_reference(const std::vector<float>& w, int64_t rows, int64_t cols, const float* x,
                                    int64_t ldx, int64_t n) {
  std::vector<double> y(size_t(rows * n), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < cols; ++k)
      for (int64_t c = 0; c < n; ++c) y[size_t(r * n + c)] += double(w[size_t(r * cols + k)]) * x[k * ldx + c];
  return y;
}

// |got - want| within float rounding of a sum of `cols` products of magnitude ~1.
void expect_close(const float* got, int64_t ldy, const std::vector<double>& want, int64_t rows, int64_t n,
                  int64_t cols) {
  const double tolerance = 1e-6 * double(cols + 1) * 4;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < n; ++c)
      ASSERT_NEAR(got[r * ldy + c], want[size_t(r * n + c)], tolerance) << "row " << r << " column " << c;
}

struct Shape3 {
  int64_t rows, cols, n;
};
const Shape3 kShapes[] = {{1, 1, 1},   {5, 7, 3},    {13, 37, 17}, {64, 300, 65}, {33, 129, 100},
                          {7, 260, 1}, {9, 130, 2},  {4, 16, 16},  {6, 255, 47},  {17, 520, 129}};

}  // namespace

// ---------------------------------------------------------------- pruning

TEST(SparsePruning, MagnitudeHitsTheCountAndKeepsTheLargest) {
  for (double sparsity : {0.0, 0.3, 0.5, 0.75, 0.9, 0.95, 1.0}) {
    for (uint32_t seed : {1u, 2u}) {
      std::vector<float> w = grid_values(997, seed);
      for (float& v : w) if (v == 0.f) v = 0.125f;  // no zeros before pruning, so counts are exact
      const std::vector<float> original = w;
      const int64_t prune = pruned_count(997, sparsity);
      EXPECT_EQ(prune, int64_t(std::floor(sparsity * 997 + 0.5)));
      EXPECT_EQ(magnitude_prune(w.data(), 997, sparsity), prune);
      const std::vector<int64_t> keep = stable_top(magnitudes(original.data(), 997), 997 - prune);
      std::vector<float> expected(997, 0.f);
      for (int64_t i : keep) expected[size_t(i)] = original[size_t(i)];
      EXPECT_EQ(w, expected) << "sparsity " << sparsity;
    }
  }
  std::vector<float> w(4, 1.f);
  EXPECT_THROW(magnitude_prune(w.data(), 4, 1.5), Error);
  EXPECT_THROW(magnitude_prune(w.data(), 4, -0.1), Error);
}

TEST(SparsePruning, GlobalUsesOneThresholdOverAllLayers) {
  std::vector<float> a = grid_values(300, 3), b = grid_values(500, 4, 20);
  for (float* v : {a.data(), b.data()})
    for (int i = 0; i < 300; ++i) if (v[i] == 0.f) v[i] = 0.125f;
  for (float& v : b) if (v == 0.f) v = 0.125f;
  std::vector<float> all = a;
  all.insert(all.end(), b.begin(), b.end());
  const std::vector<int64_t> keep = stable_top(magnitudes(all.data(), all.size()), 800 - pruned_count(800, 0.8));
  std::vector<float> expected(800, 0.f);
  for (int64_t i : keep) expected[size_t(i)] = all[size_t(i)];
  const std::vector<int64_t> zeroed = global_magnitude_prune({{a.data(), 300}, {b.data(), 500}}, 0.8);
  std::vector<float> got = a;
  got.insert(got.end(), b.begin(), b.end());
  EXPECT_EQ(got, expected);
  EXPECT_EQ(zeroed[0] + zeroed[1], 640);
  EXPECT_NE(zeroed[0] * 500, zeroed[1] * 300) << "the layers should end at different sparsities";
}

TEST(SparsePruning, NOfMKeepsTheLargestInEveryGroup) {
  const int patterns[][2] = {{2, 4}, {1, 4}, {4, 8}, {3, 7}, {1, 2}, {4, 4}};
  for (const auto& p : patterns) {
    const int n = p[0], m = p[1];
    for (int64_t cols : {int64_t(16), int64_t(29), int64_t(3)}) {
      const int64_t rows = 11;
      std::vector<float> w = grid_values(size_t(rows * cols), 5 + n + m);
      const std::vector<float> original = w;
      prune_n_of_m(w.data(), rows, cols, n, m);
      EXPECT_TRUE(satisfies_n_of_m(w.data(), rows, cols, n, m));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t g0 = 0; g0 < cols; g0 += m) {
          const int64_t length = std::min<int64_t>(m, cols - g0);
          const std::vector<float> group(original.begin() + r * cols + g0, original.begin() + r * cols + g0 + length);
          const std::vector<int64_t> keep = stable_top(magnitudes(group.data(), group.size()), std::min<int64_t>(n, length));
          for (int64_t i = 0; i < length; ++i) {
            const bool kept = std::binary_search(keep.begin(), keep.end(), i);
            ASSERT_EQ(w[size_t(r * cols + g0 + i)], kept ? group[size_t(i)] : 0.f)
                << n << ":" << m << " row " << r << " column " << g0 + i;
          }
        }
    }
  }
  std::vector<float> dense(8, 1.f);
  EXPECT_FALSE(satisfies_n_of_m(dense.data(), 1, 8, 2, 4));
  EXPECT_THROW(prune_n_of_m(dense.data(), 1, 8, 5, 4), Error);
  EXPECT_THROW(prune_n_of_m(dense.data(), 1, 8, 0, 4), Error);
}

TEST(SparsePruning, ComplementaryLeavesOneOwnerPerPositionInEachSet) {
  const int64_t rows = 10, cols = 23;
  for (int set_size : {1, 3, 4, 10}) {
    std::vector<float> w = random_floats(size_t(rows * cols), 9, -1.f, 1.f);
    const std::vector<float> original = w;
    prune_complementary(w.data(), rows, cols, set_size);
    for (int64_t s0 = 0; s0 < rows; s0 += set_size)
      for (int64_t k = 0; k < cols; ++k) {
        int nonzero = 0;
        int64_t best = s0;
        for (int64_t r = s0; r < std::min<int64_t>(rows, s0 + set_size); ++r) {
          nonzero += w[size_t(r * cols + k)] != 0.f;
          if (std::fabs(original[size_t(r * cols + k)]) > std::fabs(original[size_t(best * cols + k)])) best = r;
        }
        ASSERT_EQ(nonzero, 1);
        ASSERT_EQ(w[size_t(best * cols + k)], original[size_t(best * cols + k)]);
      }
  }
}

TEST(SparsePruning, KWinnersTakeAllKeepsTheTopKWithTiesToLowerIndices) {
  const int64_t batch = 5, features = 40;
  const std::vector<float> x = grid_values(size_t(batch * features), 12, 3);  // many ties
  for (int64_t k : {int64_t(0), int64_t(1), int64_t(7), int64_t(20), features}) {
    std::vector<float> y(x.size());
    k_winners_take_all(x.data(), batch, features, k, y.data());
    std::vector<int32_t> indices(size_t(batch * k));
    std::vector<float> values(size_t(batch * k));
    k_winners_indices(x.data(), batch, features, k, indices.data(), values.data());
    for (int64_t b = 0; b < batch; ++b) {
      const std::vector<float> row(x.begin() + b * features, x.begin() + (b + 1) * features);
      const std::vector<int64_t> keep = stable_top(row, k);
      for (int64_t i = 0; i < features; ++i) {
        const bool kept = std::binary_search(keep.begin(), keep.end(), i);
        ASSERT_EQ(y[size_t(b * features + i)], kept ? row[size_t(i)] : 0.f) << "k " << k << " sample " << b;
      }
      for (int64_t i = 0; i < k; ++i) {
        ASSERT_EQ(indices[size_t(b * k + i)], keep[size_t(i)]);
        ASSERT_EQ(values[size_t(b * k + i)], row[size_t(keep[size_t(i)])]);
      }
    }
  }
  std::vector<float> in(4, 1.f), out(4);
  k_winners_take_all(in.data(), 1, 4, 2, out.data());
  EXPECT_EQ(out, (std::vector<float>{1.f, 1.f, 0.f, 0.f}));
  std::vector<float> with_nan = {std::nanf(""), -1.f, 2.f};
  k_winners_take_all(with_nan.data(), 1, 3, 2, out.data());
  EXPECT_EQ(out[1], -1.f);
  EXPECT_EQ(out[2], 2.f);
  EXPECT_EQ(out[0], 0.f);
  EXPECT_THROW(k_winners_take_all(in.data(), 1, 4, 5, out.data()), Error);
}

// ---------------------------------------------------------------- formats

TEST(SparseFormats, RoundTripsAndRefusals) {
  std::vector<float> w = random_floats(12 * 40, 21);
  magnitude_prune(w.data(), int64_t(w.size()), 0.7);
  const CsrMatrix csr = CsrMatrix::from_dense(w.data(), 12, 40);
  EXPECT_EQ(csr.to_dense(), w);
  EXPECT_EQ(csr.nonzeros(), int64_t(std::count_if(w.begin(), w.end(), [](float v) { return v != 0.f; })));
  const CsrMatrix again = CsrMatrix::from_arrays(12, 40, csr.row_start, csr.column, csr.value);
  EXPECT_EQ(again.to_dense(), w);
  std::vector<int32_t> bad_columns = csr.column;
  bad_columns[0] = 40;
  EXPECT_THROW(CsrMatrix::from_arrays(12, 40, csr.row_start, bad_columns, csr.value), Error);
  std::vector<int64_t> bad_rows = csr.row_start;
  bad_rows.pop_back();
  EXPECT_THROW(CsrMatrix::from_arrays(12, 40, bad_rows, csr.column, csr.value), Error);

  EXPECT_THROW(NOfMMatrix::from_dense(w.data(), 12, 40, 2, 4), Error);  // 70% unstructured is not 2:4
  std::vector<float> nm = random_floats(12 * 41, 22);
  prune_n_of_m(nm.data(), 12, 41, 2, 4);
  const NOfMMatrix packed = NOfMMatrix::from_dense(nm.data(), 12, 41, 2, 4);
  EXPECT_EQ(packed.to_dense(), nm);
  EXPECT_EQ(NOfMMatrix::from_arrays(12, 41, 2, 4, packed.value, packed.offset).to_dense(), nm);
  std::vector<uint8_t> bad_offsets = packed.offset;
  bad_offsets.back() = 3;  // the last group of a 41-column row has one column
  EXPECT_THROW(NOfMMatrix::from_arrays(12, 41, 2, 4, packed.value, bad_offsets), Error);
}

TEST(SparseFormats, ComplementaryPackingRoundTrips) {
  for (int set_size : {1, 2, 3, 4, 5, 8, 16, 17, 20}) {
    for (int64_t rows : {int64_t(set_size), int64_t(3 * set_size + 1), int64_t(50)}) {
      const int64_t cols = 37;
      std::vector<float> w = random_floats(size_t(rows * cols), uint32_t(30 + set_size));
      prune_complementary(w.data(), rows, cols, set_size);
      const ComplementaryMatrix packed = ComplementaryMatrix::pack(w.data(), rows, cols, set_size);
      EXPECT_EQ(packed.sets, (rows + set_size - 1) / set_size);
      EXPECT_EQ(packed.unpack(), w) << "set size " << set_size << " rows " << rows;
    }
  }
  std::vector<float> overlapping = {1.f, 0.f, 2.f, 0.f};  // rows 0 and 1 both use input 0
  EXPECT_THROW(ComplementaryMatrix::pack(overlapping.data(), 2, 2, 2), Error);
}

// ---------------------------------------------------------------- kernels

TEST(SparseKernels, CsrMatchesDenseOnEveryIsa) {
  ThreadPool pool(2);
  for_each_isa([&](primitives::Isa) {
    for (const Shape3& s : kShapes)
      for (double sparsity : {0.0, 0.5, 0.9, 1.0}) {
        std::vector<float> w = random_floats(size_t(s.rows * s.cols), uint32_t(s.rows + s.cols));
        magnitude_prune(w.data(), int64_t(w.size()), sparsity);
        if (s.rows > 2)  // an empty row in the middle
          std::fill(w.begin() + s.cols, w.begin() + 2 * s.cols, 0.f);
        const int64_t ldx = s.n + 3, ldy = s.n + 5;
        const std::vector<float> x = random_floats(size_t(s.cols * ldx), 7);
        const CsrMatrix csr = CsrMatrix::from_dense(w.data(), s.rows, s.cols);
        const std::vector<double> want = dense_reference(w, s.rows, s.cols, x.data(), ldx, s.n);
        for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
          std::vector<float> y(size_t(s.rows * ldy), -7.f);
          csr_gemm(csr, s.n, x.data(), ldx, y.data(), ldy, {}, p);
          SCOPED_TRACE(::testing::Message() << s.rows << "x" << s.cols << "x" << s.n << " sparsity " << sparsity);
          expect_close(y.data(), ldy, want, s.rows, s.n, s.cols);
          for (int64_t r = 0; r < s.rows; ++r)  // nothing written past n
            for (int64_t c = s.n; c < ldy; ++c) ASSERT_EQ(y[size_t(r * ldy + c)], -7.f);
        }
      }
  });
}

TEST(SparseKernels, NOfMMatchesDenseOnEveryIsa) {
  ThreadPool pool(2);
  const int patterns[][2] = {{2, 4}, {1, 4}, {4, 8}, {3, 5}, {1, 16}, {4, 4}};
  for_each_isa([&](primitives::Isa) {
    for (const Shape3& s : kShapes)
      for (const auto& p : patterns) {
        std::vector<float> w = random_floats(size_t(s.rows * s.cols), uint32_t(s.rows * 3 + s.cols));
        prune_n_of_m(w.data(), s.rows, s.cols, p[0], p[1]);
        if (s.rows > 3) std::fill(w.begin() + 2 * s.cols, w.begin() + 3 * s.cols, 0.f);  // padded groups
        const int64_t ldx = s.n + 1, ldy = s.n + 2;
        const std::vector<float> x = random_floats(size_t(s.cols * ldx), 8);
        const NOfMMatrix nm = NOfMMatrix::from_dense(w.data(), s.rows, s.cols, p[0], p[1]);
        const std::vector<double> want = dense_reference(w, s.rows, s.cols, x.data(), ldx, s.n);
        for (ThreadPool* pp : {static_cast<ThreadPool*>(nullptr), &pool}) {
          std::vector<float> y(size_t(s.rows * ldy), -7.f);
          n_of_m_gemm(nm, s.n, x.data(), ldx, y.data(), ldy, {}, pp);
          SCOPED_TRACE(::testing::Message() << s.rows << "x" << s.cols << "x" << s.n << " " << p[0] << ":" << p[1]);
          expect_close(y.data(), ldy, want, s.rows, s.n, s.cols);
        }
      }
  });
}

TEST(SparseKernels, EpilogueAddsBiasResidualThenActivation) {
  const int64_t rows = 21, cols = 70, n = 45;
  std::vector<float> w = random_floats(size_t(rows * cols), 40);
  prune_n_of_m(w.data(), rows, cols, 2, 4);
  const std::vector<float> x = random_floats(size_t(cols * n), 41);
  const std::vector<float> bias = random_floats(size_t(rows), 42);
  const std::vector<float> residual = random_floats(size_t(rows * n), 43);
  std::vector<double> want = dense_reference(w, rows, cols, x.data(), n, n);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < n; ++c) {
      double& v = want[size_t(r * n + c)];
      v = std::max(0.0, v + bias[size_t(r)] + residual[size_t(r * n + c)]);
    }
  SparseEpilogue e;
  e.bias_per_row = bias.data();
  e.residual = residual.data();
  e.ld_residual = n;
  e.activation.kind = primitives::UnaryKind::relu;
  ThreadPool pool(2);
  for_each_isa([&](primitives::Isa) {
    std::vector<float> y(size_t(rows * n));
    csr_gemm(CsrMatrix::from_dense(w.data(), rows, cols), n, x.data(), n, y.data(), n, e, &pool);
    expect_close(y.data(), n, want, rows, n, cols);
    n_of_m_gemm(NOfMMatrix::from_dense(w.data(), rows, cols, 2, 4), n, x.data(), n, y.data(), n, e, &pool);
    expect_close(y.data(), n, want, rows, n, cols);
  });
}

TEST(SparseKernels, ComplementaryKwtaEqualsTheSeparateSparseProducts) {
  ThreadPool pool(2);
  for_each_isa([&](primitives::Isa) {
    for (int set_size : {1, 2, 4, 5, 8, 16, 20})
      for (int64_t rows : {int64_t(set_size * 3), int64_t(70)}) {
        const int64_t cols = 150, batch = 3;
        std::vector<float> w = random_floats(size_t(rows * cols), uint32_t(50 + set_size));
        prune_complementary(w.data(), rows, cols, set_size);
        const ComplementaryMatrix packed = ComplementaryMatrix::pack(w.data(), rows, cols, set_size);
        const std::vector<float> activations = random_floats(size_t(batch * cols), 51);
        for (int64_t k : {int64_t(0), int64_t(1), int64_t(15), cols}) {
          std::vector<int32_t> indices(size_t(batch * k));
          std::vector<float> values(size_t(batch * k)), sparse_x(activations.size());
          k_winners_indices(activations.data(), batch, cols, k, indices.data(), values.data());
          k_winners_take_all(activations.data(), batch, cols, k, sparse_x.data());
          // The separate sparse products: each set's rows as their own CSR matrix, times x^T.
          std::vector<float> x_columns(size_t(cols * batch));
          for (int64_t b = 0; b < batch; ++b)
            for (int64_t i = 0; i < cols; ++i) x_columns[size_t(i * batch + b)] = sparse_x[size_t(b * cols + i)];
          std::vector<double> want(size_t(rows * batch));
          for (int64_t s0 = 0; s0 < rows; s0 += set_size) {
            const int64_t set_rows = std::min<int64_t>(set_size, rows - s0);
            const std::vector<float> set_w(w.begin() + s0 * cols, w.begin() + (s0 + set_rows) * cols);
            const std::vector<double> part = dense_reference(set_w, set_rows, cols, x_columns.data(), batch, batch);
            std::copy(part.begin(), part.end(), want.begin() + s0 * batch);
          }
          const int64_t ldy = rows + 3;
          std::vector<float> y(size_t(batch * ldy), -7.f), y_dense(size_t(batch * ldy), -7.f);
          complementary_kwta_gemm(packed, batch, k, indices.data(), values.data(), y.data(), ldy, &pool);
          std::vector<float> w_transposed(size_t(rows * cols));
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t i = 0; i < cols; ++i) w_transposed[size_t(i * rows + r)] = w[size_t(r * cols + i)];
          dense_kwta_gemm(w_transposed.data(), rows, cols, batch, k, indices.data(), values.data(), y_dense.data(),
                          ldy, nullptr);
          SCOPED_TRACE(::testing::Message() << "set size " << set_size << " rows " << rows << " k " << k);
          for (int64_t b = 0; b < batch; ++b)
            for (int64_t r = 0; r < rows; ++r) {
              ASSERT_NEAR(y[size_t(b * ldy + r)], want[size_t(r * batch + b)], 1e-4) << "sample " << b << " row " << r;
              ASSERT_NEAR(y_dense[size_t(b * ldy + r)], want[size_t(r * batch + b)], 1e-4);
            }
        }
      }
    std::vector<int32_t> bad = {150};
    std::vector<float> one = {1.f}, out(16);
    std::vector<float> w(16 * 150, 0.f);
    EXPECT_THROW(complementary_kwta_gemm(ComplementaryMatrix::pack(w.data(), 16, 150, 4), 1, 1, bad.data(),
                                         one.data(), out.data(), 16, nullptr),
                 Error);
  });
}
