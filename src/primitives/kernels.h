// Internal kernel tables behind primitives.h: one table per ISA, chosen by dispatch.cpp from
// active_isa(). The *_avx2.cpp / *_avx512.cpp files fill theirs; nothing here runs AVX code.
#pragma once
#include <cstdint>

#include "primitives/primitives.h"

namespace tessera::primitives::detail {

// One element of each primitive, in plain C++. The scalar kernels are built from these and the
// vector kernels fall back to them for the rare kinds they do not vectorize (sin, cos, pow...).
float unary_one(const UnaryParams& params, float x);
float binary_one(BinaryKind kind, float a, float b);
// A portable row loop for a binary op; vector kernels use it for pow.
void binary_row_scalar(BinaryKind kind, int64_t n, const float* a, int64_t a_step, const float* b,
                       int64_t b_step, float* y);

// The portable kernels, visible so the vector tables can reuse them for cases they leave scalar.
void unary_scalar(const UnaryParams& params, int64_t n, const float* x, float* y);
void reduce_rows_scalar(ReduceKind kind, int64_t rows, int64_t cols, const float* x, int64_t ldx, float* y);
void reduce_cols_scalar(ReduceKind kind, int64_t rows, int64_t cols, const float* x, int64_t ldx, float* y);
void add_layer_norm_rows_scalar(int64_t rows, int64_t cols, const float* x, const float* residual, int64_t ld,
                                float* sum_out, const float* scale, const float* bias, float epsilon, float* y);
void online_softmax_block_scalar(int64_t rows, int64_t cols, float* scores, int64_t ld, float* row_max,
                                 float* row_sum, float* rescale);
// dst[c * ld_dst + r] = src[r * ld_src + c] for 4-byte elements, bits copied as they are; the
// cache-tiled loops of transpose_2d (transpose.cpp).
void transpose_4byte_scalar(int64_t rows, int64_t cols, const uint32_t* src, int64_t ld_src, uint32_t* dst,
                            int64_t ld_dst);
// The vector kernels' transpose: whole kBlock x kBlock blocks by `block` (in registers), the
// edges they leave by transpose_4byte_scalar.
template <int64_t kBlock, void (*block)(const uint32_t*, int64_t, uint32_t*, int64_t)>
void transpose_4byte_by_blocks(int64_t rows, int64_t cols, const uint32_t* src, int64_t ld_src, uint32_t* dst,
                               int64_t ld_dst) {
  const int64_t full_rows = rows / kBlock * kBlock, full_cols = cols / kBlock * kBlock;
  for (int64_t r0 = 0; r0 < full_rows; r0 += kBlock)
    for (int64_t c0 = 0; c0 < full_cols; c0 += kBlock)
      block(src + r0 * ld_src + c0, ld_src, dst + c0 * ld_dst + r0, ld_dst);
  transpose_4byte_scalar(full_rows, cols - full_cols, src + full_cols, ld_src, dst + full_cols * ld_dst, ld_dst);
  transpose_4byte_scalar(rows - full_rows, cols, src + full_rows * ld_src, ld_src, dst + full_rows, ld_dst);
}

struct EltwiseKernels {
  void (*unary)(const UnaryParams& params, int64_t n, const float* x, float* y);
  // y[i] = a[i * a_step] op b[i * b_step] for i < n; steps are 0 (broadcast) or 1.
  void (*binary_row)(BinaryKind kind, int64_t n, const float* a, int64_t a_step, const float* b,
                     int64_t b_step, float* y);
  void (*reduce_rows)(ReduceKind kind, int64_t rows, int64_t cols, const float* x, int64_t ldx, float* y);
  void (*reduce_cols)(ReduceKind kind, int64_t rows, int64_t cols, const float* x, int64_t ldx, float* y);
  void (*online_softmax_block)(int64_t rows, int64_t cols, float* scores, int64_t ld, float* row_max,
                               float* row_sum, float* rescale);
  void (*add_layer_norm_rows)(int64_t rows, int64_t cols, const float* x, const float* residual, int64_t ld,
                              float* sum_out, const float* scale, const float* bias, float epsilon, float* y);
  // As transpose_4byte_scalar: the vector kernels transpose square blocks in registers.
  void (*transpose_4byte)(int64_t rows, int64_t cols, const uint32_t* src, int64_t ld_src, uint32_t* dst,
                          int64_t ld_dst);
};

// Where online_softmax_block flushes: exp(x) is subnormal below ln(FLT_MIN) = -87.34, so shifted
// scores below kSoftmaxFlushBelow become kSoftmaxFlushedTo, whose exp is exactly 0.
constexpr float kSoftmaxFlushBelow = -87.33f, kSoftmaxFlushedTo = -105.f;

// Everything one call of a GEMM microkernel needs: a register tile of `rows` x `cols` of C,
// accumulated over `batch` (A, B) pairs of depth k, then stored through the epilogue.
struct GemmTileArgs {
  int64_t k = 0;
  int64_t batch = 1;
  int rows = 0;  // <= GemmKernel::mr
  int cols = 0;  // <= GemmKernel::nr
  // A: either packed (k-major micro-panel, element (r, kk) at a[kk * mr + r]) or row-major
  // (element (r, kk) at a[r * a_row_stride + kk]). a_batch[b] + a_offset is the tile's origin.
  bool a_packed = false;
  const float* const* a_batch = nullptr;
  int64_t a_offset = 0;
  int64_t a_row_stride = 0;
  // B: the tile's columns are grouped in vectors of GemmKernel::vector_floats; vector v of row kk
  // starts at b_batch[b] + b_offset + kk * b_row_stride + v * b_vector_offset. When b_padded the
  // last vector may be read in full (packed panels are zero padded), otherwise only `cols`.
  bool b_padded = false;
  const float* const* b_batch = nullptr;
  int64_t b_offset = 0;
  int64_t b_row_stride = 0;
  int64_t b_vector_offset = 0;
  // C = beta * C + product (beta == 0 never reads C), then the epilogue when given. row0/col0
  // are the tile's coordinates in the whole C, which the bias and residual pointers index.
  float* c = nullptr;
  int64_t ldc = 0;
  float beta = 0.f;
  const GemmEpilogue* epilogue = nullptr;
  int64_t row0 = 0, col0 = 0;
  // Thread-level ABFT (set only with packed A): per k of this call the sum of the tile's B row
  // (check_b_sum[kk]); the kernel adds sum_kk a(r, kk) * b_sum[kk] to check_reference[r] while
  // it accumulates the tile (GemmKernel::fused_check), else the driver calls
  // GemmKernel::tile_reference after the tile.
  const float* check_b_sum = nullptr;
  float* check_reference = nullptr;
  // Global ABFT sums made in the store step (GemmKernel::fused_global_sums), from the registers
  // after beta * C and before the epilogue: column j's sum added to check_column_sums[j], or row
  // r's 16-lane partial sum to check_row_partials[r * 16 .. r * 16 + 15].
  float* check_column_sums = nullptr;
  float* check_row_partials = nullptr;
  // Lines (64 bytes each, contiguous from `prefetch`) that kernels with GemmKernel::prefetches_b
  // request into L2 while they compute the tile, spread over its k steps: the next block of
  // packed weights, which would otherwise arrive from memory only when the next tile stalls on it.
  const float* prefetch = nullptr;
  int64_t prefetch_lines = 0;
};

// The same sums as the fused check, over a packed A micro-panel (a[kk * mr + r]), after the tile.
using TileReferenceFn = void (*)(const float* a, int mr, int rows, int64_t depth, const float* b_sum,
                                 float* reference);

// Packs rows x depth of alpha * op(A) into micro-panels of mr rows, k-major: element (i, k)
// goes to out[(i / mr) * depth * mr + k * mr + i % mr]. op(A)(i, k) is a[i * lda + k], or
// a[k * lda + i] when transposed. Rows past `rows` in the last micro-panel are left unwritten.
using PackAFn = void (*)(const float* a, int64_t lda, bool transposed, int64_t rows, int64_t depth,
                         float alpha, float* out);

struct GemmKernel {
  int mr;             // rows of the register tile
  int nr;             // columns of the register tile
  int vector_floats;  // columns per vector register
  void (*tile)(const GemmTileArgs& args);
  PackAFn pack_a;
  bool fused_check;  // tile() computes the thread-level ABFT sums itself
  TileReferenceFn tile_reference;
  // ABFT over packed B panels (16 wide, panel_stride apart, depth rows): per panel and row the
  // sum and the sum of magnitudes (sum[p * depth + k]; abs_sum may be null); and the global column reference,
  // reference[p * 16 + j] += sum_k a_sum[k] b(k, j), magnitude likewise with magnitudes.
  void (*panel_row_sums)(const float* panels, int64_t panel_count, int64_t panel_stride, int64_t depth,
                         float* sum, float* abs_sum);
  void (*column_reference)(const float* panels, int64_t panel_count, int64_t panel_stride, int64_t depth,
                           const float* a_sum, const float* a_abs_sum, float* reference, float* magnitude);
  // The global check's passes over A: s = sum_i a[i] x[i] and t = sum_i |a[i]| y[i] (dot2);
  // out1[i] += s * a[i] and out2[i] += t * |a[i]| (axpy2).
  void (*dot2)(int64_t n, const float* a, const float* x, const float* y, float* s, float* t);
  void (*axpy2)(int64_t n, const float* a, float s, float t, float* out1, float* out2);
  // Global checks over a finished tile (from L1), without horizontal sums: column sums
  // sums[j] += sum_r c[r * ldc + j]; and per row 16-lane partial row sums
  // partial[r * 16 + l] += sum_{j = l mod 16} c[r * ldc + j], reduced once per row at the end.
  void (*tile_column_sums)(const float* c, int64_t ldc, int rows, int cols, float* sums);
  void (*tile_partial_row_sums)(const float* c, int64_t ldc, int rows, int cols, float* partial);
  // sums[r] = sum_j c[r * ldc + j] and abs_sums[r] = sum_j |c[r * ldc + j]| for r < rows,
  // j < cols (a finished tile, read back from L1).
  void (*tile_row_sums)(const float* c, int64_t ldc, int rows, int cols, float* sums, float* abs_sums);
  bool prefetches_b = false;  // tile() issues GemmTileArgs::prefetch itself
  bool fused_global_sums = false;  // tile() makes check_column_sums / check_row_partials itself
};

// The portable ABFT sums, which the vector tables use where they have none of their own.
void panel_row_sums_scalar(const float* panels, int64_t panel_count, int64_t panel_stride, int64_t depth,
                           float* sum, float* abs_sum);
void column_reference_scalar(const float* panels, int64_t panel_count, int64_t panel_stride, int64_t depth,
                             const float* a_sum, const float* a_abs_sum, float* reference, float* magnitude);
void tile_row_sums_scalar(const float* c, int64_t ldc, int rows, int cols, float* sums, float* abs_sums);
void tile_column_sums_scalar(const float* c, int64_t ldc, int rows, int cols, float* sums);
void tile_partial_row_sums_scalar(const float* c, int64_t ldc, int rows, int cols, float* partial);
void dot2_scalar(int64_t n, const float* a, const float* x, const float* y, float* s, float* t);
void axpy2_scalar(int64_t n, const float* a, float s, float t, float* out1, float* out2);
void tile_reference_scalar(const float* a, int mr, int rows, int64_t depth, const float* b_sum, float* reference);

// The portable A packing, which the vector packers use for their edges.
void pack_a_scalar(const float* a, int64_t lda, bool transposed, int64_t rows, int64_t depth, float alpha,
                   float* out, int mr);

// Constant-initialized, so reading a table never runs code compiled for another ISA.
extern const EltwiseKernels kEltwiseScalar;
extern const EltwiseKernels kEltwiseAvx2;
extern const EltwiseKernels kEltwiseAvx512;
extern const GemmKernel kGemmScalar;
extern const GemmKernel kGemmAvx2;
extern const GemmKernel kGemmAvx512;

const EltwiseKernels& eltwise_kernels(Isa isa);
const GemmKernel& gemm_kernel(Isa isa);

// Adds the epilogue to one value of C at (row, col); the portable tail of every kernel. Not
// inline: a header inline compiled into an AVX file could be the copy the linker keeps.
float apply_epilogue_one(const GemmEpilogue& epilogue, int64_t row, int64_t col, float v);

}  // namespace tessera::primitives::detail
