// Integer GEMM for quantized inference: u8 activations x s8 weights accumulated exactly in int32,
// then dequantized / requantized in a fused epilogue. AVX-512 VNNI (VPDPBUSD), AVX2 (operands
// widened to int16 and VPMADDWD, so no int16 saturation whatever the values) and portable paths.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "tessera/thread_pool.h"

namespace tessera::primitives {

// Weights B [K, N] (s8) packed once into the layout every int8 microkernel reads: panels of 16
// columns; in a panel, K is grouped in quads and quad q holds, for each of the 16 columns, its 4
// consecutive k values (64 bytes = one zmm: what VPDPBUSD multiplies with 4 broadcast A bytes).
// K is padded to a multiple of 4 and N to 16 with zeros. Also keeps the column sums of B (for
// the activation zero point: sum_k (a_k - za) b_k = sum_k a_k b_k - za sum_k b_k).
class PackedInt8B {
 public:
  PackedInt8B() = default;
  // B element (k, n) is b[k * ldb + n], or b[n * ldb + k] when transposed (N x K given).
  PackedInt8B(int64_t K, int64_t N, const int8_t* b, int64_t ldb, bool transposed);
  int64_t K() const { return K_; }
  int64_t N() const { return N_; }
  int64_t k_quads() const { return (K_ + 3) / 4; }
  int64_t panel_count() const { return (N_ + 15) / 16; }
  int64_t panel_stride() const { return k_quads() * 64; }  // bytes
  const int8_t* panel(int64_t p) const { return data_.get() + p * panel_stride(); }
  const int32_t* column_sums() const { return column_sums_.get(); }  // N + padding, zero past N
  bool empty() const { return data_ == nullptr; }

 private:
  int64_t K_ = 0, N_ = 0;
  std::shared_ptr<int8_t> data_;
  std::shared_ptr<int32_t> column_sums_;
};

// What happens to the int32 accumulator acc(m, n) on its way out, in registers:
//   f = (acc - a_zero_point * colsum(n) - b_zero_point(n) * rowsum_a(m)
//        + K * a_zero_point * b_zero_point(n)) * scale(n) + bias(n)
//   relu: f = max(f, 0)
//   output f32: C(m, n) = f
//   output u8:  q = saturate_u8(round_half_even(f / output_scale) + output_zero_point)
//     with a residual (a skip connection in QDQ form, each term quantized on its own):
//       g = (q - output_zero_point) * output_scale + (r(m, n) - residual_zero_point) * residual_scale
//       relu_after_residual: g = max(g, 0);  C(m, n) = saturate_u8(round(g / sum_scale) + sum_zero_point)
//   output s32: C(m, n) = acc (raw, nothing else applied)
// Division is done as multiplication by the reciprocal (as other engines do): a result can
// differ by one step from exact division when f / scale lands within an ulp of a half.
struct Int8Epilogue {
  enum class Output { s32, f32, u8 };
  Output output = Output::f32;
  const float* scale = nullptr;  // per column; required unless output is s32
  bool scale_per_tensor = false;  // scale[0] for every column
  const float* bias = nullptr;   // per column, optional
  int32_t a_zero_point = 0;
  // Asymmetric weights: per-column zero point of B (values as stored, i.e. already shifted into
  // s8); nullptr when B is symmetric. Needs the row sums of A, which the driver computes.
  const int32_t* b_zero_points = nullptr;
  bool relu = false;
  float output_scale = 1.f;
  int32_t output_zero_point = 0;
  const uint8_t* residual = nullptr;
  int64_t ld_residual = 0;
  float residual_scale = 1.f;
  int32_t residual_zero_point = 0;
  bool relu_after_residual = false;
  float sum_scale = 1.f;
  int32_t sum_zero_point = 0;
};

// C[M, N] = epilogue(A[M, K] (u8, row-major, lda) x B); C is float, uint8_t or int32_t per the
// epilogue's output, with leading dimension ldc in elements. Parallel over the pool when given.
void gemm_u8s8_packed(int64_t M, const uint8_t* A, int64_t lda, const PackedInt8B& B, void* C,
                      int64_t ldc, const Int8Epilogue& epilogue, ThreadPool* pool);

// An epilogue bound to one packed B, with its per-column constants folded once (zero-point
// terms, scale / output scale, bias / output scale): made at plan time for a layer's weights.
// scale and bias are folded in (they need not outlive it); b_zero_points is read in place.
// The residual pointer and ld_residual of the epilogue are ignored here (given per call).
class PreparedInt8Epilogue {
 public:
  PreparedInt8Epilogue() = default;
  PreparedInt8Epilogue(const PackedInt8B& B, const Int8Epilogue& epilogue);
  const Int8Epilogue& epilogue() const { return epilogue_; }
  const int32_t* column_offsets() const { return offsets_.empty() ? nullptr : offsets_.data(); }
  const float* multipliers() const { return multipliers_.data(); }
  const float* addends() const { return addends_.data(); }

 private:
  Int8Epilogue epilogue_;
  // Per column (padded to whole panels): int32 added to the accumulator, then the multiplier
  // and addend that take it to f32 (output f32) or to units of the output scale (output u8).
  std::vector<int32_t> offsets_;
  std::vector<float> multipliers_, addends_;
};

// The same with an epilogue prepared once (per layer) and the residual given per call.
void gemm_u8s8_packed(int64_t M, const uint8_t* A, int64_t lda, const PackedInt8B& B, void* C, int64_t ldc,
                      const PreparedInt8Epilogue& epilogue, const uint8_t* residual, int64_t ld_residual,
                      ThreadPool* pool);

// Batch-reduce form for convolutions as implicit GEMM: row m of the A operand is the
// concatenation over b < batch of a_batch[b] + m * lda .. + k_per_batch; B's K is
// batch * k_per_batch (k_per_batch a multiple of 4 when batch > 1), in that order. Computes
// `rows` rows (callers tile M), single-threaded, into C at c (ldc), all N columns. residual
// (when the epilogue has one) points at this tile's first row, ld_residual apart. rowsum_a is
// required when the epilogue has b_zero_points (one per row of this call).
void brgemm_u8s8(int64_t rows, const uint8_t* const* a_batch, int64_t batch, int64_t k_per_batch,
                 int64_t lda, const PackedInt8B& B, void* c, int64_t ldc,
                 const PreparedInt8Epilogue& epilogue, const uint8_t* residual, int64_t ld_residual,
                 const int32_t* rowsum_a);

// Rows of the register tile of the kernel that runs now, for callers that tile M themselves
// (implicit convolution keeps a tile inside one output row).
int int8_gemm_tile_rows();

}  // namespace tessera::primitives
