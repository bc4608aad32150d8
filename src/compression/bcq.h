// Binary-coding quantization (BCQ) of weight matrices, as in LUT-GEMM (Park et al.): every group
// of `group_size` input columns of an output row is approximated by q scaled sign vectors,
// w ~ sum_{i<q} alpha_i b_i with b_i in {-1,+1}; fitting, reconstruction, and the packed layout
// the LUT-GEMM kernels read (lut_gemm.h).
#pragma once
#include <cstdint>
#include <vector>

#include "tessera/thread_pool.h"

namespace tessera::compression {

struct BcqOptions {
  int bits = 3;              // q, the number of sign planes: 1 to 4
  int64_t group_size = 128;  // input columns sharing one alpha per plane and row; a multiple of 32
  // Alternating least-squares rounds after the greedy start (Xu et al. 2018): alphas by least
  // squares for fixed signs, then each weight's signs by the nearest of the 2^q levels. 0: greedy only.
  int refine_iterations = 20;
};

// Throws tessera::Error naming the bad field.
void check_bcq_options(const BcqOptions& options);

// A matrix W [rows, cols] (rows = outputs, cols = inputs: y = W x) in plain BCQ form.
struct BcqMatrix {
  int64_t rows = 0, cols = 0;
  int bits = 0;
  int64_t group_size = 0;
  std::vector<int8_t> signs;  // [bits][rows][cols], each +1 or -1
  std::vector<float> alphas;  // [bits][rows][groups]

  int64_t groups() const { return (cols + group_size - 1) / group_size; }
  int8_t sign(int plane, int64_t row, int64_t col) const { return signs[size_t((plane * rows + row) * cols + col)]; }
  float alpha(int plane, int64_t row, int64_t group) const {
    return alphas[size_t((plane * rows + row) * groups() + group)];
  }
  // W reconstructed, [rows, cols] row-major.
  std::vector<float> dequantize() const;
};

// Fits W (row-major [rows, cols], leading dimension ld) group by group: greedy planes
// (alpha = mean |residual|, b = sign(residual)), then options.refine_iterations alternating
// rounds, each of which never increases the group's squared error. Rows run on the pool.
BcqMatrix bcq_fit(const float* weight, int64_t rows, int64_t cols, int64_t ld, const BcqOptions& options,
                  ThreadPool* pool = nullptr);

// The layout the kernels read. Output rows in blocks of 16 (one AVX-512 register of lanes; rows
// past `rows` are padded with zero alphas). For block rb, 32-column word w and plane i, 16 words
// of 32 bits, one per row: bit 4j + t of row l's word is set when the sign of plane i at
// (16 rb + l, 32 w + 4 j + t) is +1. So one 64-byte load gives, for 16 rows, the 4-bit table
// indices of 8 consecutive groups of mu = 4 activations, and vpermps reads the low nibble only.
// Columns past `cols` are clear bits (their activations are padded with zeros, so they add 0).
// Alphas: [rb][group][plane][16] floats.
class PackedBcq {
 public:
  static constexpr int kRowBlock = 16;
  static constexpr int kWordColumns = 32;

  PackedBcq() = default;
  explicit PackedBcq(const BcqMatrix& matrix);
  // From the arrays of an earlier packing (graph constants); sizes are checked.
  PackedBcq(int64_t rows, int64_t cols, int bits, int64_t group_size, std::vector<uint32_t> sign_words,
            std::vector<float> alphas);

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int bits() const { return bits_; }
  int64_t group_size() const { return group_size_; }
  int64_t row_blocks() const { return (rows_ + kRowBlock - 1) / kRowBlock; }
  int64_t words_per_row() const { return (cols_ + kWordColumns - 1) / kWordColumns; }
  int64_t words_per_group() const { return group_size_ / kWordColumns; }
  int64_t groups() const { return (cols_ + group_size_ - 1) / group_size_; }
  bool empty() const { return rows_ == 0; }

  const std::vector<uint32_t>& sign_words() const { return sign_words_; }
  const std::vector<float>& alphas() const { return alphas_; }
  const uint32_t* block_signs(int64_t block) const {
    return sign_words_.data() + block * words_per_row() * bits_ * kRowBlock;
  }
  const float* block_alphas(int64_t block) const { return alphas_.data() + block * groups() * bits_ * kRowBlock; }
  // Bytes of signs and alphas (what a product reads).
  int64_t bytes() const {
    return int64_t(sign_words_.size() * sizeof(uint32_t) + alphas_.size() * sizeof(float));
  }
  // W reconstructed into out[r * ld + c] (ld >= cols).
  void dequantize(float* out, int64_t ld) const;
  static int64_t sign_word_count(int64_t rows, int64_t cols, int bits);
  static int64_t alpha_count(int64_t rows, int64_t cols, int bits, int64_t group_size);

 private:
  int64_t rows_ = 0, cols_ = 0;
  int bits_ = 0;
  int64_t group_size_ = 0;
  std::vector<uint32_t> sign_words_;
  std::vector<float> alphas_;
};

}  // namespace tessera::compression
