// LUT-GEMM's driver (tables once per call, row blocks split over the pool, ISA dispatch) and its
// portable kernels, which read the same packed layout one row at a time.
#include "compression/lut_gemm.h"

#include <algorithm>
#include <string>
#include <vector>

#include "compression/lut_gemm_kernels.h"
#include "tessera/error.h"

namespace tessera::compression {

namespace detail {
namespace {

void build_tables_portable(const PackedBcq& w, int64_t rows, const float* x, int64_t ldx, float* tables) {
  const int64_t groups4 = w.words_per_row() * 8, cols = w.cols();
  for (int64_t b = 0; b < rows; ++b) {
    float* t = tables + b * groups4 * kTableEntries;
    for (int64_t c = 0; c < groups4; ++c) {
      float a[4];
      for (int j = 0; j < 4; ++j) a[j] = 4 * c + j < cols ? x[b * ldx + 4 * c + j] : 0.f;
      // Entry 0 is -a0-a1-a2-a3; setting bit j adds 2 a_j.
      float* entry = t + c * kTableEntries;
      entry[0] = -a[0] - a[1] - a[2] - a[3];
      for (int j = 0; j < 4; ++j)
        for (int p = 0; p < (1 << j); ++p) entry[p | (1 << j)] = entry[p] + 2 * a[j];
    }
  }
}

void lut_row_blocks_portable(const LutGemmCall& call, int64_t block_begin, int64_t block_end) {
  const PackedBcq& w = *call.weights;
  const int q = w.bits();
  const int64_t words = w.words_per_row(), groups = w.groups(), per_group = w.words_per_group();
  const int64_t table_floats = table_floats_per_row(w);
  constexpr int kLanes = PackedBcq::kRowBlock;
  for (int64_t block = block_begin; block < block_end; ++block) {
    const uint32_t* signs = w.block_signs(block);
    const float* alphas = w.block_alphas(block);
    for (int lane = 0; lane < kLanes; ++lane) {
      const int64_t n = block * kLanes + lane;
      if (n >= w.rows()) break;
      for (int64_t b = 0; b < call.batch; ++b) {
        const float* table = call.tables + b * table_floats;
        float sum = 0.f;
        for (int64_t g = 0; g < groups; ++g) {
          for (int i = 0; i < q; ++i) {
            float plane = 0.f;
            for (int64_t word = g * per_group; word < std::min(words, (g + 1) * per_group); ++word) {
              const uint32_t bits = signs[(word * q + i) * kLanes + lane];
              const float* t = table + word * 8 * kTableEntries;
              for (int j = 0; j < 8; ++j) plane += t[j * kTableEntries + (bits >> (4 * j) & 15u)];
            }
            sum += alphas[(g * q + i) * kLanes + lane] * plane;
          }
        }
        float& out = call.y[b * call.ldy + n];
        if (call.bias) sum += call.bias[n];
        out = call.accumulate ? out + sum : sum;
      }
    }
  }
}

}  // namespace
}  // namespace detail

void lut_gemm(primitives::Isa isa, const PackedBcq& weights, int64_t batch, const float* x, int64_t ldx,
              const float* bias, bool accumulate, float* y, int64_t ldy, ThreadPool* pool) {
  TESSERA_CHECK(!weights.empty(), "LUT-GEMM: no weights (an empty PackedBcq)");
  TESSERA_CHECK(batch >= 0, "LUT-GEMM: negative batch");
  TESSERA_CHECK(ldx >= weights.cols() && ldy >= weights.rows(),
                "LUT-GEMM: leading dimensions " + std::to_string(ldx) + " / " + std::to_string(ldy) +
                    " are smaller than the input / output widths " + std::to_string(weights.cols()) + " / " +
                    std::to_string(weights.rows()));
  if (batch == 0) return;
  isa = std::min(isa, primitives::detected_isa());
  detail::BuildTablesFn build = detail::build_tables_portable;
  detail::LutRowBlocksFn compute = detail::lut_row_blocks_portable;
  if (isa == primitives::Isa::avx512) {
    build = detail::build_tables_avx512;
    compute = detail::lut_row_blocks_avx512;
  } else if (isa == primitives::Isa::avx2) {
    build = detail::build_tables_avx2;
    compute = detail::lut_row_blocks_avx2;
  }
  // Kept between calls: a decode step allocates nothing.
  thread_local std::vector<float> tables;
  tables.resize(size_t(batch * detail::table_floats_per_row(weights)));
  build(weights, batch, x, ldx, tables.data());

  detail::LutGemmCall call;
  call.weights = &weights;
  call.batch = batch;
  call.tables = tables.data();
  call.bias = bias;
  call.accumulate = accumulate;
  call.y = y;
  call.ldy = ldy;
  // Blocks go out in pairs (the AVX-512 kernel does two at once at batch 1), a few chunks per
  // thread claimed dynamically, so a thread that loses its core does not hold up the product.
  const int64_t blocks = weights.row_blocks(), pairs = (blocks + 1) / 2;
  const int threads = pool ? pool->size() : 1;
  const int64_t chunks =
      threads <= 1 || weights.bytes() * std::max<int64_t>(batch, 1) < (int64_t(64) << 10)
          ? 1
          : std::min<int64_t>(pairs, 4 * threads);
  auto run_chunk = [&](int chunk) {
    const int64_t begin = std::min(blocks, 2 * (pairs * chunk / chunks));
    const int64_t end = std::min(blocks, 2 * (pairs * (chunk + 1) / chunks));
    if (begin < end) compute(call, begin, end);
  };
  if (chunks == 1)
    run_chunk(0);
  else
    pool->run_tasks(int(chunks), run_chunk);
}

void lut_gemm(const PackedBcq& weights, int64_t batch, const float* x, int64_t ldx, const float* bias,
              bool accumulate, float* y, int64_t ldy, ThreadPool* pool) {
  lut_gemm(primitives::active_isa(), weights, batch, x, ldx, bias, accumulate, y, ldy, pool);
}

}  // namespace tessera::compression
