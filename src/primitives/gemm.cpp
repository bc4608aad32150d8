// The GEMM drivers: B packing (PackedB), cache blocking over K/M/N, A packing per block, the
// thread-pool split and the batch-reduce loop. The microkernels themselves live in gemm_<isa>.cpp.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "primitives/kernels.h"

namespace tessera::primitives {

using detail::GemmKernel;
using detail::GemmTileArgs;

namespace {

// Every kernel reads B in 16-column panels: one zmm, two ymm or sixteen scalars, so a PackedB
// made while one ISA was active is still valid for another.
constexpr int64_t kPanelWidth = 16;
// Depth of one K block: the A micro-panel (mr x kc) and the B micro-panel (kc x nr) a kernel
// call reads should stay in L1 (48 KiB here) while the rest of the A block sits in L2.
static int64_t env_or(const char* name, int64_t fallback) { const char* v = std::getenv(name); return v ? std::atoll(v) : fallback; }  // TUNING
static const int64_t kMaxBlockK = env_or("TK", 256);
// Rows of A packed per block, in register tiles; the A block (mc x kc) lives in L2.
static const int64_t kBlockMTiles = env_or("TM", 12);
static const int64_t kPackMinTiles = env_or("TP", 2);
static const int64_t kLoopOrder = env_or("TO", 0);

std::shared_ptr<float> allocate_floats(size_t count) {
  size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
  void* memory = std::aligned_alloc(64, bytes);
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
  const PackedB* B = nullptr;
  float* C = nullptr;
  int64_t ldc = 0;
  float beta = 0.f;
  const GemmEpilogue* epilogue = nullptr;
};

// Copies rows [m0, m0 + rows) x depth [k0, k0 + kc) of alpha * op(A) into micro-panels of mr
// rows, k-major: element (i, k) goes to out[(i / mr) * kc * mr + k * mr + i % mr].
void pack_a_block(const GemmProblem& p, int64_t mr, int64_t m0, int64_t rows, int64_t k0,
                  int64_t kc, float* out) {
  const float alpha = p.alpha;
  for (int64_t i0 = 0; i0 < rows; i0 += mr) {
    const int64_t height = std::min(mr, rows - i0);
    float* panel = out + (i0 / mr) * kc * mr;
    if (!p.trans_a) {
      for (int64_t r = 0; r < height; ++r) {
        const float* src = p.A + (m0 + i0 + r) * p.lda + k0;
        for (int64_t k = 0; k < kc; ++k) panel[k * mr + r] = alpha * src[k];
      }
    } else {
      // op(A) = A^T with A stored K x M: a row of the stored A is a k-slice of the panel.
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = p.A + (k0 + k) * p.lda + m0 + i0;
        for (int64_t r = 0; r < height; ++r) panel[k * mr + r] = alpha * src[r];
      }
    }
  }
}

void run_gemm(const GemmProblem& p, ThreadPool* pool) {
  if (p.M <= 0 || p.N <= 0) return;
  const GemmKernel& kernel = detail::gemm_kernel(active_isa());
  const PackedB& B = *p.B;
  if (B.panel_width() % kernel.vector_floats != 0 ||
      (kernel.nr > B.panel_width() && kernel.vector_floats != B.panel_width())) {
    throw std::invalid_argument("gemm: PackedB panel width does not fit the active kernel");
  }
  const int64_t mr = kernel.mr, nr = kernel.nr;
  // Vector v of a tile lies in the next panel when a vector is a whole panel, else beside it.
  const int64_t b_vector_offset =
      kernel.vector_floats == B.panel_width() ? B.panel_stride() : kernel.vector_floats;

  // Even K blocks, so the last one is not a sliver.
  const int64_t k_blocks = std::max<int64_t>(1, (p.K + kMaxBlockK - 1) / kMaxBlockK);
  const int64_t kc = std::max<int64_t>(1, (p.K + k_blocks - 1) / k_blocks);

  const int threads = pool ? pool->size() : 1;
  int64_t mc = mr * kBlockMTiles;
  const int64_t n_tiles = (p.N + nr - 1) / nr;
  int64_t n_splits = 1;
  if (threads > 1) {
    // Aim for a couple of tasks per thread; split M first (splitting N re-packs A per task).
    const int64_t wanted = 2 * int64_t(threads);
    if ((p.M + mc - 1) / mc < wanted) {
      const int64_t rows_per_task = (p.M + wanted - 1) / wanted;
      mc = std::max<int64_t>(mr, (rows_per_task + mr - 1) / mr * mr);
    }
    const int64_t m_blocks = (p.M + mc - 1) / mc;
    if (m_blocks < wanted) n_splits = std::min(n_tiles, (wanted + m_blocks - 1) / m_blocks);
  }
  const int64_t m_blocks = (p.M + mc - 1) / mc;

  auto run_task = [&](int64_t task) {
    const int64_t mb = task / n_splits, ns = task % n_splits;
    const int64_t m_begin = mb * mc, m_end = std::min(p.M, m_begin + mc);
    const int64_t n_begin = ns * n_tiles / n_splits * nr;
    const int64_t n_end = std::min(p.N, (ns + 1) * n_tiles / n_splits * nr);
    if (n_begin >= n_end) return;
    const int64_t rows = m_end - m_begin;
    float* packed_a = packed_a_scratch.get(size_t((rows + mr - 1) / mr * mr * kc));

    const float* a_pointer = nullptr;
    const float* b_pointer = nullptr;
    GemmTileArgs args;
    args.a_packed = true;
    args.a_batch = &a_pointer;
    args.b_batch = &b_pointer;
    args.b_padded = true;
    args.b_row_stride = B.panel_width();
    args.b_vector_offset = b_vector_offset;
    args.ldc = p.ldc;

    int64_t k0 = 0;
    do {  // at least once: K == 0 still stores beta * C plus the epilogue
      const int64_t depth = std::min(kc, p.K - k0);
      const bool pack = p.trans_a || p.alpha != 1.f || (n_end - n_begin) > kPackMinTiles * nr;
      if (depth > 0 && pack) pack_a_block(p, mr, m_begin, rows, k0, depth, packed_a);
      args.a_packed = pack;
      args.a_row_stride = p.lda;
      args.k = depth;
      args.beta = k0 == 0 ? p.beta : 1.f;
      args.epilogue = k0 + depth >= p.K ? p.epilogue : nullptr;
      auto run_tile = [&](int64_t m0, int64_t n0) {
        args.cols = int(std::min(nr, p.N - n0));
        args.col0 = n0;
        b_pointer = B.panel(n0 / B.panel_width()) + k0 * B.panel_width() + n0 % B.panel_width();
        args.rows = int(std::min(mr, m_end - m0));
        args.row0 = m0;
        a_pointer = pack ? packed_a + (m0 - m_begin) * depth : p.A + m0 * p.lda + k0;
        args.c = p.C + m0 * p.ldc + n0;
        kernel.tile(args);
      };
      if (kLoopOrder == 0) {
        for (int64_t n0 = n_begin; n0 < n_end; n0 += nr) {
          for (int64_t m0 = m_begin; m0 < m_end; m0 += mr) run_tile(m0, n0);
        }
      } else {
        const int64_t nc = kLoopOrder * nr;
        for (int64_t nb = n_begin; nb < n_end; nb += nc) {
          const int64_t nb_end = std::min(n_end, nb + nc);
          for (int64_t m0 = m_begin; m0 < m_end; m0 += mr) {
            for (int64_t n0 = nb; n0 < nb_end; n0 += nr) run_tile(m0, n0);
          }
        }
      }
      k0 += depth;
    } while (k0 < p.K);
  };

  const int64_t tasks = m_blocks * n_splits;
  if (threads > 1 && tasks > 1) {
    pool->parallel_for(tasks, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) run_task(t);
    });
  } else {
    for (int64_t t = 0; t < tasks; ++t) run_task(t);
  }
}

// An epilogue that does nothing is dropped so kernels skip the per-store checks.
const GemmEpilogue* effective_epilogue(const GemmEpilogue* e) {
  if (!e) return nullptr;
  if (!e->bias_per_column && !e->bias_per_row && !e->residual &&
      e->activation.kind == UnaryKind::identity) {
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
}

void gemm_packed_f32(int64_t M, const float* A, int64_t lda, const PackedB& B, float* C,
                     int64_t ldc, const GemmEpilogue& epilogue, ThreadPool* pool) {
  if (B.empty()) throw std::invalid_argument("gemm_packed_f32: B was not packed");
  GemmProblem p;
  p.M = M;
  p.N = B.N();
  p.K = B.K();
  p.A = A;
  p.lda = lda;
  p.B = &B;
  p.C = C;
  p.ldc = ldc;
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

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc, ThreadPool* pool, const GemmEpilogue* epilogue) {
  if (M <= 0 || N <= 0) return;
  // alpha == 0 means op(A) * op(B) is not read at all (BLAS convention: NaNs in A do not leak).
  const int64_t depth = alpha == 0.f ? 0 : std::max<int64_t>(K, 0);
  PackedB packed(depth, N, B, ldb, trans_b);
  GemmProblem p;
  p.M = M;
  p.N = N;
  p.K = depth;
  p.A = A;
  p.lda = lda;
  p.trans_a = trans_a;
  p.alpha = alpha;
  p.B = &packed;
  p.C = C;
  p.ldc = ldc;
  p.beta = beta;
  GemmEpilogue local;
  if (epilogue) {
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
  for (int64_t n0 = 0; n0 < N; n0 += kernel.nr) {
    args.cols = int(std::min<int64_t>(kernel.nr, N - n0));
    args.b_offset = n0;
    args.col0 = n0;
    for (int64_t m0 = 0; m0 < M; m0 += kernel.mr) {
      args.rows = int(std::min<int64_t>(kernel.mr, M - m0));
      args.a_offset = m0 * lda;
      args.row0 = m0;
      args.c = C + m0 * ldc + n0;
      kernel.tile(args);
    }
  }
}

}  // namespace tessera::primitives
