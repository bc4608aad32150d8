// The GEMM drivers: B packing (PackedB), cache blocking over K/M/N, A packing per block, the
// thread-pool split, the batch-reduce loop and the ABFT checks around the tiles (RangeCheck).
// The microkernels and the checks' vector loops live in gemm_<isa>.cpp.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include "tessera/thread_pool.h"
#include "core/cpu_relax.h"
#include "primitives/gemm_check.h"
#include "primitives/kernels.h"

#include <sys/mman.h>

namespace tessera::primitives {

using detail::GemmKernel;
using detail::GemmTileArgs;

namespace {

// Every kernel reads B in 16-column panels: one zmm, two ymm or sixteen scalars, so a PackedB
// made while one ISA was active is still valid for another.
constexpr int64_t kPanelWidth = 16;
// Blocking, tuned on a Xeon with 48 KiB L1D and 2 MiB L2 per core (14 x 32 AVX-512 tiles):
// - kMaxBlockK: depth of one K block. The A micro-panel (mr x kc) is reused from L1 by the
//   kNBlockTiles B micro-panels (kc x nr) that stream past it from L2; larger kc means fewer
//   passes over C. 384-512 measured best; K is split into equal blocks up to this depth.
// - kBlockMTiles: register tiles of rows per A block (mc = 12 * 14 = 168 rows); the A block
//   (mc x kc) and the B block (kc x nc) together stay well inside L2.
// - kNBlockTiles: B micro-panels that share one A micro-panel while it is in L1 (nc = 256).
constexpr int64_t kMaxBlockK = 512;
constexpr int64_t kBlockMTiles = 12;
constexpr int64_t kNBlockTiles = 8;
// Products of at most this many register tiles of rows (49 pixels of a 7x7 plane, pixel-major)
// run B-stationary: each B micro-panel meets every row tile while it is in L1, with K blocks of
// at most kMaxBlockKBStationary so that the panel (kc x 32 floats, 32 KiB) fits there. A few row
// tiles reuse a B panel only a few times, so streaming it from L2 per tile cost more than the
// FMAs could hide once the weights came from DRAM; B-stationary, the L2 traffic per tile is the
// A micro-panel (14 KiB). With the AVX-512 tile's even prefetch spread, a chain of 512-channel
// 3x3 convolutions on 7x7 planes (weights from DRAM) went from 2.55 to 2.12 ms a layer, and
// 2048-channel 1x1 ones from 4.0 to 3.3.
// The K block depth is chosen from the whole product's row tiles, never from a thread's share,
// so that every thread count sums in the same order: a thread's range of 4 tiles or fewer inside
// a taller product (a row split, or the last A block) runs B-stationary with the deeper blocks.
constexpr int64_t kBStationaryMaxRowTiles = 4;
constexpr int64_t kMaxBlockKBStationary = 256;
// Products of up to kBStationaryMaxRowTilesWide row tiles (140 rows: BERT's sequence of 128)
// run B-stationary too when their K blocks are the shallow ones: A micro-panels then stream from
// L2 past a B panel held in L1, and the weights are read once, panel after panel, in the order
// the hardware prefetchers follow from DRAM (BERT-base's products with weights from DRAM, 1
// thread: 147-150 -> 156-160 GFLOP/s). The columns are swept once per slab of K blocks whose
// packed A (all rows) fits in kBStationaryASlabBytes, so that A stays in L2 beside the weight
// stream (one sweep over all of K = 3072 ran 4% slower than the K-block-major order, hot).
constexpr int64_t kBStationaryMaxRowTilesWide = 10;
constexpr int64_t kBStationaryASlabBytes = 640 * 1024;
// B packed at run time goes through a buffer of this many floats (kc x nc, 768 KiB), which stays
// in L2 beside the A block while every row block of the range uses it.
constexpr int64_t kPackedBBlockFloats = 192 * 1024;
// Row tiles up to which run-time B is read in place rather than packed (see run_range). With 3,
// MobileNetV2's 1x1 layers of 16 to 32 output channels took 1326 -> 1019 us in all; 6 helped its
// 64-channel 14x14 layers (80 -> 68 us) but slowed ResNet-50's 256 -> 64 at 56x56 (2.09 -> 2.48 ms:
// 256 rows of B read in place, 3136 floats apart).
constexpr int64_t kInPlaceBMaxRowTiles = 3;
// Output tiles per task from which A is packed even when its rows would be read fine in place
// (see should_pack_a). Measured on 2026-12-07 (gemm_bench, 1 thread, plan-time B): packing the
// 14-row panels costs 17% at 2 column tiles (3136 x 64 x 576) and 6% at 4 (784 x 128 x 1152),
// and gains from 8 on: +9% on BERT-base's 128 x 768 x 256 and 128 x 512 x 768, +11% on its
// 128 x 768 x 768, +5-6% on 784 x 512 x 128 and 3136 x 256 x 64. (The threshold was 32: the
// packer has since become cheaper, and the in-place broadcasts need one address register per
// row, which the compiler spills to the stack: eight extra loads per k step.)
constexpr int64_t kPackMinTiles = 8;
// Column chunks per thread when plan-time B is shared out dynamically (run_column_chunks):
// 8 measured 4.5% faster than 4 on BERT-base at 2 threads, 16 no better than 8.
constexpr int64_t kChunksPerThread = 8;
// Register tiles of rows per thread from which plan-time B products may split rows instead of
// taking column chunks (see run_gemm).
constexpr int64_t kRowSplitMinTilesPerThread = 8;
// The most floats of A that run_column_chunks packs whole for all threads (16 MiB; GPT-2
// 124M's prefill of 512 tokens needs 6 MiB for its widest K).
constexpr int64_t kMaxSharedPackedAFloats = int64_t(4) << 20;
// Below this many flops (a few microseconds of work) a GEMM runs on the calling thread: waking a
// sleeping worker costs about as much.
constexpr double kMinParallelFlops = 256 * 1024;

// Whether `row_tiles` register tiles of rows run B-stationary (see above) with K blocks of depth kc.
bool runs_b_stationary(int64_t row_tiles, int64_t kc) {
  return row_tiles <= kBStationaryMaxRowTiles ||
         (row_tiles <= kBStationaryMaxRowTilesWide && kc <= kMaxBlockKBStationary);
}

std::shared_ptr<float> allocate_floats(size_t count) {
  size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
  // Packed weights of megabytes (BERT-base: 340 MB, read once per inference) go on 2 MiB pages
  // where the kernel allows (transparent huge pages in madvise mode): one TLB entry per 2 MiB
  // instead of per 4 KiB of the stream (measured 1.5-2.5% on BERT-base at 1 thread). The cost
  // is at most the unused part of one huge page per matrix of at least 2 MiB.
  constexpr size_t kHugePage = size_t(2) << 20;
  void* memory = nullptr;
  if (bytes >= kHugePage) {
    const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    memory = std::aligned_alloc(kHugePage, rounded);
    if (memory) madvise(memory, rounded, MADV_HUGEPAGE);  // advice only: failure is harmless
  } else {
    memory = std::aligned_alloc(64, bytes);
  }
  if (!memory) throw std::bad_alloc();
  std::memset(memory, 0, bytes);
  return std::shared_ptr<float>(static_cast<float*>(memory), std::free);
}

// A grow-only buffer per thread for packed A, so repeated GEMMs do not hit the allocator (large
// allocations would be fresh mmaps, page faults included, on every call).
class ScratchBuffer {
 public:
  ~ScratchBuffer() { std::free(data_); }
  float* get(size_t count) {
    if (count > capacity_) {
      std::free(data_);
      capacity_ = count + 64;
      data_ = static_cast<float*>(std::aligned_alloc(64, (capacity_ * 4 + 63) / 64 * 64));
      if (!data_) {
        capacity_ = 0;
        throw std::bad_alloc();
      }
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  size_t capacity_ = 0;
};
thread_local ScratchBuffer packed_a_scratch;

struct GemmProblem {
  int64_t M = 0, N = 0, K = 0;
  const float* A = nullptr;
  int64_t lda = 0;
  bool trans_a = false;
  float alpha = 1.f;
  // B is either packed at plan time, or given raw (K x N row-major, or N x K when trans_b) and
  // then packed at run time by each task for its own columns only, so packing runs in parallel.
  const PackedB* packed_b = nullptr;
  const float* raw_b = nullptr;
  int64_t ldb = 0;
  bool trans_b = false;
  float* C = nullptr;
  int64_t ldc = 0;
  float beta = 0.f;
  const GemmEpilogue* epilogue = nullptr;
  const GemmCheck* check = nullptr;  // ABFT; then the kernels store the raw product
  const float* check_a_column_sums = nullptr;  // see GemmEpilogue
  const float* check_a_column_abs_sums = nullptr;
};

// ABFT bookkeeping for one thread's range (see GemmCheck), kept beside the loops of run_range.
// Thread-level: per register tile, row checksums against A_tile (B_tile 1), built while the tile
// is computed (AVX-512: in the microkernel) and compared when it is done. Global: one check per
// row or column of the range, whichever side's reference is cheap: rows when B was packed at plan
// time (its row sums are made once), columns when B is packed now (the sums of A's columns are
// one pass over A, and the reference is accumulated from each B block while it is in L2).
struct RangeCheck {
  enum class Mode { thread, global_rows, global_columns, hook_only };
  const GemmProblem& p;
  const GemmKernel& kernel;
  int64_t m_begin, m_end, n_begin, n_end;
  Mode mode;
  // Global checks whose sums the microkernel makes in its store step (no fault hook to corrupt
  // the stored tile first): the tile is stored once, through the epilogue.
  bool fused_sums = false;
  // The buffers live per thread and only grow (assign reuses their capacity): a GEMM call, which
  // may be one of a Winograd convolution's 36 small ones, allocates nothing.
  struct Buffers {
    // thread: per register tile of the current column block, reference and old C's magnitude.
    std::vector<float> tile_state;
    // Sums of the current B block per register tile column (depth each), and per panel.
    std::vector<float> tile_b_sum, panel_sums;
    // global_rows: B's row sums over the range's columns. global_columns: A's column sums.
    std::vector<float> operand_sum, operand_abs_sum;
    // Per checked line (row or column of the range): computed sum of C, reference, magnitude.
    std::vector<float> c_sum, reference, magnitude;
    std::vector<float> line_reference, line_magnitude, ones;
  };
  static Buffers& buffers() {
    thread_local Buffers b;
    return b;
  }
  Buffers& b = buffers();
  std::vector<float>& tile_state = b.tile_state;
  int64_t tile_state_columns = 0;  // register tiles per row of tile_state
  std::vector<float>&tile_b_sum = b.tile_b_sum, &panel_sums = b.panel_sums;
  // The current B block's row sums per register tile: tile i's at tile_sums + i * stride.
  const float* tile_sums = nullptr;
  int64_t tile_sums_stride = 0;
  std::vector<float>&operand_sum = b.operand_sum, &operand_abs_sum = b.operand_abs_sum;
  std::vector<float>&c_sum = b.c_sum, &reference = b.reference, &magnitude = b.magnitude;
  detail::LocalCheckCounts counts;
  // Thread-level bounds for full-width tiles and for the range's last, narrower one.
  std::optional<detail::CheckBound> full_tile_bound, edge_tile_bound;
  int edge_cols = 0;

  RangeCheck(const GemmProblem& problem, const GemmKernel& k, int64_t mb, int64_t me, int64_t nb, int64_t ne)
      : p(problem), kernel(k), m_begin(mb), m_end(me), n_begin(nb), n_end(ne) {
    if (p.check->scheme == GemmCheckScheme::hook_only) {
      mode = Mode::hook_only;
      return;
    }
    const bool thread_fallback =
        p.check->scheme == GemmCheckScheme::thread && p.check->thread_only_with_plan_time_b && !p.packed_b;
    if (thread_fallback) p.check->counters->thread_fallbacks.fetch_add(1, std::memory_order_relaxed);
    if (p.check->scheme == GemmCheckScheme::thread && !thread_fallback) {
      mode = Mode::thread;
      full_tile_bound.emplace(*p.check, p.K + kernel.nr);
      edge_cols = int((n_end - n_begin) % kernel.nr);
      if (edge_cols) edge_tile_bound.emplace(*p.check, p.K + edge_cols);
      return;
    }
    mode = p.packed_b ? Mode::global_rows : Mode::global_columns;
    fused_sums = kernel.fused_global_sums && !p.check->fault_hook;
    if (mode == Mode::global_rows) {
      const int64_t rows = m_end - m_begin;
      c_sum.assign(size_t(rows * kPanelWidth), 0.f);  // 16-lane partial sums per row
      reference.assign(size_t(rows), 0.f);
      magnitude.assign(size_t(rows), 0.f);
      if (n_begin == 0 && n_end == p.N) {  // the whole of B: its row sums were made with it
        operand_sum.assign(p.packed_b->row_sums_all(), p.packed_b->row_sums_all() + p.K);
        operand_abs_sum.assign(p.packed_b->row_abs_sums_all(), p.packed_b->row_abs_sums_all() + p.K);
        return;
      }
      operand_sum.assign(size_t(p.K), 0.f);
      operand_abs_sum.assign(size_t(p.K), 0.f);
      const float* sums = p.packed_b->panel_row_sums();
      const float* abs_sums = p.packed_b->panel_row_abs_sums();
      for (int64_t panel = n_begin / kPanelWidth; panel * kPanelWidth < n_end; ++panel)
        for (int64_t k = 0; k < p.K; ++k) {
          operand_sum[size_t(k)] += sums[panel * p.K + k];
          operand_abs_sum[size_t(k)] += abs_sums[panel * p.K + k];
        }
      return;
    }
    // Columns, padded to whole panels so a block's panels can be added without bounds checks.
    const int64_t columns = (n_end - n_begin + kPanelWidth - 1) / kPanelWidth * kPanelWidth;
    c_sum.assign(size_t(columns), 0.f);
    reference.assign(size_t(columns), 0.f);
    magnitude.assign(size_t(columns), 0.f);
    operand_sum.assign(size_t(p.K), 0.f);
    operand_abs_sum.assign(size_t(p.K), 0.f);
    // The column sums of alpha A over the range's rows: given by the caller for all of A, or one
    // vector pass over A.
    if (p.check_a_column_sums && m_begin == 0 && m_end == p.M) {
      for (int64_t k = 0; k < p.K; ++k) {
        operand_sum[size_t(k)] = p.alpha * p.check_a_column_sums[k];
        operand_abs_sum[size_t(k)] = std::fabs(p.alpha) * p.check_a_column_abs_sums[k];
      }
    } else if (!p.trans_a) {
      for (int64_t m = m_begin; m < m_end; ++m)
        kernel.axpy2(p.K, p.A + m * p.lda, p.alpha, std::fabs(p.alpha), operand_sum.data(), operand_abs_sum.data());
    } else {
      std::vector<float>& ones = b.ones;
      ones.assign(size_t(m_end - m_begin), 1.f);
      for (int64_t k = 0; k < p.K; ++k) {
        kernel.dot2(m_end - m_begin, p.A + k * p.lda + m_begin, ones.data(), ones.data(), &operand_sum[size_t(k)],
                    &operand_abs_sum[size_t(k)]);
        operand_sum[size_t(k)] *= p.alpha;
        operand_abs_sum[size_t(k)] *= std::fabs(p.alpha);
      }
    }
  }

  // A column block starts: thread-level tile state for its register tiles.
  void begin_column_block(int64_t m_tiles, int64_t n_tiles) {
    if (mode != Mode::thread) return;
    tile_state_columns = n_tiles;
    tile_state.assign(size_t(m_tiles * n_tiles * kernel.mr * 2), 0.f);
  }

  // A B block (rows k0 .. k0 + depth, columns nc0 .. nc_end) is ready in panels.
  void add_b_block(const float* block, int64_t panel_stride, int64_t b_origin, int64_t k0, int64_t depth,
                   int64_t nc0, int64_t nc_end) {
    const int64_t first_panel = (nc0 - b_origin) / kPanelWidth;
    const int64_t panels = (nc_end - nc0 + kPanelWidth - 1) / kPanelWidth;
    if (mode == Mode::global_columns) {
      kernel.column_reference(block + first_panel * panel_stride, panels, panel_stride, depth,
                              operand_sum.data() + k0, operand_abs_sum.data() + k0,
                              reference.data() + (nc0 - n_begin), magnitude.data() + (nc0 - n_begin));
      return;
    }
    if (mode != Mode::thread || depth == 0) return;
    if (p.packed_b) {  // made with B at plan time, read in place
      tile_sums_stride = p.K;
      tile_sums = p.packed_b->tile_row_sums(kernel.nr) + ((nc0 - b_origin) / kernel.nr) * p.K + k0;
      return;
    }
    // From the fresh block: per panel and k, then a register tile's are those of its panels added.
    panel_sums.resize(size_t(panels * depth));
    kernel.panel_row_sums(block + first_panel * panel_stride, panels, panel_stride, depth, panel_sums.data(),
                          nullptr);
    const int64_t panels_per_tile = kernel.nr / kPanelWidth;
    const int64_t tiles = (panels + panels_per_tile - 1) / panels_per_tile;
    tile_b_sum.assign(size_t(tiles * depth), 0.f);
    for (int64_t panel = 0; panel < panels; ++panel) {
      float* sum = tile_b_sum.data() + (panel / panels_per_tile) * depth;
      const float* from = panel_sums.data() + panel * depth;
      for (int64_t k = 0; k < depth; ++k) sum[k] += from[k];
    }
    tile_sums = tile_b_sum.data();
    tile_sums_stride = depth;
  }

  float* tile_reference(int64_t m0, int64_t n0, int64_t nc0) {
    return tile_state.data() +
           (((m0 - m_begin + kernel.mr - 1) / kernel.mr) * tile_state_columns + (n0 - nc0) / kernel.nr) * kernel.mr *
               2;  // ceil: see RowTiles
  }

  // Sets up (fused) or completes (driver loop) the thread-level sums of one tile call; for fused
  // global sums, hands the kernel where to add them on the tile's last K block.
  void prepare_tile(GemmTileArgs& t, int64_t nc0, bool last_k_block) {
    t.check_reference = nullptr;
    t.check_column_sums = nullptr;
    t.check_row_partials = nullptr;
    if (fused_sums && last_k_block) {
      if (mode == Mode::global_columns) t.check_column_sums = c_sum.data() + (t.col0 - n_begin);
      if (mode == Mode::global_rows) t.check_row_partials = c_sum.data() + (t.row0 - m_begin) * kPanelWidth;
    }
    if (mode != Mode::thread || !kernel.fused_check || t.k == 0) return;
    float* ref = tile_reference(t.row0, t.col0, nc0);
    t.check_b_sum = tile_sums + ((t.col0 - nc0) / kernel.nr) * tile_sums_stride;
    t.check_reference = ref;
  }
  void after_tile_call(const GemmTileArgs& t, const float* packed_a, int64_t nc0) {
    if (mode != Mode::thread || kernel.fused_check || t.k == 0) return;
    float* ref = tile_reference(t.row0, t.col0, nc0);
    kernel.tile_reference(packed_a, kernel.mr, t.rows, t.k, tile_sums + ((t.col0 - nc0) / kernel.nr) * tile_sums_stride,
                          ref);
  }

  // Before a tile's first K block when beta != 0: the old C enters the checksums.
  void add_old_c(const GemmTileArgs& t, int64_t nc0) {
    if (mode == Mode::hook_only) return;
    const float beta = p.beta, abs_beta = std::fabs(p.beta);
    if (mode == Mode::global_columns) {
      for (int r = 0; r < t.rows; ++r) {
        const float* row = t.c + r * t.ldc;
        for (int j = 0; j < t.cols; ++j) {
          reference[size_t(t.col0 - n_begin + j)] += beta * row[j];
          magnitude[size_t(t.col0 - n_begin + j)] += abs_beta * std::fabs(row[j]);
        }
      }
      return;
    }
    float sums[64], abs_sums[64];
    kernel.tile_row_sums(t.c, t.ldc, t.rows, t.cols, sums, abs_sums);
    float* ref = mode == Mode::thread ? tile_reference(t.row0, t.col0, nc0) : reference.data() + (t.row0 - m_begin);
    float* mag = mode == Mode::thread ? ref + kernel.mr : magnitude.data() + (t.row0 - m_begin);
    for (int r = 0; r < t.rows; ++r) {
      ref[r] += beta * sums[r];
      mag[r] += abs_beta * abs_sums[r];
    }
  }

  // After a tile's last K block: fault hook, then the thread-level check or the global sums, then
  // the epilogue on the tile while it is in L1.
  void finish_tile(const GemmTileArgs& t, int64_t nc0) {
    if (fused_sums) return;  // the kernel made the sums and applied the epilogue
    const GemmCheck& check = *p.check;
    if (check.fault_hook) check.fault_hook(check.fault_context, t.row0, t.col0, t.rows, t.cols, t.c, t.ldc);
    if (mode == Mode::global_columns) {
      kernel.tile_column_sums(t.c, t.ldc, t.rows, t.cols, c_sum.data() + (t.col0 - n_begin));
    } else if (mode == Mode::global_rows) {
      kernel.tile_partial_row_sums(t.c, t.ldc, t.rows, t.cols, c_sum.data() + (t.row0 - m_begin) * kPanelWidth);
    } else if (mode == Mode::thread) {
      const float* ref = mode == Mode::thread ? tile_reference(t.row0, t.col0, nc0) : nullptr;
      float sums[64], abs_sums[64];
      kernel.tile_row_sums(t.c, t.ldc, t.rows, t.cols, sums, abs_sums);
      for (int r = 0; r < t.rows; ++r) {
        // sum_j |C_rj| never exceeds the magnitude sum_k |a_rk| sum_j |b_kj| (plus the old C's),
        // so a row within the bound made from it is within the true bound; only rows beyond it
        // (errors, or rare heavy cancellation) pay for the magnitude from the operands.
        const detail::CheckBound& bound =
            t.cols == kernel.nr || !edge_tile_bound ? *full_tile_bound : *edge_tile_bound;
        if (std::fabs(double(sums[r]) - double(ref[r])) <= bound(abs_sums[r]))
          counts.check(sums[r], ref[r], bound(abs_sums[r]));
        else
          counts.check(sums[r], ref[r], bound(exact_magnitude(t.row0 + r, t.col0, t.cols) + ref[kernel.mr + r]));
      }
    }
    if (p.epilogue) {
      // The microkernel's own store applies the epilogue: with depth 0 and beta 1 it loads the
      // tile, adds bias and residual, runs the activation on registers and stores.
      GemmTileArgs store = t;
      store.k = 0;
      store.beta = 1.f;
      store.epilogue = p.epilogue;
      store.check_reference = nullptr;
      store.prefetch_lines = 0;
      kernel.tile(store);
    }
  }

  // sum_k |alpha a(m, k)| sum_{j in [col0, col0 + cols)} |b(k, j)|, from the operands.
  double exact_magnitude(int64_t m, int64_t col0, int cols) const {
    double total = 0;
    for (int64_t k = 0; k < p.K; ++k) {
      const double a = std::fabs(double(p.alpha) * (p.trans_a ? p.A[k * p.lda + m] : p.A[m * p.lda + k]));
      double b = 0;
      for (int64_t j = col0; j < col0 + cols; ++j) {
        if (p.packed_b)
          b += std::fabs(p.packed_b->panel(j / kPanelWidth)[k * kPanelWidth + j % kPanelWidth]);
        else
          b += std::fabs(p.trans_b ? p.raw_b[j * p.ldb + k] : p.raw_b[k * p.ldb + j]);
      }
      total += a * b;
    }
    return total;
  }

  // Global: the references' last part and the checks, after every tile of the range.
  void finish_range() {
    if (mode == Mode::global_columns) {
      const detail::CheckBound bound(*p.check, p.K + (m_end - m_begin));
      for (int64_t n = 0; n < n_end - n_begin; ++n)
        counts.check(c_sum[size_t(n)], reference[size_t(n)], bound(magnitude[size_t(n)]));
    }
    if (mode == Mode::global_rows) finish_rows();
    counts.flush(*p.check->counters);
  }

  void finish_rows() {
    const detail::CheckBound bound(*p.check, p.K + (n_end - n_begin));
    // reference[m] += alpha A_m . (B 1), magnitude[m] += |alpha| |A_m| . (|B| 1): vector passes.
    const size_t rows = size_t(m_end - m_begin);
    std::vector<float>&ref = b.line_reference, &mag = b.line_magnitude;
    ref.assign(rows, 0.f);
    mag.assign(rows, 0.f);
    if (!p.trans_a) {
      for (size_t i = 0; i < rows; ++i)
        kernel.dot2(p.K, p.A + (m_begin + int64_t(i)) * p.lda, operand_sum.data(), operand_abs_sum.data(), &ref[i],
                    &mag[i]);
    } else {
      for (int64_t k = 0; k < p.K; ++k)
        kernel.axpy2(int64_t(rows), p.A + k * p.lda + m_begin, operand_sum[size_t(k)], operand_abs_sum[size_t(k)],
                     ref.data(), mag.data());
    }
    for (size_t i = 0; i < rows; ++i) {
      float computed = 0.f;
      for (int64_t l = 0; l < kPanelWidth; ++l) computed += c_sum[i * kPanelWidth + size_t(l)];
      counts.check(computed, reference[i] + p.alpha * ref[i], bound(magnitude[i] + std::fabs(p.alpha) * mag[i]));
    }
  }
};

thread_local ScratchBuffer packed_b_scratch;

// Packs rows [k0, k0 + depth) x columns [n0, n0 + width) of the raw B into panels of
// kPanelWidth (zero padded past width), the layout PackedB has; returns the panel stride.
int64_t pack_b_block(const GemmProblem& p, int64_t k0, int64_t depth, int64_t n0, int64_t width, float* out) {
  const int64_t stride = depth * kPanelWidth;
  const int64_t panels = (width + kPanelWidth - 1) / kPanelWidth;
  if (!p.trans_b) {
    // Eight panels at a time, row by row: the reads run 512 bytes along a row of B and the writes
    // go to eight sequential streams. A panel at a time read 64 bytes per row of the activations
    // (a 1x1 convolution's 256 x 3136 input: 100 -> 127 GFLOP/s for 64 output channels); a whole
    // row at a time wrote to panels 4 KiB apart, all in one L1 set.
    constexpr int64_t kPanelGroup = 8;
    const int64_t full_panels = width / kPanelWidth, tail = width - full_panels * kPanelWidth;
    for (int64_t group = 0; group < full_panels; group += kPanelGroup) {
      const int64_t group_end = std::min(full_panels, group + kPanelGroup);
      for (int64_t k = 0; k < depth; ++k) {
        const float* src = p.raw_b + (k0 + k) * p.ldb + n0;
        float* dst = out + k * kPanelWidth;
        for (int64_t panel = group; panel < group_end; ++panel)
          std::memcpy(dst + panel * stride, src + panel * kPanelWidth, kPanelWidth * sizeof(float));
      }
    }
    if (tail > 0) {
      for (int64_t k = 0; k < depth; ++k) {
        float* row = out + full_panels * stride + k * kPanelWidth;
        std::memcpy(row, p.raw_b + (k0 + k) * p.ldb + n0 + full_panels * kPanelWidth, size_t(tail) * sizeof(float));
        std::memset(row + tail, 0, size_t(kPanelWidth - tail) * sizeof(float));
      }
    }
    return stride;
  }
  for (int64_t panel = 0; panel < panels; ++panel) {
    const int64_t c0 = n0 + panel * kPanelWidth;
    const int64_t w = std::min(kPanelWidth, n0 + width - c0);
    float* dst = out + panel * stride;
    if (w < kPanelWidth)
      for (int64_t k = 0; k < depth; ++k)
        std::memset(dst + k * kPanelWidth + w, 0, size_t(kPanelWidth - w) * sizeof(float));
    transpose_2d(w, depth, p.raw_b + c0 * p.ldb + k0, p.ldb, dst, kPanelWidth, sizeof(float));
  }
  return stride;
}

// Whether to pack A blocks or let the kernel broadcast from A in place. Packing costs ~0.35
// cycles per element (an in-register transpose); the kernel spends 2 * n_tiles * nr / 64
// cycles of FMAs per element of A, so for narrow outputs (fewer than kPackMinTiles column
// tiles) packing is a visible tax while in place is nearly as fast. In place loses when rows of A alias in L1: a row
// stride that is a multiple of 4 KiB puts all mr rows in one 12-way set.
bool should_pack_a(const GemmProblem& p, int64_t mr, int64_t n_tiles_per_task) {
  if (p.trans_a || p.alpha != 1.f) return true;  // only the packed copy applies these
  if (n_tiles_per_task >= kPackMinTiles) return true;
  // Largest number of the mr row starts that share an L1 set (64 sets of 64 bytes).
  int per_set[64] = {};
  int worst = 0;
  for (int64_t r = 0; r < mr; ++r) {
    const int set = int(((r * p.lda * int64_t(sizeof(float))) / 64) % 64);
    worst = std::max(worst, ++per_set[set]);
  }
  return worst > 4;
}

// Software prefetch of plan-time packed B (weights) one block ahead. A weight matrix is read once
// per GEMM, usually from DRAM (a BERT-base layer's 9 MB FFN weights), and the first A tile that
// meets a B micro-panel stalls on it: the hardware prefetchers do not follow the panel order.
// While one block of B columns is in use, the next block's cache lines are requested into L2 a
// few at a time, spread over the tiles of the current block.
class PackedBPrefetch {
 public:
  // The lines of rows [k0, k0 + depth) of the panels holding columns [n0, n1), over `calls` steps.
  void start(const PackedB& b, int64_t k0, int64_t depth, int64_t n0, int64_t n1, int64_t calls) {
    base_ = b.panel(0) + k0 * kPanelWidth;
    stride_ = b.panel_stride();
    panel_ = n0 / kPanelWidth;
    panel_end_ = n1 > n0 ? (n1 + kPanelWidth - 1) / kPanelWidth : panel_;
    depth_ = depth;
    line_ = 0;
    const int64_t lines = (panel_end_ - panel_) * depth;
    per_call_ = calls > 0 ? (lines + calls - 1) / calls : lines;
  }
  // Issues this call's share now (kernels that cannot spread it over their k loop).
  void step() {
    for (int64_t i = 0; i < per_call_ && panel_ < panel_end_; ++i) {
      __builtin_prefetch(base_ + panel_ * stride_ + line_ * kPanelWidth, 0, 2);
      if (++line_ == depth_) {
        line_ = 0;
        ++panel_;
      }
    }
  }
  // Hands this call's share to the tile (up to the end of the current panel, whose lines are
  // contiguous), for kernels that issue it themselves between their k steps.
  void hand_to(GemmTileArgs& args) {
    args.prefetch_lines = 0;
    if (panel_ >= panel_end_ || per_call_ == 0) return;
    args.prefetch = base_ + panel_ * stride_ + line_ * kPanelWidth;
    args.prefetch_lines = std::min(per_call_, depth_ - line_);
    line_ += args.prefetch_lines;
    if (line_ == depth_) {
      line_ = 0;
      ++panel_;
    }
  }

 private:
  const float* base_ = nullptr;
  int64_t stride_ = 0, panel_ = 0, panel_end_ = 0, depth_ = 0, line_ = 0, per_call_ = 0;
};

// The register tiles of rows [begin, end): mr rows each, except that a short remainder is
// merged with the last full tile into two balanced ones (14 + 2 rows become 8 + 8). A tile of a
// few rows streams the same B micro-panels from L2 as a full one for a fraction of the FMAs
// (BERT's 128 tokens: the 2-row tile took 3% of the time for 1.6% of the work). Tile t sits in
// packed-A panel t; a tile's index is also ceil((start - begin) / mr), which the checks use.
struct RowTiles {
  static constexpr int64_t kMergeBelow = 7;  // remainders of up to 6 rows are merged
  int64_t begin, end, mr, count = 0, pair_first_rows = 0, second_start = -1;
  RowTiles(int64_t b, int64_t e, int64_t tile_rows) : begin(b), end(e), mr(tile_rows) {
    const int64_t rows = end - begin, full = rows / mr, tail = rows % mr;
    count = full + (tail > 0 ? 1 : 0);
    if (tail > 0 && tail < kMergeBelow && full >= 1) {
      pair_first_rows = (mr + tail + 1) / 2;
      second_start = begin + (full - 1) * mr + pair_first_rows;
    }
  }
  int64_t start(int64_t t) const { return t == count - 1 && second_start >= 0 ? second_start : begin + t * mr; }
  int64_t rows(int64_t t) const {
    if (second_start >= 0 && t == count - 2) return pair_first_rows;
    return std::min(mr, end - start(t));
  }
};

// Packs the rows of `tiles` x columns [k0, k0 + depth) of A into mr-row micro-panels at `out`,
// tile t at out + t * mr * depth (the balanced pair's second tile in a panel of its own).
void pack_a_block(const GemmProblem& p, const GemmKernel& kernel, const RowTiles& tiles, int64_t k0, int64_t depth,
                  float* out) {
  auto pack_rows = [&](int64_t from, int64_t to, float* panel) {
    const float* origin = p.trans_a ? p.A + k0 * p.lda + from : p.A + from * p.lda + k0;
    kernel.pack_a(origin, p.lda, p.trans_a, to - from, depth, p.alpha, panel);
  };
  if (tiles.second_start < 0) {
    pack_rows(tiles.begin, tiles.end, out);
  } else {
    pack_rows(tiles.begin, tiles.second_start, out);
    pack_rows(tiles.second_start, tiles.end, out + (tiles.count - 1) * tiles.mr * depth);
  }
}

// Rows of A per block (mc): blocks of up to kBlockMTiles register tiles, evened out so that the
// last one is not a sliver.
int64_t rows_per_a_block(int64_t rows, int64_t mr) {
  const int64_t m_tiles = (rows + mr - 1) / mr;
  const int64_t m_blocks = (m_tiles + kBlockMTiles - 1) / kBlockMTiles;
  return (m_tiles + m_blocks - 1) / m_blocks * mr;
}

// All of A packed once for every thread of a GEMM whose column chunks are shared out as the
// threads come free (run_column_chunks): each (K block, A block) is packed by the first thread
// that needs it while the others wait for it, so no thread packs A twice and none waits at a
// barrier for a slower one. Block (k0, mb) sits at buffer + k0 * padded_rows + mb * depth, in
// run_range's layout.
class SharedPackedA {
 public:
  SharedPackedA(const GemmProblem& p, const GemmKernel& kernel, int64_t kc)
      : p_(p), kernel_(kernel), kc_(kc), mc_(rows_per_a_block(p.M, kernel.mr)) {
    padded_rows_ = (p.M + kernel.mr - 1) / kernel.mr * kernel.mr;
    m_blocks_ = (p.M + mc_ - 1) / mc_;
    units_ = m_blocks_ * std::max<int64_t>(1, (p.K + kc - 1) / kc);
    states_ = std::make_unique<std::atomic<uint8_t>[]>(size_t(units_));
    for (int64_t u = 0; u < units_; ++u) states_[size_t(u)].store(kUnpacked, std::memory_order_relaxed);
    buffer_ = shared_a_scratch.get(size_t(std::max<int64_t>(1, padded_rows_ * p.K)));
  }

  // The packed block of K rows [k0, k0 + depth) and A rows [mb, mb + mc); k0 is a multiple of kc.
  const float* block(int64_t k0, int64_t depth, int64_t mb) {
    const int64_t unit = (k0 / kc_) * m_blocks_ + mb / mc_;
    std::atomic<uint8_t>& state = states_[size_t(unit)];
    if (state.load(std::memory_order_acquire) != kPacked && !try_pack(unit)) {
      // Another thread is packing it: pack the blocks needed after it meanwhile (all threads
      // start on the first one together, so waiting there would leave the packing serial).
      for (int64_t later = unit + 1; later < units_ && state.load(std::memory_order_acquire) != kPacked; ++later)
        try_pack(later);
      while (state.load(std::memory_order_acquire) != kPacked) TESSERA_CPU_RELAX();
    }
    return buffer_ + k0 * padded_rows_ + mb * depth;
  }

 private:
  // Packs work unit `unit` (K block major, then A block) unless a thread already took it.
  bool try_pack(int64_t unit) {
    std::atomic<uint8_t>& state = states_[size_t(unit)];
    uint8_t expected = kUnpacked;
    if (!state.compare_exchange_strong(expected, kPacking, std::memory_order_acq_rel)) return false;
    const int64_t k0 = unit / m_blocks_ * kc_, depth = std::min(kc_, p_.K - k0), mb = unit % m_blocks_ * mc_;
    pack_a_block(p_, kernel_, RowTiles(mb, std::min(p_.M, mb + mc_), kernel_.mr), k0, depth,
                 buffer_ + k0 * padded_rows_ + mb * depth);
    state.store(kPacked, std::memory_order_release);
    return true;
  }

  static constexpr uint8_t kUnpacked = 0, kPacking = 1, kPacked = 2;
  // The calling thread's, so that repeated GEMMs reuse it.
  static thread_local ScratchBuffer shared_a_scratch;
  const GemmProblem& p_;
  const GemmKernel& kernel_;
  int64_t kc_, mc_, padded_rows_ = 0, m_blocks_ = 0, units_ = 0;
  std::unique_ptr<std::atomic<uint8_t>[]> states_;
  float* buffer_ = nullptr;
};
thread_local ScratchBuffer SharedPackedA::shared_a_scratch;

// The per-call fields of a tile call that stay fixed over a range: A from `*a_pointer` (packed
// micro-panels or rows lda apart), B from `*b_pointer` (packed panels, or rows ldb apart in place).
GemmTileArgs range_tile_args(const GemmProblem& p, bool pack_a, bool b_in_place, const float** a_pointer,
                             const float** b_pointer) {
  GemmTileArgs args;
  args.a_packed = pack_a;
  args.a_row_stride = p.lda;
  args.a_batch = a_pointer;
  args.b_batch = b_pointer;
  args.b_padded = !b_in_place;
  args.b_row_stride = b_in_place ? p.ldb : kPanelWidth;
  args.ldc = p.ldc;
  return args;
}

// Plan-time B with at most kBStationaryMaxRowTiles row tiles: column tile by column tile, each
// over all of K, every row tile meeting a K block of the tile's two B panels while it is in L1.
// The weights are then read panel after panel from start to end, a pattern the hardware
// prefetchers follow from DRAM, where run_range's K-block-major order jumps a whole panel (K x 64
// bytes) every 16 KiB. A is packed whole first (or comes from `shared_a`). The K blocks, the
// beta of each and the epilogue on the last are run_range's, so the sums are bitwise the same.
void run_range_column_tiles(const GemmProblem& p, const GemmKernel& kernel, int64_t m_begin, int64_t m_end,
                            int64_t n_begin, int64_t n_end, int64_t kc, SharedPackedA* shared_a,
                            int64_t next_n_begin, int64_t next_n_end) {
  const int64_t mr = kernel.mr, nr = kernel.nr;
  const RowTiles tiles(m_begin, m_end, mr);
  const bool pack_a = shared_a || should_pack_a(p, mr, (n_end - n_begin + nr - 1) / nr);
  // K block k0 of the packed A at packed_a + k0 * panel_rows, tile t at + t * mr * depth (the
  // layout of SharedPackedA's blocks).
  const int64_t panel_rows = tiles.count * mr;
  float* own_packed_a = nullptr;
  if (pack_a && !shared_a) {
    own_packed_a = packed_a_scratch.get(size_t(std::max<int64_t>(1, panel_rows * p.K)));
    for (int64_t k0 = 0; k0 < p.K; k0 += kc)
      pack_a_block(p, kernel, tiles, k0, std::min(kc, p.K - k0), own_packed_a + k0 * panel_rows);
  }
  const float* a_pointer = nullptr;
  const float* b_pointer = nullptr;
  GemmTileArgs args = range_tile_args(p, pack_a, /*b_in_place=*/false, &a_pointer, &b_pointer);
  const int64_t panel_stride = p.packed_b->panel_stride();
  args.b_vector_offset = kernel.vector_floats == kPanelWidth ? panel_stride : kernel.vector_floats;
  PackedBPrefetch prefetch;
  // K blocks per sweep over the columns (see kBStationaryASlabBytes); products of a few row
  // tiles sweep all of K at once (49 x 512 x 4608 ran 3% slower in slabs). Every element still
  // sums its K blocks in order, so the result does not depend on the slab depth.
  const int64_t slab_blocks =
      tiles.count <= kBStationaryMaxRowTiles
          ? (p.K + kc - 1) / kc
          : kBStationaryASlabBytes / std::max<int64_t>(1, panel_rows * kc * int64_t(sizeof(float)));
  const int64_t slab_depth = std::max<int64_t>(1, slab_blocks) * kc;
  for (int64_t slab0 = 0; slab0 == 0 || slab0 < p.K; slab0 += slab_depth) {
    const int64_t slab_end = std::min(p.K, slab0 + slab_depth);
    for (int64_t n0 = n_begin; n0 < n_end; n0 += nr) {
      const int64_t n1 = std::min(n_end, n0 + nr);
      args.cols = int(n1 - n0);
      args.col0 = n0;
      int64_t k0 = slab0;
      do {  // at least once: K == 0 still stores beta * C plus the epilogue
        const int64_t depth = std::min(kc, p.K - k0);
        const bool last_k_block = k0 + depth >= p.K;
        args.k = depth;
        args.beta = k0 == 0 ? p.beta : 1.f;
        args.epilogue = last_k_block ? p.epilogue : nullptr;
        // The next block of weights in this order: the next K block of these panels in the slab,
        // else the slab's first of the next column tile, else the next slab's first of this
        // range, else the first of the next chunk this thread takes. Each tile call is handed at
        // most the rest of one panel, so with fewer row tiles than the block has panels (1 tile,
        // 2 panels) or a share that straddles a panel (3 tiles) part of the block is left to the
        // hardware prefetchers.
        if (k0 + depth < slab_end)
          prefetch.start(*p.packed_b, k0 + depth, std::min(kc, p.K - k0 - depth), n0, n1, tiles.count);
        else if (n1 < n_end)
          prefetch.start(*p.packed_b, slab0, std::min(kc, p.K - slab0), n1, std::min(n_end, n1 + nr),
                         tiles.count);
        else if (!last_k_block)
          prefetch.start(*p.packed_b, slab_end, std::min(kc, p.K - slab_end), n_begin,
                         std::min(n_end, n_begin + nr), tiles.count);
        else if (next_n_end > next_n_begin)
          prefetch.start(*p.packed_b, 0, std::min(kc, p.K), next_n_begin,
                         std::min(next_n_end, next_n_begin + nr), tiles.count);
        else
          prefetch.start(*p.packed_b, 0, 0, 0, 0, 1);
        b_pointer =
            p.packed_b->panel(0) + k0 * kPanelWidth + (n0 / kPanelWidth) * panel_stride + n0 % kPanelWidth;
        const float* packed_block = nullptr;
        if (depth > 0 && pack_a)
          packed_block = shared_a ? shared_a->block(k0, depth, m_begin) : own_packed_a + k0 * panel_rows;
        for (int64_t tile = 0; tile < tiles.count; ++tile) {
          const int64_t m0 = tiles.start(tile);
          args.rows = int(tiles.rows(tile));
          args.row0 = m0;
          a_pointer = pack_a ? packed_block + tile * mr * depth : p.A + m0 * p.lda + k0;
          args.c = p.C + m0 * p.ldc + n0;
          if (kernel.prefetches_b)
            prefetch.hand_to(args);
          else
            prefetch.step();
          kernel.tile(args);
        }
        k0 += depth;
      } while (k0 < slab_end);
    }
  }
}

// One thread's share of C: rows [m_begin, m_end) x columns [n_begin, n_end), computed with
// cache blocking over N (when B is packed now), K, M (A blocks of up to kBlockMTiles tiles) and N.
// With `shared_a`, A blocks come from it (packed once for all threads) instead of this thread's
// own scratch; the range must then cover every row. Columns [next_n_begin, next_n_end) of
// plan-time B are the ones this thread does next: their first block is prefetched at the end.
void run_range(const GemmProblem& p, const GemmKernel& kernel, int64_t m_begin, int64_t m_end,
               int64_t n_begin, int64_t n_end, int64_t kc, SharedPackedA* shared_a = nullptr,
               int64_t next_n_begin = 0, int64_t next_n_end = 0) {
  if (m_begin >= m_end || n_begin >= n_end) return;
  const int64_t mr = kernel.mr, nr = kernel.nr;
  if (p.packed_b && !p.check && runs_b_stationary((m_end - m_begin + mr - 1) / mr, kc)) {
    run_range_column_tiles(p, kernel, m_begin, m_end, n_begin, n_end, kc, shared_a, next_n_begin, next_n_end);
    return;
  }
  // B packed at run time is packed one block of kc x nc at a time, just before its use, so the
  // copy is read back from L2: packing the whole range first (megabytes for a 1x1 convolution
  // over a 56x56 image) sent it out to L3 and back, which cost as much as the FMAs.
  // Run-time B is read where it lies when at most kInPlaceBMaxRowTiles register tiles of rows
  // use each of its panels (a convolution with few output channels: MobileNetV2's 32 -> 16 at
  // 112x112 packed 1.6 MB of activations to read them twice, 269 us against 146 in place); the
  // checks need packed blocks.
  const bool b_in_place = !p.packed_b && !p.trans_b && !p.check &&
                          (p.M + mr - 1) / mr <= kInPlaceBMaxRowTiles;
  const bool pack_b_now = !p.packed_b && !b_in_place;
  const int64_t nc = pack_b_now ? std::max(nr, kPackedBBlockFloats / std::max<int64_t>(1, kc) / nr * nr)
                                : n_end - n_begin;
  float* b_buffer = nullptr;
  if (pack_b_now) {
    const int64_t panels = (std::min(nc, n_end - n_begin) + kPanelWidth - 1) / kPanelWidth;
    b_buffer = packed_b_scratch.get(size_t(std::max<int64_t>(1, panels * kc * kPanelWidth)));
  }

  const int64_t m_tiles = (m_end - m_begin + mr - 1) / mr;
  const int64_t mc = rows_per_a_block(m_end - m_begin, mr);
  // The thread-level check reads k-slices of packed A micro-panels.
  const bool pack_a = shared_a || (p.check && p.check->scheme == GemmCheckScheme::thread) ||
                      should_pack_a(p, mr, (n_end - n_begin + nr - 1) / nr);
  float* own_packed_a = pack_a && !shared_a ? packed_a_scratch.get(size_t(mc * kc)) : nullptr;
  const float* packed_a = own_packed_a;

  const float* a_pointer = nullptr;
  const float* b_pointer = nullptr;
  GemmTileArgs args = range_tile_args(p, pack_a, b_in_place, &a_pointer, &b_pointer);

  std::optional<RangeCheck> check;
  if (p.check) check.emplace(p, kernel, m_begin, m_end, n_begin, n_end);
  PackedBPrefetch prefetch;

  for (int64_t nc0 = n_begin; nc0 < n_end; nc0 += nc) {
    const int64_t nc_end = std::min(n_end, nc0 + nc);
    if (check) check->begin_column_block(m_tiles, (nc_end - nc0 + nr - 1) / nr);
    int64_t k0 = 0;
    do {  // at least once: K == 0 still stores beta * C plus the epilogue
      const int64_t depth = std::min(kc, p.K - k0);
      // The B block for columns [nc0, nc_end) and rows [k0, k0 + depth): panel j starts at
      // b_block + j * panel_stride, with its column 0 at b_origin + j * kPanelWidth.
      const float* b_block;
      int64_t panel_stride, b_origin;
      if (b_in_place) {
        panel_stride = 0;  // unused: the tile's B starts at its own column of the row
        b_block = p.raw_b + k0 * p.ldb;
        b_origin = 0;
      } else if (pack_b_now) {
        panel_stride = pack_b_block(p, k0, depth, nc0, nc_end - nc0, b_buffer);
        b_block = b_buffer;
        b_origin = nc0;
      } else {
        panel_stride = p.packed_b->panel_stride();
        b_block = p.packed_b->panel(0) + k0 * kPanelWidth;
        b_origin = 0;
      }
      // Vector v of a tile lies in the next panel when a vector is a whole panel, else beside it
      // (and always beside it in a row of B read in place).
      args.b_vector_offset =
          kernel.vector_floats == kPanelWidth && !b_in_place ? panel_stride : kernel.vector_floats;
      args.k = depth;
      args.beta = k0 == 0 ? p.beta : 1.f;
      const bool last_k_block = k0 + depth >= p.K;
      // Checked: the kernel stores the raw product and RangeCheck::finish_tile applies the
      // epilogue, unless the kernel makes the global sums itself.
      args.epilogue = last_k_block && (!check || check->fused_sums) ? p.epilogue : nullptr;
      if (check) check->add_b_block(b_block, panel_stride, b_origin, k0, depth, nc0, nc_end);
      for (int64_t mb = m_begin; mb < m_end; mb += mc) {
        const int64_t mb_end = std::min(m_end, mb + mc);
        const RowTiles tiles(mb, mb_end, mr);
        const bool b_stationary = !check && tiles.count <= kBStationaryMaxRowTiles;
        if (depth > 0 && pack_a) {
          if (shared_a)
            packed_a = shared_a->block(k0, depth, mb);
          else
            pack_a_block(p, kernel, tiles, k0, depth, own_packed_a);
        }
        // For each block of kNBlockTiles * nr columns, each A micro-panel (from L1) meets the
        // B micro-panels of the block in turn (from L2).
        for (int64_t nb = nc0; nb < nc_end; nb += kNBlockTiles * nr) {
          const int64_t nb_end = std::min(nc_end, nb + kNBlockTiles * nr);
          // The next B block in traversal order: the next columns, or the next K block's first
          // ones after the last M block's last columns.
          if (p.packed_b) {
            const int64_t calls = ((mb_end - mb + mr - 1) / mr) * ((nb_end - nb + nr - 1) / nr);
            if (nb_end < nc_end)
              prefetch.start(*p.packed_b, k0, depth, nb_end, std::min(nc_end, nb_end + kNBlockTiles * nr), calls);
            else if (mb_end >= m_end && k0 + depth < p.K)
              prefetch.start(*p.packed_b, k0 + depth, std::min(kc, p.K - k0 - depth), nc0,
                             std::min(nc_end, nc0 + kNBlockTiles * nr), calls);
            else if (mb_end >= m_end && next_n_end > next_n_begin)
              prefetch.start(*p.packed_b, 0, std::min(kc, p.K), next_n_begin,
                             std::min(next_n_end, next_n_begin + kNBlockTiles * nr), calls);
            else
              prefetch.start(*p.packed_b, 0, 0, 0, 0, 1);
          }
          auto run_tile = [&](int64_t tile, int64_t n0) {
            const int64_t m0 = tiles.start(tile);
            args.rows = int(tiles.rows(tile));
            args.row0 = m0;
            a_pointer = pack_a ? packed_a + tile * mr * depth : p.A + m0 * p.lda + k0;
            args.cols = int(std::min(nr, nc_end - n0));
            args.col0 = n0;
            const int64_t local = n0 - b_origin;
            b_pointer = b_in_place ? b_block + n0
                                   : b_block + (local / kPanelWidth) * panel_stride + local % kPanelWidth;
            args.c = p.C + m0 * p.ldc + n0;
            if (p.packed_b) {
              if (kernel.prefetches_b)
                prefetch.hand_to(args);
              else
                prefetch.step();
            }
            if (!check) {
              kernel.tile(args);
              return;
            }
            if (k0 == 0 && p.beta != 0.f) check->add_old_c(args, nc0);
            check->prepare_tile(args, nc0, last_k_block);
            kernel.tile(args);
            check->after_tile_call(args, a_pointer, nc0);
            if (last_k_block) check->finish_tile(args, nc0);
          };
          if (b_stationary) {
            for (int64_t n0 = nb; n0 < nb_end; n0 += nr)
              for (int64_t tile = 0; tile < tiles.count; ++tile) run_tile(tile, n0);
          } else {
            for (int64_t tile = 0; tile < tiles.count; ++tile)
              for (int64_t n0 = nb; n0 < nb_end; n0 += nr) run_tile(tile, n0);
          }
        }
      }
      k0 += depth;
    } while (k0 < p.K);
  }
  if (check) check->finish_range();
}

// Tiles of at least this many rows sum every element in one chain in k order (shorter ones with
// a single vector of columns sum even and odd k apart, see the kernels' accumulate), so which
// such tile a row falls in does not change its bits.
constexpr int64_t kMinOneChainRows = 8;

int64_t shortest_tile_rows(int64_t begin, int64_t end, int64_t mr) {
  const RowTiles tiles(begin, end, mr);
  int64_t shortest = mr;
  for (int64_t t = 0; t < tiles.count; ++t) shortest = std::min(shortest, tiles.rows(t));
  return shortest;
}

// Whether M rows may be split as M * i / threads: every tile of every range, and of the one-thread
// tiling, sums in one chain, so the products are bitwise those of any other thread count.
bool splits_rows_evenly(int64_t M, int threads, int64_t mr) {
  if (shortest_tile_rows(0, M, mr) < kMinOneChainRows) return false;
  for (int i = 0; i < threads; ++i)
    if (shortest_tile_rows(M * i / threads, M * (i + 1) / threads, mr) < kMinOneChainRows) return false;
  return true;
}

// How run_column_chunks cuts n_tiles column tiles for `threads` threads: head chunks of
// chunk_tiles, then the last tail_tiles in chunks of tail_chunk_tiles.
struct ColumnChunks {
  int64_t chunk_tiles, tail_chunk_tiles, tail_tiles, head_chunks, chunks;

  ColumnChunks(int64_t n_tiles, int threads) {
    chunk_tiles = std::clamp<int64_t>((n_tiles + kChunksPerThread * threads - 1) / (kChunksPerThread * threads), 1,
                                      2 * kNBlockTiles);
    // The last 2 x threads chunks are half as wide, so that the thread that finds no chunk left
    // waits for less of one (at 2 threads the idle tail went from about 3.5% of a BERT-base
    // product's time to 2.5%).
    tail_chunk_tiles = std::max<int64_t>(1, chunk_tiles / 2);
    tail_tiles = tail_chunk_tiles < chunk_tiles ? std::min(n_tiles, 2 * threads * tail_chunk_tiles) : 0;
    head_chunks = (n_tiles - tail_tiles + chunk_tiles - 1) / chunk_tiles;
    chunks = head_chunks + (tail_tiles + tail_chunk_tiles - 1) / tail_chunk_tiles;
  }
  // The first column of chunk `chunk` (N past the last), tiles of nr columns.
  int64_t first_column(int64_t chunk, int64_t n_tiles, int64_t nr, int64_t N) const {
    const int64_t tile = chunk <= head_chunks ? std::min(chunk * chunk_tiles, n_tiles - tail_tiles)
                                              : n_tiles - tail_tiles + (chunk - head_chunks) * tail_chunk_tiles;
    return std::min(N, tile * nr);
  }
};

// A column split with plan-time B, shared out dynamically: the columns go in chunks of a few
// register tiles (about eight per thread) that each thread claims as it comes free, with A packed
// once for all (SharedPackedA). A fixed half each made the faster core wait for the slower one
// whenever another process took part of a core (BERT-base at 2 threads: 0.77x ONNX Runtime's
// time with both cores free, 1.28x when the host took one); chunks also start the caller on
// work before a sleeping worker has woken up.
void run_column_chunks(const GemmProblem& p, const GemmKernel& kernel, int64_t kc, int threads, ThreadPool& pool) {
  const int64_t nr = kernel.nr, n_tiles = (p.N + nr - 1) / nr;
  const ColumnChunks cut(n_tiles, threads);
  const int64_t chunks = cut.chunks;
  // As the fixed split would decide for a thread's half of the columns.
  std::optional<SharedPackedA> shared_a;
  if (should_pack_a(p, kernel.mr, n_tiles / threads)) shared_a.emplace(p, kernel, kc);
  std::atomic<int64_t> next_chunk{0};
  auto first_column = [&](int64_t chunk) { return cut.first_column(chunk, n_tiles, nr, p.N); };
  pool.run_tasks(threads, [&](int) {
    // Each thread claims its next chunk before it starts the current one, so that it can
    // prefetch that chunk's weights while it finishes this one.
    int64_t chunk = next_chunk.fetch_add(1, std::memory_order_relaxed);
    while (chunk < chunks) {
      const int64_t next = next_chunk.fetch_add(1, std::memory_order_relaxed);
      run_range(p, kernel, 0, p.M, first_column(chunk), first_column(chunk + 1), kc, shared_a ? &*shared_a : nullptr,
                first_column(next), first_column(next + 1));
      chunk = next;
    }
  });
}

// Splits C over the threads as a grid of tm row ranges x tn column ranges (tm * tn = threads),
// in whole register tiles, picking the grid whose busiest thread has the least work: tiles x
// (K + store cost), plus packing its B columns when B is packed at run time. With 2 threads
// a 64-row output split by rows gives 3 and 2 tiles (60/40), by columns 50/50; and splitting
// columns lets each thread pack only its own part of B.
void run_gemm(const GemmProblem& p, ThreadPool* pool) {
  if (p.M <= 0 || p.N <= 0) return;
  if (p.check && !p.check->counters) throw std::invalid_argument("gemm: a GemmCheck needs counters");
  const GemmKernel& kernel = detail::gemm_kernel(active_isa());
  if (kPanelWidth % kernel.vector_floats != 0 ||
      (kernel.nr > kPanelWidth && kernel.vector_floats != kPanelWidth) ||
      (p.packed_b && p.packed_b->panel_width() != kPanelWidth)) {
    throw std::invalid_argument("gemm: PackedB panel width does not fit the active kernel");
  }
  const int64_t mr = kernel.mr, nr = kernel.nr;
  const int64_t m_tiles = (p.M + mr - 1) / mr, n_tiles = (p.N + nr - 1) / nr;
  // Even K blocks, so the last one is not a sliver. The block depth depends on the shape only,
  // never on the threads, so every thread count sums in the same order.
  const int64_t max_kc =
      runs_b_stationary(m_tiles, kMaxBlockKBStationary) ? kMaxBlockKBStationary : kMaxBlockK;
  const int64_t k_blocks = std::max<int64_t>(1, (p.K + max_kc - 1) / max_kc);
  const int64_t kc = std::max<int64_t>(1, (p.K + k_blocks - 1) / k_blocks);

  int threads = pool ? pool->size() : 1;
  // Tiny products finish before a sleeping worker would wake up.
  if (2.0 * double(p.M) * double(p.N) * double(p.K) < kMinParallelFlops || m_tiles * n_tiles < 2) threads = 1;
  if (threads <= 1) {
    run_range(p, kernel, 0, p.M, 0, p.N, kc);
    return;
  }
  // Work units: one k step of a register tile; a tile's store costs about kStoreSteps of them and
  // packing one nr-wide column strip of B about kPackStepsPerK per k.
  constexpr double kStoreSteps = 4.0, kPackStepsPerK = 0.7;
  int best_tm = threads;
  double best_cost = 0;
  for (int tm = 1; tm <= threads; ++tm) {
    if (threads % tm != 0) continue;
    const int tn = threads / tm;
    const double rows = double((m_tiles + tm - 1) / tm), cols = double((n_tiles + tn - 1) / tn);
    double cost = rows * cols * (double(p.K) + kStoreSteps);
    if (!p.packed_b) cost += cols * double(p.K) * kPackStepsPerK;
    if (best_cost == 0 || cost < best_cost * 0.999) {  // ties go to the column split (fewer tm)
      best_cost = cost;
      best_tm = tm;
    }
  }
  // Dynamic chunks need A packed whole (SharedPackedA); past kMaxSharedPackedAFloats (tall
  // products, where a row split is as good) the fixed split with per-thread A blocks stays.
  const int64_t shared_a_floats = m_tiles * mr * p.K;
  bool even_rows = false;  // rows split M * i / threads instead of by whole tiles
  if (best_tm == 1 && p.packed_b && !p.check && n_tiles >= 2 * int64_t(threads) &&
      shared_a_floats <= kMaxSharedPackedAFloats) {
    // Each column chunk reads all of A again, a row split reads all of B (the weights) on every
    // thread: per thread, in rows of depth K, the chunks read chunks / threads x M + N / threads
    // and a row split M / threads + N. The row split's weight reads overlap in the shared L3.
    // The rows must split evenly: by whole register tiles BERT's 128 rows split 70 / 58, and the
    // thread left idle for a sixth of the product fell asleep, so the operator after it waited
    // for the wake-up (its LayerNorm took 0.09 ms for 0.03). Hence an even split where it keeps
    // every sum (splits_rows_evenly), else whole tiles with many tiles a thread, else the chunks,
    // which balance themselves. GPT-2 124M's prefill of 512 tokens at 2 threads: 379-391 ->
    // 356-357 ms (gemm_bench ColdB, weights from DRAM: 512 x 768 x 768 255 -> 305 GFLOP/s,
    // 512 x 768 x 3072 259 -> 288). The price is the chunks' balance when another process takes
    // part of a core: under a spinner pinned to core 1 the prefill took 695-713 ms against
    // 668-684. Ranges that shared out their columns in chunks were 3-5% slower on a free machine
    // (each chunk re-packs its rows of A, or reads them from a whole-range packed copy in L3).
    const double chunk_reads =
        double(ColumnChunks(n_tiles, threads).chunks) / threads * double(p.M) + double(p.N) / threads;
    const double row_split_reads = double(p.M) / threads + double(p.N);
    even_rows = splits_rows_evenly(p.M, threads, mr);
    if ((even_rows || m_tiles >= kRowSplitMinTilesPerThread * threads) && row_split_reads < chunk_reads) {
      best_tm = threads;
    } else {
      run_column_chunks(p, kernel, kc, threads, *pool);
      return;
    }
  }
  const int tm = best_tm, tn = threads / best_tm;
  // Task t on thread t: consecutive operators that split pixels the same way (a MobileNetV2
  // block's 1x1 convolutions and the depthwise one between them, see run_depthwise) then read
  // what the same core wrote.
  auto task_range = [&](int task) {
    const int64_t i = task / tn, j = task % tn;
    const int64_t m_begin = even_rows ? p.M * i / tm : std::min(p.M, i * m_tiles / tm * mr);
    const int64_t m_end = even_rows ? p.M * (i + 1) / tm : std::min(p.M, (i + 1) * m_tiles / tm * mr);
    const int64_t n_begin = std::min(p.N, j * n_tiles / tn * nr);
    const int64_t n_end = std::min(p.N, (j + 1) * n_tiles / tn * nr);
    run_range(p, kernel, m_begin, m_end, n_begin, n_end, kc);
  };
  if (threads == pool->size())
    pool->run_pinned(task_range);
  else
    pool->run_tasks(threads, task_range);
}

// An epilogue that does nothing is dropped so kernels skip the per-store checks.
const GemmEpilogue* effective_epilogue(const GemmEpilogue* e) {
  if (!e) return nullptr;
  if (!e->bias_per_column && !e->bias_per_row && !e->residual && e->activation.kind == UnaryKind::identity) {
    return nullptr;
  }
  return e;
}

}  // namespace

PackedB::PackedB(int64_t K, int64_t N, const float* B, int64_t ldb, bool transposed)
    : K_(K), N_(N), panel_width_(kPanelWidth) {
  if (K < 0 || N < 0) throw std::invalid_argument("PackedB: negative dimension");
  panel_stride_ = K * panel_width_;
  const int64_t panels = panel_count();
  data_ = allocate_floats(size_t(std::max<int64_t>(panels, 1) * std::max<int64_t>(panel_stride_, 1)));
  float* out = data_.get();
  for (int64_t panel = 0; panel < panels; ++panel) {
    const int64_t n0 = panel * panel_width_;
    const int64_t width = std::min(panel_width_, N - n0);
    float* dst = out + panel * panel_stride_;
    if (!transposed) {
      for (int64_t k = 0; k < K; ++k) {
        std::memcpy(dst + k * panel_width_, B + k * ldb + n0, size_t(width) * sizeof(float));
      }
    } else {
      // B^T is N x K: column n of B is row n of the given matrix.
      for (int64_t j = 0; j < width; ++j) {
        const float* src = B + (n0 + j) * ldb;
        for (int64_t k = 0; k < K; ++k) dst[k * panel_width_ + j] = src[k];
      }
    }
    // Columns past N stay zero (allocate_floats clears), so kernels may read whole panels.
  }
  row_sums_ = std::make_shared<RowSums>();
}

const PackedB::RowSums& PackedB::row_sums() const {
  if (!row_sums_) throw std::invalid_argument("PackedB: not packed");
  std::call_once(row_sums_->once, [&] {
    const int64_t panels = panel_count();
    row_sums_->sum.assign(size_t(std::max<int64_t>(1, panels * K_)), 0.f);
    row_sums_->abs_sum.assign(size_t(std::max<int64_t>(1, panels * K_)), 0.f);
    detail::gemm_kernel(active_isa()).panel_row_sums(data_.get(), panels, panel_stride_, K_,
                                                      row_sums_->sum.data(), row_sums_->abs_sum.data());
    row_sums_->pair_sum.assign(size_t(std::max<int64_t>(1, (panels + 1) / 2 * K_)), 0.f);
    for (int64_t panel = 0; panel < panels; ++panel)
      for (int64_t k = 0; k < K_; ++k) row_sums_->pair_sum[size_t((panel / 2) * K_ + k)] += row_sums_->sum[size_t(panel * K_ + k)];
    row_sums_->total.assign(size_t(std::max<int64_t>(1, K_)), 0.f);
    row_sums_->abs_total.assign(size_t(std::max<int64_t>(1, K_)), 0.f);
    for (int64_t panel = 0; panel < panels; ++panel)
      for (int64_t k = 0; k < K_; ++k) {
        row_sums_->total[size_t(k)] += row_sums_->sum[size_t(panel * K_ + k)];
        row_sums_->abs_total[size_t(k)] += row_sums_->abs_sum[size_t(panel * K_ + k)];
      }
  });
  return *row_sums_;
}
const float* PackedB::panel_row_sums() const { return row_sums().sum.data(); }
const float* PackedB::panel_row_abs_sums() const { return row_sums().abs_sum.data(); }
const float* PackedB::row_sums_all() const { return row_sums().total.data(); }
const float* PackedB::tile_row_sums(int width) const {
  if (width == panel_width_) return row_sums().sum.data();
  if (width == 2 * panel_width_) return row_sums().pair_sum.data();
  throw std::invalid_argument("PackedB::tile_row_sums: tiles of one or two panels only");
}
const float* PackedB::row_abs_sums_all() const { return row_sums().abs_total.data(); }

void gemm_packed_f32(int64_t M, const float* A, int64_t lda, const PackedB& B, float* C, int64_t ldc,
                     const GemmEpilogue& epilogue, ThreadPool* pool, bool a_transposed) {
  if (B.empty()) throw std::invalid_argument("gemm_packed_f32: B was not packed");
  GemmProblem p;
  p.trans_a = a_transposed;
  p.M = M;
  p.N = B.N();
  p.K = B.K();
  p.A = A;
  p.lda = lda;
  p.packed_b = &B;
  p.C = C;
  p.ldc = ldc;
  p.check = epilogue.check;
  GemmEpilogue local = epilogue;
  // A residual that is C itself is just accumulation into C (and must not be read after the
  // first K block has overwritten C with partial sums).
  if (local.residual == C && local.ld_residual == ldc) {
    local.residual = nullptr;
    p.beta = 1.f;
  }
  p.epilogue = effective_epilogue(&local);
  run_gemm(p, pool);
}

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
              int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, ThreadPool* pool,
              const GemmEpilogue* epilogue) {
  if (M <= 0 || N <= 0) return;
  // alpha == 0 means op(A) * op(B) is not read at all (BLAS convention: NaNs in A do not leak).
  const int64_t depth = alpha == 0.f ? 0 : std::max<int64_t>(K, 0);
  GemmProblem p;
  p.M = M;
  p.N = N;
  p.K = depth;
  p.A = A;
  p.lda = lda;
  p.trans_a = trans_a;
  p.alpha = alpha;
  p.raw_b = B;
  p.ldb = ldb;
  p.trans_b = trans_b;
  p.C = C;
  p.ldc = ldc;
  p.beta = beta;
  GemmEpilogue local;
  if (epilogue) {
    p.check = epilogue->check;
    p.check_a_column_sums = epilogue->check_a_column_sums;
    p.check_a_column_abs_sums = epilogue->check_a_column_abs_sums;
    local = *epilogue;
    if (local.residual == C && local.ld_residual == ldc) {
      local.residual = nullptr;
      p.beta += 1.f;
    }
  }
  p.epilogue = effective_epilogue(epilogue ? &local : nullptr);
  run_gemm(p, pool);
}

void brgemm_f32(int64_t M, int64_t N, int64_t K, int64_t batch, const float* const* A, int64_t lda,
                const float* const* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  const GemmKernel& kernel = detail::gemm_kernel(active_isa());
  GemmTileArgs args;
  args.k = std::max<int64_t>(K, 0);
  args.batch = std::max<int64_t>(batch, 0);
  // A and B are read in place: row-major A rows are broadcast from, B rows loaded with masks
  // at the right edge, so nothing outside the caller's matrices is touched.
  args.a_packed = false;
  args.a_batch = A;
  args.a_row_stride = lda;
  args.b_padded = false;
  args.b_batch = B;
  args.b_row_stride = ldb;
  args.b_vector_offset = kernel.vector_floats;
  args.ldc = ldc;
  args.beta = accumulate ? 1.f : 0.f;
  // N outer, M inner: the K x nr strip of every B_b is reused by all row tiles while in cache.
  const RowTiles tiles(0, M, kernel.mr);
  for (int64_t n0 = 0; n0 < N; n0 += kernel.nr) {
    args.cols = int(std::min<int64_t>(kernel.nr, N - n0));
    args.b_offset = n0;
    args.col0 = n0;
    for (int64_t tile = 0; tile < tiles.count; ++tile) {
      const int64_t m0 = tiles.start(tile);
      args.rows = int(tiles.rows(tile));
      args.a_offset = m0 * lda;
      args.row0 = m0;
      args.c = C + m0 * ldc + n0;
      kernel.tile(args);
    }
  }
}

}  // namespace tessera::primitives
