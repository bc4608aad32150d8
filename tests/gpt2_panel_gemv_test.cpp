// The decode GEMV over packed panels, on every vector ISA the CPU has, against a plain double
// loop: row counts around the register-tile sizes, odd depths and widths (panel tails), bias,
// accumulation, leading dimensions wider than the data, and panel ranges split between callers.
#include <gtest/gtest.h>

#include "llm/panel_gemv.h"
#include "test_support.h"

namespace tessera::llm {
namespace {

using primitives::Isa;

TEST(PanelGemv, MatchesAPlainLoopOnEveryIsa) {
  testing::for_each_isa([](Isa isa) {
    const detail::PanelGemvFn gemv = detail::panel_gemv(isa);
    if (!gemv) return;  // the portable path has no GEMV of its own: the GEMM serves it
    uint32_t seed = 1;
    for (int64_t rows : {1, 2, 3, 4, 5, 7, 8, 9, 12})
      for (int64_t K : {1, 3, 17, 64})
        for (int64_t N : {1, 15, 16, 17, 40, 100})
          for (bool accumulate : {false, true}) {
            SCOPED_TRACE(std::to_string(rows) + " rows, K " + std::to_string(K) + ", N " + std::to_string(N) +
                         (accumulate ? ", accumulating" : ""));
            const int64_t ldx = K + 3, ldy = N + 5;
            std::vector<float> x = testing::random_floats(size_t(rows * ldx), seed++);
            std::vector<float> w = testing::random_floats(size_t(K * N), seed++);
            std::vector<float> bias = testing::random_floats(size_t(N), seed++);
            std::vector<float> y = testing::random_floats(size_t(rows * ldy), seed++);
            std::vector<float> expected = y;
            for (int64_t r = 0; r < rows; ++r)
              for (int64_t n = 0; n < N; ++n) {
                double sum = bias[size_t(n)] + (accumulate ? y[size_t(r * ldy + n)] : 0.0);
                for (int64_t k = 0; k < K; ++k) sum += double(x[size_t(r * ldx + k)]) * w[size_t(k * N + n)];
                expected[size_t(r * ldy + n)] = float(sum);
              }
            primitives::PackedB packed(K, N, w.data(), N, false);
            // Two callers over disjoint panel ranges, as the threads of a decode step.
            const int64_t panels = packed.panel_count(), middle = panels / 2;
            gemv(rows, x.data(), ldx, packed, 0, middle, bias.data(), accumulate, y.data(), ldy);
            gemv(rows, x.data(), ldx, packed, middle, panels, bias.data(), accumulate, y.data(), ldy);
            // Columns past N (the padding of ldy) must be untouched.
            for (size_t i = 0; i < y.size(); ++i)
              ASSERT_NEAR(y[i], expected[i], 1e-5 * (1 + std::fabs(expected[i]))) << "element " << i;
          }
  });
}

TEST(PanelGemv, NoBias) {
  testing::for_each_isa([](Isa isa) {
    const detail::PanelGemvFn gemv = detail::panel_gemv(isa);
    if (!gemv) return;
    std::vector<float> x{1.f, 2.f}, w{1.f, 2.f, 3.f, 4.f, 5.f, 6.f}, y(3, -1.f);
    primitives::PackedB packed(2, 3, w.data(), 3, false);
    gemv(1, x.data(), 2, packed, 0, packed.panel_count(), nullptr, false, y.data(), 3);
    EXPECT_EQ(y, (std::vector<float>{9.f, 12.f, 15.f}));
  });
}

}  // namespace
}  // namespace tessera::llm
