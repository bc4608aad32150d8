// Sparse-weight x dense-activation kernels: compressed sparse rows (unstructured), N:M (values +
// small in-group offsets), and complementary sparsity with k-WTA sparse activations.
#pragma once
#include <cstdint>
#include <vector>

#include "primitives/primitives.h"
#include "tessera/thread_pool.h"

namespace tessera::sparse {

// Reduction columns per block: the kernels walk a group of rows through one block at a time, so
// the block's activation rows (block x 64 floats, 32 KiB) stay in L1 for every row of the group.
constexpr int64_t kReductionBlock = 128;

// W[rows, cols] (rows: outputs, cols: the reduction axis) in compressed sparse rows.
struct CsrMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> row_start;  // rows + 1 entries
  std::vector<int32_t> column;     // ascending within a row
  std::vector<float> value;
  // Per row, the index of its first non-zero at or after each reduction block's first column:
  // rows x (blocks + 1), built by finish() from the three arrays above.
  std::vector<int64_t> block_start;

  int64_t nonzeros() const { return int64_t(value.size()); }
  int64_t blocks() const { return (cols + kReductionBlock - 1) / kReductionBlock; }
  // Every non-zero of w (row-major, leading dimension cols).
  static CsrMatrix from_dense(const float* w, int64_t rows, int64_t cols);
  // From stored arrays (a model's constants); checks them and throws tessera::Error if they do
  // not describe a valid matrix (sizes, order, range).
  static CsrMatrix from_arrays(int64_t rows, int64_t cols, std::vector<int64_t> row_start,
                               std::vector<int32_t> column, std::vector<float> value);
  std::vector<float> to_dense() const;
  void finish();  // builds block_start
};

// N:M structured: each group of m consecutive reduction columns of a row holds n stored entries
// (value and offset inside the group); groups with fewer non-zeros are padded with zeros at offset 0.
struct NOfMMatrix {
  int64_t rows = 0, cols = 0;
  int n = 0, m = 0;
  std::vector<float> value;     // rows x groups() x n
  std::vector<uint8_t> offset;  // same layout, < m (and inside the matrix for a short last group)

  int64_t groups() const { return (cols + m - 1) / m; }
  int64_t entries_per_row() const { return groups() * n; }
  // Throws tessera::Error when a group of w holds more than n non-zeros.
  static NOfMMatrix from_dense(const float* w, int64_t rows, int64_t cols, int n, int m);
  static NOfMMatrix from_arrays(int64_t rows, int64_t cols, int n, int m, std::vector<float> value,
                                std::vector<uint8_t> offset);
  std::vector<float> to_dense() const;
};

// Complementary sparsity (Numenta, "Two sparsities are better than one"): rows in sets of
// set_size consecutive rows whose non-zero positions are disjoint are overlaid into one dense
// row per set. Stored transposed, by input: packed[k * set_stride + s] is the weight of input k
// in set s, owner[...] the row of the set it belongs to. A product with one input is then one
// contiguous row of weights, multiplied densely and routed to its outputs by owner.
struct ComplementaryMatrix {
  int64_t rows = 0, cols = 0;
  int set_size = 1;
  int64_t sets = 0, set_stride = 0;  // set_stride: sets rounded up to 16 (zero padding)
  std::vector<float> packed;         // cols x set_stride
  std::vector<uint8_t> owner;        // cols x set_stride

  // Throws tessera::Error when two rows of one set share a non-zero position (the sets are not
  // complementary: prune_complementary makes them so).
  static ComplementaryMatrix pack(const float* w, int64_t rows, int64_t cols, int set_size);
  std::vector<float> unpack() const;  // the original rows x cols matrix
};

// Applied to the product before it is stored: bias per output row, then a residual of the output's
// shape, then the activation.
struct SparseEpilogue {
  const float* bias_per_row = nullptr;
  const float* residual = nullptr;
  int64_t ld_residual = 0;
  primitives::UnaryParams activation;
};

// Y[rows, n] = W X[cols, n] + epilogue (row-major X with leading dimension ldx, Y with ldy).
// Parallel over the pool when given; the kernel follows primitives::active_isa().
void csr_gemm(const CsrMatrix& w, int64_t n, const float* x, int64_t ldx, float* y, int64_t ldy,
              const SparseEpilogue& epilogue, ThreadPool* pool);
void n_of_m_gemm(const NOfMMatrix& w, int64_t n, const float* x, int64_t ldx, float* y, int64_t ldy,
                 const SparseEpilogue& epilogue, ThreadPool* pool);

// k-WTA inputs: sample b's active inputs are indices[b * k + i] with values[b * k + i].
// y[b, 0:rows] (leading dimension ldy) = W x_b, multiplying only the active inputs' weights.
void complementary_kwta_gemm(const ComplementaryMatrix& w, int64_t batch, int64_t k,
                             const int32_t* indices, const float* values, float* y, int64_t ldy,
                             ThreadPool* pool);
// The same product with dense weights given transposed (w_transposed[cols, rows]): the active
// inputs' weight rows are gathered and accumulated over all outputs.
void dense_kwta_gemm(const float* w_transposed, int64_t rows, int64_t cols, int64_t batch, int64_t k,
                     const int32_t* indices, const float* values, float* y, int64_t ldy,
                     ThreadPool* pool);

// Single-threaded ISA kernels behind the drivers above, for one block of output rows
// [row_begin, row_end) and columns [col_begin, col_end); they store the raw product.
#define TESSERA_SPARSE_KERNELS(ns)                                                                  \
  namespace ns {                                                                                    \
  void csr_block(const CsrMatrix& w, int64_t row_begin, int64_t row_end, int64_t col_begin,         \
                 int64_t col_end, const float* x, int64_t ldx, float* y, int64_t ldy);              \
  void n_of_m_block(const NOfMMatrix& w, int64_t row_begin, int64_t row_end, int64_t col_begin,     \
                    int64_t col_end, const float* x, int64_t ldx, float* y, int64_t ldy);           \
  void complementary_sample(const ComplementaryMatrix& w, int64_t k, const int32_t* indices,       \
                            const float* values, float* y);                                         \
  void dense_kwta_sample(const float* w_transposed, int64_t rows, int64_t k, const int32_t* indices, \
                         const float* values, float* y);                                            \
  }
TESSERA_SPARSE_KERNELS(kernels_scalar)
TESSERA_SPARSE_KERNELS(kernels_avx2)
TESSERA_SPARSE_KERNELS(kernels_avx512)
#undef TESSERA_SPARSE_KERNELS

}  // namespace tessera::sparse
