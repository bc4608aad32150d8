// GEMM ABFT (global and thread-level) on every ISA: clean products are unchanged and raise no
// detection; injected bit flips in the raw product are detected whenever their effect exceeds
// the bound, which this file recomputes with plain double loops from the operands.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "primitives/primitives.h"
#include "test_support.h"

namespace prim = tessera::primitives;
using prim::GemmCheck;
using prim::GemmCheckCounters;
using prim::GemmCheckScheme;
using prim::Isa;

namespace {

using tessera::testing::for_each_isa;

std::vector<float> random_vector(size_t n, uint32_t seed) { return tessera::testing::random_floats(n, seed, -1.f, 1.f); }

// A check of `scheme` counting into `counters`, with a fault hook when one is given.
GemmCheck make_check(GemmCheckScheme scheme, GemmCheckCounters& counters, prim::GemmFaultHook hook = nullptr,
                     void* context = nullptr) {
  GemmCheck check;
  check.scheme = scheme;
  check.counters = &counters;
  check.fault_hook = hook;
  check.fault_context = context;
  return check;
}

struct Shape {
  int64_t M, N, K;
};
// Tails of every kernel's tile (14x32, 6x16, 4x16), one and several K blocks (K > 512).
const Shape kShapes[] = {{1, 1, 1},   {5, 7, 3},    {14, 32, 64},  {15, 33, 65},
                         {29, 70, 17}, {64, 300, 40}, {3, 17, 700}, {100, 40, 1030}};

// One bit flip in the raw product of the element (row, col), applied once.
struct BitFlip {
  int64_t row = 0, col = 0;
  int bit = 0;
  bool done = false;
  float before = 0, after = 0;
  static void hook(void* context, int64_t row0, int64_t col0, int rows, int cols, float* c, int64_t ldc) {
    auto* f = static_cast<BitFlip*>(context);
    if (f->done || f->row < row0 || f->row >= row0 + rows || f->col < col0 || f->col >= col0 + cols) return;
    float* v = c + (f->row - row0) * ldc + (f->col - col0);
    uint32_t bits;
    std::memcpy(&bits, v, 4);
    bits ^= 1u << f->bit;
    f->before = *v;
    std::memcpy(v, &bits, 4);
    f->after = *v;
    f->done = true;
  }
};

// The bound of the scheme for row `row` (docs/ABFT.md), in double from the operands: the thread
// scheme sums over the row's register tile columns, the global one over all N columns (1 thread).
double row_bound(const std::vector<float>& A, const std::vector<float>& B, const Shape& s, int64_t row, int64_t col0,
                 int64_t cols) {
  double magnitude = 0;
  for (int64_t k = 0; k < s.K; ++k)
    for (int64_t j = col0; j < col0 + cols; ++j) magnitude += std::fabs(double(A[size_t(row * s.K + k)])) * std::fabs(double(B[size_t(k * s.N + j)]));
  const double u = 1.0 / (1 << 24), m = double(s.K + cols + 2) * u;
  return 2 * m / (1 - m) * magnitude;
}

// The same for column `col` over all M rows (the global check when B is packed per call).
double column_bound(const std::vector<float>& A, const std::vector<float>& B, const Shape& s, int64_t col) {
  double magnitude = 0;
  for (int64_t k = 0; k < s.K; ++k)
    for (int64_t i = 0; i < s.M; ++i)
      magnitude += std::fabs(double(A[size_t(i * s.K + k)])) * std::fabs(double(B[size_t(k * s.N + col)]));
  const double u = 1.0 / (1 << 24), m = double(s.K + s.M + 2) * u;
  return 2 * m / (1 - m) * magnitude;
}

TEST(GemmCheck, CleanProductsAreUnchangedAndRaiseNoDetection) {
  for_each_isa([](Isa) {
    for (const Shape& s : kShapes) {
      for (GemmCheckScheme scheme : {GemmCheckScheme::global, GemmCheckScheme::thread}) {
        SCOPED_TRACE("M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K) +
                     (scheme == GemmCheckScheme::global ? " global" : " thread"));
        const auto A = random_vector(size_t(s.M * s.K), 1), B = random_vector(size_t(s.K * s.N), 2);
        const auto bias = random_vector(size_t(s.N), 3), old_c = random_vector(size_t(s.M * s.N), 4);
        GemmCheckCounters counters;
        GemmCheck check = make_check(scheme, counters);
        prim::GemmEpilogue plain;
        plain.bias_per_column = bias.data();
        plain.activation.kind = prim::UnaryKind::relu;
        prim::GemmEpilogue checked = plain;
        checked.check = &check;
        // Packed B with a fused epilogue.
        const prim::PackedB packed(s.K, s.N, B.data(), s.N, false);
        std::vector<float> expected(size_t(s.M * s.N)), actual(size_t(s.M * s.N));
        prim::gemm_packed_f32(s.M, A.data(), s.K, packed, expected.data(), s.N, plain, nullptr);
        prim::gemm_packed_f32(s.M, A.data(), s.K, packed, actual.data(), s.N, checked, nullptr);
        for (size_t i = 0; i < expected.size(); ++i) ASSERT_NEAR(actual[i], expected[i], 1e-5f * (1 + std::fabs(expected[i])));
        // General entry point: transposed A, alpha and beta (the old C enters the checksum).
        std::vector<float> At(A.size());
        for (int64_t m = 0; m < s.M; ++m)
          for (int64_t k = 0; k < s.K; ++k) At[size_t(k * s.M + m)] = A[size_t(m * s.K + k)];
        expected = old_c;
        actual = old_c;
        prim::gemm_f32(true, false, s.M, s.N, s.K, 0.5f, At.data(), s.M, B.data(), s.N, 0.75f, expected.data(), s.N,
                       nullptr);
        prim::gemm_f32(true, false, s.M, s.N, s.K, 0.5f, At.data(), s.M, B.data(), s.N, 0.75f, actual.data(), s.N,
                       nullptr, &checked);
        // (the checked call applies bias + relu: compare with the same epilogue applied to expected)
        for (int64_t m = 0; m < s.M; ++m)
          for (int64_t n = 0; n < s.N; ++n) {
            float& e = expected[size_t(m * s.N + n)];
            e = std::max(0.f, e + bias[size_t(n)]);
          }
        for (size_t i = 0; i < expected.size(); ++i) ASSERT_NEAR(actual[i], expected[i], 1e-5f * (1 + std::fabs(expected[i])));
        EXPECT_EQ(counters.detections.load(), 0);
        // Rows (plan-time B, thread tiles) or columns (B packed per call) of both calls.
        EXPECT_GE(counters.checks.load(), 2 * std::min(s.M, s.N));
        EXPECT_LT(counters.worst_clean_ratio.load(), 1.f);
      }
    }
  });
}

TEST(GemmCheck, EveryFlipAboveTheBoundIsDetectedByBothSchemes) {
  for_each_isa([](Isa) {
    std::mt19937 rng(7);
    int detected = 0, below = 0;
    for (const Shape& s : kShapes) {
      const auto A = random_vector(size_t(s.M * s.K), 11), B = random_vector(size_t(s.K * s.N), 12);
      const prim::PackedB packed(s.K, s.N, B.data(), s.N, false);
      for (GemmCheckScheme scheme : {GemmCheckScheme::global, GemmCheckScheme::thread}) {
       for (bool plan_time_b : {true, false}) {
        for (int bit = 0; bit < 32; ++bit) {
          BitFlip flip;
          flip.row = int64_t(rng() % uint32_t(s.M));
          flip.col = int64_t(rng() % uint32_t(s.N));
          flip.bit = bit;
          GemmCheckCounters counters;
          GemmCheck check = make_check(scheme, counters, &BitFlip::hook, &flip);
          prim::GemmEpilogue e;
          e.check = &check;
          std::vector<float> C(size_t(s.M * s.N));
          if (plan_time_b)
            prim::gemm_packed_f32(s.M, A.data(), s.K, packed, C.data(), s.N, e, nullptr);
          else
            prim::gemm_f32(false, false, s.M, s.N, s.K, 1.f, A.data(), s.K, B.data(), s.N, 0.f, C.data(), s.N,
                           nullptr, &e);
          ASSERT_TRUE(flip.done);
          const double delta = std::fabs(double(flip.after) - double(flip.before));
          // Whole-row and whole-column magnitudes bound those of every scheme's check (a thread
          // tile's row is part of the row), so "above" is certain for all of them.
          const double bound =
              std::max(row_bound(A, B, s, flip.row, 0, s.N), column_bound(A, B, s, flip.col));
          if (!std::isfinite(flip.after) || delta > 2.01 * bound) {
            EXPECT_EQ(counters.detections.load(), 1) << "bit " << bit << " delta " << delta << " bound " << bound;
            ++detected;
          } else {
            ++below;
          }
        }
       }
      }
    }
    // High exponent bits always change the value by far more than round-off.
    EXPECT_GT(detected, below / 4);
  });
}

// Several flips at once: adjacent bit pairs and triples in one element, and one flip in each of
// several elements of the same tile (the spatial patterns of a struck register file).
struct MultiFlip {
  std::vector<std::pair<int, int>> elements;  // (row, col) within the first tile seen
  std::vector<int> bits;
  bool done = false;
  std::vector<double> deltas;  // per element: |after - before|
  static void hook(void* context, int64_t row0, int64_t col0, int rows, int cols, float* c, int64_t ldc) {
    auto* f = static_cast<MultiFlip*>(context);
    if (f->done || row0 != 0 || col0 != 0) return;
    f->done = true;
    for (auto [r, j] : f->elements) {
      float* v = c + (r % rows) * ldc + (j % cols);
      const float before = *v;
      uint32_t bits;
      std::memcpy(&bits, v, 4);
      for (int b : f->bits) bits ^= 1u << b;
      std::memcpy(v, &bits, 4);
      f->deltas.push_back(std::fabs(double(*v) - double(before)));
    }
  }
};

TEST(GemmCheck, MultipleFlipsAboveTheBoundAreDetected) {
  for_each_isa([](Isa) {
    const Shape s{64, 96, 200};
    const auto A = random_vector(size_t(s.M * s.K), 21), B = random_vector(size_t(s.K * s.N), 22);
    const prim::PackedB packed(s.K, s.N, B.data(), s.N, false);
    std::mt19937 rng(5);
    int detected = 0;
    for (GemmCheckScheme scheme : {GemmCheckScheme::global, GemmCheckScheme::thread}) {
      for (int trial = 0; trial < 60; ++trial) {
        MultiFlip flip;
        const int first_bit = int(rng() % 30);
        const int width = 2 + trial % 2;  // adjacent pairs and triples
        for (int b = 0; b < width && first_bit + b < 32; ++b) flip.bits.push_back(first_bit + b);
        const int elements = trial < 30 ? 1 : 2 + int(rng() % 3);
        for (int e = 0; e < elements; ++e) flip.elements.push_back({int(rng() % 4), int(rng() % 16)});
        GemmCheckCounters counters;
        GemmCheck check = make_check(scheme, counters, &MultiFlip::hook, &flip);
        prim::GemmEpilogue e;
        e.check = &check;
        std::vector<float> C(size_t(s.M * s.N));
        prim::gemm_packed_f32(s.M, A.data(), s.K, packed, C.data(), s.N, e, nullptr);
        ASSERT_TRUE(flip.done);
        // Flips in different rows are checked separately: one above twice its row's and column's
        // bound must be detected whatever the others did (distinct elements, same row: their
        // changes could cancel, so only the single-element and distinct-row cases are asserted).
        bool must_detect = false;
        std::set<int> rows;
        bool distinct_rows = true;
        for (auto [r, j] : flip.elements) distinct_rows = rows.insert(r).second && distinct_rows;
        for (size_t i = 0; i < flip.elements.size(); ++i) {
          const auto [r, j] = flip.elements[i];
          const double bound = std::max(row_bound(A, B, s, r, 0, s.N), column_bound(A, B, s, j));
          if ((distinct_rows || flip.elements.size() == 1) && (!std::isfinite(flip.deltas[i]) || flip.deltas[i] > 2.01 * bound))
            must_detect = true;
        }
        if (must_detect) {
          EXPECT_GE(counters.detections.load(), 1) << "trial " << trial;
          ++detected;
        }
      }
    }
    EXPECT_GT(detected, 20);
  });
}

// Column sums of A given by the caller (constant weights) serve the global column check.
TEST(GemmCheck, CallerColumnSumsOfAServeTheGlobalCheck) {
  for_each_isa([](Isa) {
    const Shape s{40, 150, 300};
    const auto A = random_vector(size_t(s.M * s.K), 31), B = random_vector(size_t(s.K * s.N), 32);
    std::vector<float> sums(size_t(s.K)), abs_sums(size_t(s.K));
    for (int64_t m = 0; m < s.M; ++m)
      for (int64_t k = 0; k < s.K; ++k) {
        sums[size_t(k)] += A[size_t(m * s.K + k)];
        abs_sums[size_t(k)] += std::fabs(A[size_t(m * s.K + k)]);
      }
    for (int bit : {-1, 30, 27}) {
      BitFlip flip;
      flip.row = 7;
      flip.col = 100;
      flip.bit = bit < 0 ? 0 : bit;
      GemmCheckCounters counters;
      GemmCheck check = bit >= 0 ? make_check(GemmCheckScheme::global, counters, &BitFlip::hook, &flip)
                                 : make_check(GemmCheckScheme::global, counters);
      prim::GemmEpilogue e;
      e.check = &check;
      e.check_a_column_sums = sums.data();
      e.check_a_column_abs_sums = abs_sums.data();
      std::vector<float> C(size_t(s.M * s.N));
      prim::gemm_f32(false, false, s.M, s.N, s.K, 1.f, A.data(), s.K, B.data(), s.N, 0.f, C.data(), s.N, nullptr, &e);
      EXPECT_EQ(counters.checks.load(), s.N);
      if (bit < 0) {
        EXPECT_EQ(counters.detections.load(), 0);
      } else {
        const double bound = column_bound(A, B, s, flip.col);
        if (std::fabs(double(flip.after) - double(flip.before)) > 2.01 * bound || !std::isfinite(flip.after))
          EXPECT_EQ(counters.detections.load(), 1) << "bit " << bit;
      }
    }
  });
}

// auto's thread-level check runs only where B was packed at plan time: with B packed per call it
// falls back to the global check (counted), which still catches a flip above its bound; with
// plan-time B the thread-level check runs (no fallback, one check per row and register tile).
TEST(GemmCheck, ThreadOnlyWithPlanTimeBFallsBackToGlobalForPerCallB) {
  for_each_isa([](Isa) {
    const Shape s{40, 70, 300};
    const auto A = random_vector(size_t(s.M * s.K), 31), B = random_vector(size_t(s.K * s.N), 32);
    std::vector<float> C(size_t(s.M * s.N));
    {  // per-call B: the global check by columns, one per column of C
      GemmCheckCounters counters;
      GemmCheck check = make_check(GemmCheckScheme::thread, counters);
      check.thread_only_with_plan_time_b = true;
      prim::GemmEpilogue e;
      e.check = &check;
      prim::gemm_f32(false, false, s.M, s.N, s.K, 1.f, A.data(), s.K, B.data(), s.N, 0.f, C.data(), s.N, nullptr, &e);
      EXPECT_GT(counters.thread_fallbacks.load(), 0);
      EXPECT_EQ(counters.checks.load(), s.N);
      EXPECT_EQ(counters.detections.load(), 0);
      BitFlip flip;
      flip.row = 17;
      flip.col = 45;
      flip.bit = 30;
      GemmCheckCounters flipped_counters;
      GemmCheck flipped = make_check(GemmCheckScheme::thread, flipped_counters, &BitFlip::hook, &flip);
      flipped.thread_only_with_plan_time_b = true;
      prim::GemmEpilogue flipped_epilogue;
      flipped_epilogue.check = &flipped;
      prim::gemm_f32(false, false, s.M, s.N, s.K, 1.f, A.data(), s.K, B.data(), s.N, 0.f, C.data(), s.N, nullptr,
                     &flipped_epilogue);
      ASSERT_TRUE(flip.done);
      ASSERT_GT(std::fabs(double(flip.after) - flip.before), column_bound(A, B, s, flip.col));
      EXPECT_EQ(flipped_counters.detections.load(), 1);
    }
    {  // plan-time B: thread-level, one check per row of every register tile
      GemmCheckCounters counters;
      GemmCheck check = make_check(GemmCheckScheme::thread, counters);
      check.thread_only_with_plan_time_b = true;
      prim::GemmEpilogue e;
      e.check = &check;
      const prim::PackedB packed(s.K, s.N, B.data(), s.N, false);
      prim::gemm_packed_f32(s.M, A.data(), s.K, packed, C.data(), s.N, e, nullptr);
      EXPECT_EQ(counters.thread_fallbacks.load(), 0);
      EXPECT_GT(counters.checks.load(), s.M);
      EXPECT_EQ(counters.detections.load(), 0);
    }
  });
}

TEST(GemmCheck, ThreadPoolSplitsCheckEveryRow) {
  tessera::ThreadPool pool(2);
  const Shape s{200, 300, 150};
  const auto A = random_vector(size_t(s.M * s.K), 5), B = random_vector(size_t(s.K * s.N), 6);
  for (GemmCheckScheme scheme : {GemmCheckScheme::global, GemmCheckScheme::thread}) {
    GemmCheckCounters counters;
    GemmCheck check = make_check(scheme, counters);
    prim::GemmEpilogue e;
    e.check = &check;
    std::vector<float> C(size_t(s.M * s.N));
    prim::gemm_f32(false, false, s.M, s.N, s.K, 1.f, A.data(), s.K, B.data(), s.N, 0.f, C.data(), s.N, &pool, &e);
    EXPECT_EQ(counters.detections.load(), 0);
    EXPECT_GE(counters.checks.load(), s.M);
  }
}

}  // namespace

namespace {

// Identical positive operands: no cancellation and the same rounding at every step, the case
// where errors add up linearly rather than as a random walk. The rigorous bound must hold; the
// probabilistic one is reported (docs/ABFT.md).
TEST(GemmCheck, StructuredOperandsStayWithinTheRigorousBound) {
  for (float value : {0.1f, 1.f / 3.f, 0.7f}) {
    for (int64_t K : {1000, 4096, 20000}) {
      const int64_t M = 16, N = 64;
      std::vector<float> A(size_t(M * K), value), B(size_t(K * N), value), C(size_t(M * N));
      for (float lambda : {0.f, 8.f}) {
        for (GemmCheckScheme scheme : {GemmCheckScheme::global, GemmCheckScheme::thread}) {
          GemmCheckCounters counters;
          GemmCheck check = make_check(scheme, counters);
          check.probabilistic_lambda = lambda;
          prim::GemmEpilogue e;
          e.check = &check;
          prim::gemm_f32(false, false, M, N, K, 1.f, A.data(), K, B.data(), N, 0.f, C.data(), N, nullptr, &e);
          std::printf("value %.3f K %lld lambda %.0f %s: worst |diff|/bound %.3f, detections %lld\n", value,
                      static_cast<long long>(K), lambda, scheme == GemmCheckScheme::global ? "global" : "thread",
                      double(counters.worst_clean_ratio.load()), static_cast<long long>(counters.detections.load()));
          if (lambda == 0.f) EXPECT_EQ(counters.detections.load(), 0);
        }
      }
    }
  }
}

}  // namespace
