// The TPP-style primitive set: a small closed set of 2-D kernels (batch-reduce GEMM,
// unary, binary, reduction, transpose/pack) from which every operator is composed.
// Each has an AVX-512, an AVX2 and a portable path, chosen at run time from CPUID.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "tessera/thread_pool.h"

namespace tessera::primitives {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };
const char* isa_name(Isa isa);
// The best ISA this CPU supports (AVX2 needs FMA too; AVX-512 needs F, BW, DQ, VL).
Isa detected_isa();
// The ISA in use: detected_isa() unless lowered by set_isa() or TESSERA_ISA=scalar|avx2|avx512.
Isa active_isa();
// Forces an ISA (clamped to what the CPU supports); returns the one now active. For tests.
Isa set_isa(Isa isa);

// Extensions beyond the three ISA levels, for kernels that have a faster variant where present.
// Each is true only when the CPU has it, the OS saves the state it needs, and active_isa() is
// avx512 (so TESSERA_ISA=avx2 or scalar also turns them off). Files that use them end in
// _avx512vnni.cpp (VNNI) or _avx512popcnt.cpp (VPOPCNTDQ + BITALG) and are compiled with
// those flags.
struct CpuExtensions {
  bool avx512_vnni = false;       // VPDPBUSD: u8 x s8 dot products into int32
  bool avx512_vpopcntdq = false;  // VPOPCNTQ/D on 512-bit vectors
  bool avx512_bitalg = false;     // VPOPCNTB/W
  bool avx512_bf16 = false;       // VDPBF16PS
};
// What the CPU has (whatever the active ISA).
const CpuExtensions& detected_extensions();
// What may be used now: detected_extensions() masked off unless active_isa() == Isa::avx512.
CpuExtensions active_extensions();

// ---------------------------------------------------------------- unary
enum class UnaryKind {
  identity, relu, leaky_relu, elu, selu, sigmoid, tanh, exp, log, sqrt, erf, neg, abs, reciprocal,
  clip, hard_sigmoid, hard_swish, gelu_erf, gelu_tanh, softplus, floor, ceil, round, sign, sin, cos,
  square, mish, silu
};
struct UnaryParams {
  UnaryKind kind = UnaryKind::identity;
  float alpha = 0.f;  // leaky_relu slope, clip min, hard_sigmoid alpha, elu/selu alpha
  float beta = 0.f;   // clip max, hard_sigmoid beta, selu gamma
};
// Parameters are taken literally (no ONNX defaults are filled in): e.g. hard_sigmoid needs
// alpha = 0.2, beta = 0.5 set by the caller. sin and cos have no vector path yet.
// y[i] = f(x[i]) for i < n; x and y may alias.
void unary_f32(const UnaryParams& params, int64_t n, const float* x, float* y);

// ---------------------------------------------------------------- binary
enum class BinaryKind { add, sub, mul, div, pow, max, min, prelu /* a>=0 ? a : a*b */ };
// 2-D with broadcasting by zero strides: y[r*ldy + c] = a[r*a_rs + c*a_cs] op b[r*b_rs + c*b_cs].
void binary_f32(BinaryKind kind, int64_t rows, int64_t cols, const float* a, int64_t a_row_stride,
                int64_t a_col_stride, const float* b, int64_t b_row_stride, int64_t b_col_stride,
                float* y, int64_t ldy);

// ---------------------------------------------------------------- reduce
enum class ReduceKind { sum, max, min, sum_squares, sum_abs, prod, log_sum_exp };
// Reduces each row of x[rows, cols] (row stride ldx) to y[row].
void reduce_rows_f32(ReduceKind kind, int64_t rows, int64_t cols, const float* x, int64_t ldx,
                     float* y);
// Reduces each column of x[rows, cols] to y[col] (a reduction over the outer axis).
void reduce_cols_f32(ReduceKind kind, int64_t rows, int64_t cols, const float* x, int64_t ldx,
                     float* y);

// One key block of an online softmax (attention's row-tiled softmax): for each row r of
// scores[rows, cols] (row stride ld): m = max(row_max[r], max of the row); the row becomes
// exp(score - m), with scores more than ln(FLT_MIN) below m flushed to exactly 0 (their weight
// would be subnormal); rescale[r] = exp(old row_max[r] - m), the factor for what was accumulated
// before; row_sum[r] = row_sum[r] * rescale[r] + the row's new sum; row_max[r] = m. A row with
// nothing visible yet (m = -inf) becomes zeros with rescale 1.
void online_softmax_block_f32(int64_t rows, int64_t cols, float* scores, int64_t ld, float* row_max,
                              float* row_sum, float* rescale);

// Layer normalization over each row of [rows, cols] (row stride ld for every operand): v = x, or
// x + residual when residual is given (v written to sum_out when given); then
// y = (v - mean) / sqrt(variance + epsilon) * scale + bias (bias may be null), with the mean
// and the centred variance from vector partial sums. y may be x or sum_out.
void add_layer_norm_rows_f32(int64_t rows, int64_t cols, const float* x, const float* residual, int64_t ld,
                             float* sum_out, const float* scale, const float* bias, float epsilon, float* y);

// ---------------------------------------------------------------- transpose / pack
// dst[c * ld_dst + r] = src[r * ld_src + c] for r < rows, c < cols; any element size.
void transpose_2d(int64_t rows, int64_t cols, const void* src, int64_t ld_src, void* dst,
                  int64_t ld_dst, size_t element_size);

// ---------------------------------------------------------------- GEMM
// Algorithm-based fault tolerance (ABFT) on C = A * B: the row sums of C are compared with
// references computed from the operands, (A (B 1)) per row, and a difference larger than a bound
// from floating-point error analysis is a detection. Two schemes (Kosaian and Rashmi, SC'21):
// - global: one check per row over the GEMM's columns (per thread's range), the reference made
//   by a separate pass over A and the row sums of B; its cost does not grow with the FLOPs.
// - thread: each register tile is checked when it is done, against a reference built from the
//   tile's own A and B panels while they are still in L1; its cost is a fixed share of the FLOPs.
// Both check the raw product before bias, residual and activation (which are then applied to
// the tile while it is in L1), so no extra pass over C is made. Bound for a row of n terms:
//   |sum(C row) - reference| <= safety * 2 * gamma(K + n + 2) * sum_k |a_k| sum_j |b_kj|,
// gamma(m) = m u / (1 - m u), u = 2^-24: the error of the computed row (gamma_K per element,
// gamma_n for the sum) plus that of the reference (gamma_{K+n}), each at most gamma(K+n) times
// the same sum of magnitudes. docs/ABFT.md derives it.
// hook_only checks nothing: it only calls the fault hook on every tile (fault injection into the
// accumulators of an unprotected run).
enum class GemmCheckScheme { global, thread, hook_only };

struct GemmCheckCounters {
  std::atomic<int64_t> checks{0};      // row checksums compared
  std::atomic<int64_t> detections{0};  // rows whose difference exceeded the bound
  // GEMM ranges that ran the global check in place of a thread-level one (see
  // GemmCheck::thread_only_with_plan_time_b).
  std::atomic<int64_t> thread_fallbacks{0};
  // The largest |difference| / bound among rows that passed: how close clean round-off came
  // to the bound (its inverse is the margin reported by `tessera abft`).
  std::atomic<float> worst_clean_ratio{0.f};
  void record_clean_ratio(float ratio) {
    float seen = worst_clean_ratio.load(std::memory_order_relaxed);
    while (ratio > seen && !worst_clean_ratio.compare_exchange_weak(seen, ratio, std::memory_order_relaxed)) {
    }
  }
  void reset() {
    checks = 0;
    detections = 0;
    thread_fallbacks = 0;
    worst_clean_ratio = 0.f;
  }
};

// Called with every register tile's raw product (after its last K block, before the check and the
// epilogue): the fault injector's way to corrupt accumulators. The tile is rows x cols at c with
// leading dimension ldc; (row0, col0) is its origin in the whole C. May run on any pool thread.
using GemmFaultHook = void (*)(void* context, int64_t row0, int64_t col0, int rows, int cols, float* c,
                               int64_t ldc);

struct GemmCheck {
  GemmCheckScheme scheme = GemmCheckScheme::global;
  float safety_factor = 1.f;  // multiplies the bound
  // 0: the rigorous bound above. lambda > 0: Higham and Mary's probabilistic bound, gamma(m)
  // replaced by lambda sqrt(m) u + m u^2 (rounding errors as independent zero-mean variables;
  // each check then exceeds it with probability at most 2 exp(-lambda^2 / 2)), sqrt(m) / lambda
  // times tighter: small flips in long reductions are caught, at the risk the model carries.
  float probabilistic_lambda = 0.f;
  GemmCheckCounters* counters = nullptr;  // required
  // With the thread scheme: run it only where B was packed at plan time (weights), whose
  // per-tile row sums were made with it; where B is packed per call (activations), the
  // thread-level reference needs a pass over that B on every call, which the global check does
  // not, so the global check runs instead (counted in counters->thread_fallbacks). `auto` sets it.
  bool thread_only_with_plan_time_b = false;
  GemmFaultHook fault_hook = nullptr;
  void* fault_context = nullptr;
};

// What to do with the product before it is stored (fused epilogue).
// Applied in the microkernel's store step, on registers, after the last K block: no extra pass
// over C. The residual may be C itself (same pointer and leading dimension: an in-place skip
// connection); any other overlap with C is not supported.
struct GemmEpilogue {
  const float* bias_per_column = nullptr;  // bias[n] added to C[m, n]
  const float* bias_per_row = nullptr;     // bias[m] added to C[m, n]
  const float* residual = nullptr;         // residual[m * ld_residual + n] added after bias
  int64_t ld_residual = 0;
  UnaryParams activation;                  // applied last
  const GemmCheck* check = nullptr;        // ABFT on the product (before bias, residual, activation)
  // For the global check when B is packed per call: the column sums of A and of |A| over all M
  // rows (K each), when the caller made them once (constant weights); else the driver makes them
  // with a pass over A on every call.
  const float* check_a_column_sums = nullptr;
  const float* check_a_column_abs_sums = nullptr;
};

// Batch-reduce GEMM, the core primitive: C[M,N] = (accumulate ? C : 0) + sum_b A_b[M,K] * B_b[K,N]
// with row-major A_b (lda) and B_b (ldb). Single-threaded; callers parallelize over tiles.
// A_b and B_b are read in place (nothing outside [M,K] / [K,N] is touched); all batch pairs
// accumulate in the same registers, so C is stored once per register tile.
void brgemm_f32(int64_t M, int64_t N, int64_t K, int64_t batch, const float* const* A, int64_t lda,
                const float* const* B, int64_t ldb, float* C, int64_t ldc, bool accumulate);

// B packed once (at plan time) into the panel layout the microkernels read: panels of
// panel_width() columns (zero padded past N), each K x panel_width row-major, panel_stride()
// floats apart. The width is 16 for every ISA (one zmm, two ymm), so a PackedB made under one
// ISA serves the kernels of any other. Immutable once built; copies share the data.
class PackedB {
 public:
  PackedB() = default;
  // B is K x N row-major with leading dimension ldb, or N x K when transposed (B^T given).
  PackedB(int64_t K, int64_t N, const float* B, int64_t ldb, bool transposed);
  int64_t K() const { return K_; }
  int64_t N() const { return N_; }
  const float* panel(int64_t panel_index) const { return data_.get() + panel_index * panel_stride_; }
  int64_t panel_width() const { return panel_width_; }
  int64_t panel_count() const { return (N_ + panel_width_ - 1) / panel_width_; }
  int64_t panel_stride() const { return panel_stride_; }
  bool empty() const { return data_ == nullptr; }
  // For ABFT: per panel p and row k, the sum and the sum of magnitudes of the panel's row k
  // (at [p * K + k]); made on first use, then shared by copies.
  const float* panel_row_sums() const;
  const float* panel_row_abs_sums() const;
  // Row sums over register tiles of `width` columns (16: one panel, 32: two side by side), at
  // [tile * K + k]: the thread-level check reads them in place.
  const float* tile_row_sums(int width) const;
  // The same over all panels: B's row sums and row sums of magnitudes (K each).
  const float* row_sums_all() const;
  const float* row_abs_sums_all() const;

 private:
  struct RowSums {
    std::once_flag once;
    std::vector<float> sum, abs_sum, total, abs_total, pair_sum;
  };
  const RowSums& row_sums() const;
  int64_t K_ = 0, N_ = 0, panel_width_ = 0, panel_stride_ = 0;
  std::shared_ptr<float> data_;
  std::shared_ptr<RowSums> row_sums_;
};

// C[M,N] = A[M,K] * B + epilogue, B pre-packed; parallel over the pool when given (tiles of
// M-blocks x N-blocks). A is packed per cache block, or read in place when the output is narrow.
// a_transposed: A is given as A^T [K, M] with leading dimension lda (the NCHW activations of a
// pixel-major convolution); the packing reads it as it is, so no transposed copy is needed, and
// the result is bitwise that of the plain call on the transposed copy.
void gemm_packed_f32(int64_t M, const float* A, int64_t lda, const PackedB& B, float* C,
                     int64_t ldc, const GemmEpilogue& epilogue, ThreadPool* pool, bool a_transposed = false);

// General C = alpha * op(A) * op(B) + beta * C (row-major), with optional epilogue after it.
// Packs B on every call (use PackedB + gemm_packed_f32 for weights). beta == 0 never reads C;
// alpha == 0 never reads A or B.
void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc, ThreadPool* pool, const GemmEpilogue* epilogue = nullptr);

}  // namespace tessera::primitives
