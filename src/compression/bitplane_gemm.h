// Arbitrary-precision GEMM by bit planes (after APNN-TC, Feng et al., SC'21): p-bit x q-bit
// integer operands stored as 1-bit planes along K, multiplied by AND (or XOR) + popcount.
//
// A value of b bits is v = sum_i w_i * bit_i with w_i = 2^i, except the top plane of a signed
// (two's complement) value, which weighs -2^(b-1). The dot product of two rows is then
//   sum_k x_k y_k = sum_{i,j} w_i w_j popcount(X_i AND Y_j),
// p*q popcounts of K-bit rows. The binary encoding ({-1,+1}, one bit: code 0 is -1, 1 is +1)
// multiplies by XOR: sum_k x_k y_k = K - 2 popcount(X XOR Y). Kernels: AVX-512 VPOPCNTDQ,
// AVX2 (nibble lookup with VPSHUFB), portable (std::popcount); chosen at run time.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>

#include "tessera/thread_pool.h"

namespace tessera::compression {

enum class BitplaneEncoding {
  unsigned_int,  // codes 0 .. 2^bits - 1
  signed_int,    // two's complement, -2^(bits-1) .. 2^(bits-1) - 1
  binary,        // one bit: code 0 is -1, code 1 is +1
};
const char* bitplane_encoding_name(BitplaneEncoding encoding);

// Which kernel computes the popcounts. `automatic` follows primitives::active_extensions() and
// active_isa() (so primitives::set_isa and TESSERA_ISA lower it too).
enum class BitplaneKernel { automatic, portable, avx2, avx512_vpopcntdq };
const char* bitplane_kernel_name(BitplaneKernel kernel);
// Whether this CPU can run the kernel (portable always can).
bool bitplane_kernel_available(BitplaneKernel kernel);
// What `automatic` resolves to now.
BitplaneKernel bitplane_kernel_in_use();

// rows x depth integer values of `bits` bits each, stored as bit planes along the depth (K):
// row r, plane b is words_per_plane() 64-bit words (bit k % 64 of word k / 64 is bit b of the
// value at column k), zero past `depth`. words_per_plane() is a multiple of 8 (512 bits) so every
// kernel reads whole vectors. Immutable once packed; copies share the planes.
class BitplaneMatrix {
 public:
  BitplaneMatrix() = default;
  // All planes zero (every value 0, or -1 for binary), row sums set accordingly.
  BitplaneMatrix(int64_t rows, int64_t depth, int bits, BitplaneEncoding encoding);

  int64_t rows() const { return rows_; }
  int64_t depth() const { return depth_; }
  int bits() const { return bits_; }
  BitplaneEncoding encoding() const { return encoding_; }
  int64_t words_per_plane() const { return words_per_plane_; }
  int64_t words_per_row() const { return words_per_plane_ * bits_; }
  bool empty() const { return rows_ == 0; }
  // The smallest and largest value the encoding holds.
  int32_t min_value() const;
  int32_t max_value() const;

  const uint64_t* row(int64_t r) const { return data_.get() + r * words_per_row(); }
  uint64_t* row(int64_t r) { return data_.get() + r * words_per_row(); }
  const uint64_t* plane(int64_t r, int b) const { return row(r) + b * words_per_plane_; }
  // Sum of row r's values (decoded), kept for zero points and the binary corrections.
  int64_t row_sum(int64_t r) const { return row_sums_.get()[r]; }
  // The value at (r, k), decoded from the planes (for tests and debugging).
  int32_t value(int64_t r, int64_t k) const;
  // Recomputes row_sum() of rows [begin, end) from the planes (the packers call it); also drops
  // the column-interleaved copy below, which is then rebuilt on next use.
  void update_row_sums(int64_t begin, int64_t end);
  // The planes again, eight rows side by side: group g (rows 8g .. 8g + 7, zero past rows()),
  // plane b, word w holds the eight rows' word w at [((g * bits + b) * words_per_plane + w) * 8].
  // The AVX-512 kernel reads the column operand this way (one vector = eight columns' word w, so
  // its accumulators need no horizontal sums). Made on first use; thread-safe; shared by copies.
  const uint64_t* interleaved_groups() const;

 private:
  int64_t rows_ = 0, depth_ = 0, words_per_plane_ = 0;
  int bits_ = 0;
  BitplaneEncoding encoding_ = BitplaneEncoding::unsigned_int;
  std::shared_ptr<uint64_t> data_;
  std::shared_ptr<int64_t> row_sums_;
  struct Interleaved;
  std::shared_ptr<Interleaved> interleaved_;
};

// Packs rows [row_begin, row_begin + row_count) of `out` from one code byte per value:
// codes[(r - row_begin) * ld + k], of which the low bits() bits are the value's bits (a signed
// value is its two's complement byte, a binary one 0 or 1); higher bits are ignored. Unchecked:
// the run-time quantizers call it with codes they made.
void pack_bitplane_codes(const uint8_t* codes, int64_t ld, int64_t row_begin, int64_t row_count,
                         BitplaneMatrix& out, BitplaneKernel kernel = BitplaneKernel::automatic);

// codes[i] = clamp(round_half_even(x[i] / scale) + zero_point, 0, 2^bits - 1) (NaN -> 0), the
// activation quantizer, vectorized per kernel (division, not multiplication by a reciprocal, so
// every kernel gives the same codes).
void quantize_to_codes(const float* x, int64_t n, float scale, int32_t zero_point, int bits, uint8_t* codes,
                       BitplaneKernel kernel = BitplaneKernel::automatic);

// Packs rows x depth values (values[r * ld + k]); a value outside the encoding's range throws
// tessera::Error naming it. bits: 1..8 (binary: 1).
BitplaneMatrix pack_bitplanes(const int32_t* values, int64_t rows, int64_t depth, int64_t ld, int bits,
                              BitplaneEncoding encoding, BitplaneKernel kernel = BitplaneKernel::automatic);

// C[r, c] = sum_k x(r, k) * y(c, k): both operands are packed along K (x is M x K, y is N x K),
// any bits and encodings. Parallel over the pool when given. The int32 form throws when
// K * max|x| * max|y| could overflow it; the int64 form cannot overflow.
void bitplane_gemm_i32(const BitplaneMatrix& x, const BitplaneMatrix& y, int32_t* c, int64_t ldc,
                       ThreadPool* pool, BitplaneKernel kernel = BitplaneKernel::automatic);
void bitplane_gemm_i64(const BitplaneMatrix& x, const BitplaneMatrix& y, int64_t* c, int64_t ldc,
                       ThreadPool* pool, BitplaneKernel kernel = BitplaneKernel::automatic);

// The dequantizing epilogue: with x ~ x_scale[r] * (x_code - x_zero_point) and
// y ~ y_scale[c] * (y_code - y_zero_point) (scales per row/column, or one for all when the
// pointer is null), the f32 result is
//   C[r, c] = scale * x_scale[r] * y_scale[c] *
//             (D - x_zero_point * sum_k y(c, k) - y_zero_point * sum_k x(r, k) + K x_zp y_zp)
//             + bias_per_row[r] + bias_per_column[c], then ReLU when asked,
// D the integer product above. Applied to each register tile as it is stored.
struct BitplaneEpilogue {
  float scale = 1.f;
  const float* x_scales = nullptr;
  const float* y_scales = nullptr;
  int32_t x_zero_point = 0;
  int32_t y_zero_point = 0;
  const float* bias_per_row = nullptr;
  const float* bias_per_column = nullptr;
  bool relu = false;
};
void bitplane_gemm_f32(const BitplaneMatrix& x, const BitplaneMatrix& y, float* c, int64_t ldc,
                       const BitplaneEpilogue& epilogue, ThreadPool* pool,
                       BitplaneKernel kernel = BitplaneKernel::automatic);

}  // namespace tessera::compression
