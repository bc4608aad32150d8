// Bit-plane GEMM driver: packed operand storage, kernel dispatch, cache blocking and threading,
// the binary-encoding corrections and the integer and dequantizing (f32) stores.
#include "compression/bitplane_gemm.h"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "compression/bitplane_kernels.h"
#include "primitives/primitives.h"
#include "tessera/error.h"

namespace tessera::compression {

namespace {

const detail::BitplaneKernelTable& kernel_table(BitplaneKernel kernel) {
  if (kernel == BitplaneKernel::automatic) kernel = bitplane_kernel_in_use();
  if (!bitplane_kernel_available(kernel))
    throw Error(std::string("bit-plane kernel ") + bitplane_kernel_name(kernel) + " is not supported by this CPU");
  switch (kernel) {
    case BitplaneKernel::avx512_vpopcntdq:
      return detail::kBitplaneAvx512Popcnt;
    case BitplaneKernel::avx2:
      return detail::kBitplaneAvx2;
    default:
      return detail::kBitplanePortable;
  }
}

// Weight of plane b of a value of `bits` bits in `encoding` (binary counts as unsigned here; the
// drivers correct for it).
int64_t plane_weight(BitplaneEncoding encoding, int bits, int b) {
  const int64_t weight = int64_t(1) << b;
  return encoding == BitplaneEncoding::signed_int && b == bits - 1 ? -weight : weight;
}

int64_t max_magnitude(const BitplaneMatrix& m) {
  return std::max<int64_t>(std::abs(int64_t(m.min_value())), std::abs(int64_t(m.max_value())));
}

// Runs the tiles of x * y^T and hands each tile's finished integer products to
// store(row0, col0, rows, cols, products, ld) with product (r, c) at products[r * ld + c].
template <typename Store>
void run_tiles(const BitplaneMatrix& x, const BitplaneMatrix& y, ThreadPool* pool, BitplaneKernel kernel,
               const Store& store) {
  TESSERA_CHECK(!x.empty() && !y.empty(), "bit-plane GEMM: an operand has no rows");
  TESSERA_CHECK(x.depth() == y.depth(), "bit-plane GEMM: operands have different depths (" +
                                            std::to_string(x.depth()) + " and " + std::to_string(y.depth()) + ")");
  const detail::BitplaneKernelTable& table = kernel_table(kernel);
  const int64_t M = x.rows(), N = y.rows(), K = x.depth();
  const bool x_binary = x.encoding() == BitplaneEncoding::binary;
  const bool y_binary = y.encoding() == BitplaneEncoding::binary;

  // Y (the weights, usually) in blocks of about 512 KiB, which stay in L2 while every row tile
  // of X (a few KiB, in L1) passes over them; more blocks when there are too few tasks.
  const int64_t y_row_bytes = y.words_per_row() * 8;
  int64_t block_cols = std::max<int64_t>(table.nr, (512 << 10) / std::max<int64_t>(1, y_row_bytes));
  const int64_t block_rows = std::min<int64_t>(M, 64 * table.mr);
  const int64_t row_blocks = (M + block_rows - 1) / block_rows;
  const int threads = pool ? pool->size() : 1;
  const int64_t wanted_col_blocks = std::max<int64_t>(1, (4 * threads + row_blocks - 1) / row_blocks);
  block_cols = std::min(block_cols, (N + wanted_col_blocks - 1) / wanted_col_blocks);
  block_cols = std::max<int64_t>(table.nr, (block_cols + table.nr - 1) / table.nr * table.nr);
  const int64_t col_blocks = (N + block_cols - 1) / block_cols;
  const uint64_t* y_groups = table.interleaved_columns ? y.interleaved_groups() : nullptr;
  const int64_t y_group_words = y.words_per_row() * 8;

  auto run_block = [&](int task) {
    const int64_t row_begin = (task / col_blocks) * block_rows, col_begin = (task % col_blocks) * block_cols;
    const int64_t row_end = std::min(M, row_begin + block_rows), col_end = std::min(N, col_begin + block_cols);
    detail::BitplaneTileArgs args;
    args.x_bits = x.bits();
    args.y_bits = y.bits();
    args.x_signed = x.encoding() == BitplaneEncoding::signed_int;
    args.y_signed = y.encoding() == BitplaneEncoding::signed_int;
    args.xor_mode = x_binary && y_binary;
    args.words = x.words_per_plane();
    args.depth = K;
    alignas(64) int64_t raw[256];
    args.raw = raw;
    args.raw_ld = table.nr;
    for (int64_t r0 = row_begin; r0 < row_end; r0 += table.mr) {
      args.rows = int(std::min<int64_t>(table.mr, row_end - r0));
      for (int r = 0; r < args.rows; ++r) args.x_rows[r] = x.row(r0 + r);
      for (int64_t c0 = col_begin; c0 < col_end; c0 += table.nr) {
        args.cols = int(std::min<int64_t>(table.nr, col_end - c0));
        if (table.interleaved_columns) {
          args.groups = (args.cols + 7) / 8;
          for (int g = 0; g < args.groups; ++g) args.y_groups[g] = y_groups + (c0 / 8 + g) * y_group_words;
        } else {
          for (int c = 0; c < args.cols; ++c) args.y_rows[c] = y.row(c0 + c);
        }
        table.tile(args);
        // One binary operand was counted as {0, 1}: x = 2b - 1 turns sum x*y into 2 raw - sum y.
        // (Both binary: the kernel gave the dot product.)
        const int64_t ld = table.nr;
        if (!args.xor_mode && x_binary) {
          for (int r = 0; r < args.rows; ++r)
            for (int c = 0; c < args.cols; ++c) raw[r * ld + c] = 2 * raw[r * ld + c] - y.row_sum(c0 + c);
        } else if (!args.xor_mode && y_binary) {
          for (int r = 0; r < args.rows; ++r)
            for (int c = 0; c < args.cols; ++c) raw[r * ld + c] = 2 * raw[r * ld + c] - x.row_sum(r0 + r);
        }
        store(r0, c0, args.rows, args.cols, raw, int64_t(table.nr));
      }
    }
  };
  const int tasks = int(row_blocks * col_blocks);
  if (pool && tasks > 1)
    pool->run_tasks(tasks, run_block);
  else
    for (int task = 0; task < tasks; ++task) run_block(task);
}

}  // namespace

const char* bitplane_encoding_name(BitplaneEncoding encoding) {
  switch (encoding) {
    case BitplaneEncoding::unsigned_int:
      return "unsigned";
    case BitplaneEncoding::signed_int:
      return "signed";
    case BitplaneEncoding::binary:
      return "binary";
  }
  return "unknown";
}

const char* bitplane_kernel_name(BitplaneKernel kernel) {
  switch (kernel) {
    case BitplaneKernel::automatic:
      return "automatic";
    case BitplaneKernel::portable:
      return "portable";
    case BitplaneKernel::avx2:
      return "avx2";
    case BitplaneKernel::avx512_vpopcntdq:
      return "avx512_vpopcntdq";
  }
  return "unknown";
}

bool bitplane_kernel_available(BitplaneKernel kernel) {
  switch (kernel) {
    case BitplaneKernel::avx512_vpopcntdq:
      return primitives::detected_extensions().avx512_vpopcntdq;
    case BitplaneKernel::avx2:
      return primitives::detected_isa() >= primitives::Isa::avx2;
    default:
      return true;
  }
}

BitplaneKernel bitplane_kernel_in_use() {
  if (primitives::active_extensions().avx512_vpopcntdq) return BitplaneKernel::avx512_vpopcntdq;
  if (primitives::active_isa() >= primitives::Isa::avx2) return BitplaneKernel::avx2;
  return BitplaneKernel::portable;
}

struct BitplaneMatrix::Interleaved {
  std::once_flag once;
  std::shared_ptr<uint64_t> words;
};

const uint64_t* BitplaneMatrix::interleaved_groups() const {
  Interleaved& cache = *interleaved_;
  std::call_once(cache.once, [&] {
    const int64_t groups = (rows_ + 7) / 8, group_words = words_per_row() * 8;
    void* memory = std::aligned_alloc(64, size_t(std::max<int64_t>(1, groups * group_words)) * 8);
    if (!memory) throw Error("bit-plane matrix: out of memory for the interleaved copy");
    uint64_t* out = static_cast<uint64_t*>(memory);
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t w = 0; w < words_per_row(); ++w)  // plane b, word v is w = b * words_per_plane + v
        for (int64_t lane = 0; lane < 8; ++lane) {
          const int64_t r = g * 8 + lane;
          out[(g * words_per_row() + w) * 8 + lane] = r < rows_ ? row(r)[w] : 0;
        }
    cache.words = std::shared_ptr<uint64_t>(out, std::free);
  });
  return cache.words.get();
}

BitplaneMatrix::BitplaneMatrix(int64_t rows, int64_t depth, int bits, BitplaneEncoding encoding)
    : rows_(rows), depth_(depth), bits_(bits), encoding_(encoding), interleaved_(std::make_shared<Interleaved>()) {
  TESSERA_CHECK(rows >= 0 && depth > 0, "bit-plane matrix: need rows >= 0 and depth > 0, got " +
                                            std::to_string(rows) + " x " + std::to_string(depth));
  TESSERA_CHECK(bits >= 1 && bits <= 8, "bit-plane matrix: bits must be 1..8, got " + std::to_string(bits));
  TESSERA_CHECK(encoding != BitplaneEncoding::binary || bits == 1,
                "bit-plane matrix: the binary {-1,+1} encoding has one bit, got " + std::to_string(bits));
  words_per_plane_ = (depth + 511) / 512 * 8;
  const size_t words = size_t(std::max<int64_t>(1, rows)) * size_t(words_per_row());
  void* memory = std::aligned_alloc(64, words * 8);
  if (!memory) throw Error("bit-plane matrix: out of memory for " + std::to_string(words * 8) + " bytes");
  std::memset(memory, 0, words * 8);
  data_ = std::shared_ptr<uint64_t>(static_cast<uint64_t*>(memory), std::free);
  row_sums_ = std::shared_ptr<int64_t>(new int64_t[size_t(std::max<int64_t>(1, rows))](),
                                       std::default_delete<int64_t[]>());
  if (encoding == BitplaneEncoding::binary) std::fill(row_sums_.get(), row_sums_.get() + rows, -depth);
}

int32_t BitplaneMatrix::min_value() const {
  switch (encoding_) {
    case BitplaneEncoding::signed_int:
      return -(int32_t(1) << (bits_ - 1));
    case BitplaneEncoding::binary:
      return -1;
    default:
      return 0;
  }
}

int32_t BitplaneMatrix::max_value() const {
  switch (encoding_) {
    case BitplaneEncoding::signed_int:
      return (int32_t(1) << (bits_ - 1)) - 1;
    case BitplaneEncoding::binary:
      return 1;
    default:
      return (int32_t(1) << bits_) - 1;
  }
}

int32_t BitplaneMatrix::value(int64_t r, int64_t k) const {
  TESSERA_CHECK(r >= 0 && r < rows_ && k >= 0 && k < depth_, "bit-plane matrix: element out of range");
  int64_t v = 0;
  for (int b = 0; b < bits_; ++b)
    if ((plane(r, b)[k / 64] >> (k % 64)) & 1) v += plane_weight(encoding_, bits_, b);
  return encoding_ == BitplaneEncoding::binary ? int32_t(2 * v - 1) : int32_t(v);
}

void BitplaneMatrix::update_row_sums(int64_t begin, int64_t end) {
  interleaved_ = std::make_shared<Interleaved>();  // the planes changed
  const detail::BitplanePopcountFn popcount = kernel_table(BitplaneKernel::automatic).popcount;
  for (int64_t r = begin; r < end; ++r) {
    int64_t sum = 0;
    for (int b = 0; b < bits_; ++b) sum += plane_weight(encoding_, bits_, b) * popcount(plane(r, b), words_per_plane_);
    row_sums_.get()[r] = encoding_ == BitplaneEncoding::binary ? 2 * sum - depth_ : sum;
  }
}

void quantize_to_codes(const float* x, int64_t n, float scale, int32_t zero_point, int bits, uint8_t* codes,
                       BitplaneKernel kernel) {
  TESSERA_CHECK(bits >= 1 && bits <= 8, "bit-plane quantization: bits must be 1..8, got " + std::to_string(bits));
  TESSERA_CHECK(scale > 0.f, "bit-plane quantization: the scale must be positive");
  if (n > 0) kernel_table(kernel).quantize(x, n, scale, float(zero_point), float((1 << bits) - 1), codes);
}

void pack_bitplane_codes(const uint8_t* codes, int64_t ld, int64_t row_begin, int64_t row_count,
                         BitplaneMatrix& out, BitplaneKernel kernel) {
  TESSERA_CHECK(row_begin >= 0 && row_count >= 0 && row_begin + row_count <= out.rows(),
                "bit-plane packing: rows out of range");
  TESSERA_CHECK(ld >= out.depth(), "bit-plane packing: row stride shorter than the depth");
  if (row_count == 0) return;
  kernel_table(kernel).pack(codes, ld, row_count, out.depth(), out.bits(), out.words_per_plane(),
                            out.row(row_begin));
  out.update_row_sums(row_begin, row_begin + row_count);
}

BitplaneMatrix pack_bitplanes(const int32_t* values, int64_t rows, int64_t depth, int64_t ld, int bits,
                              BitplaneEncoding encoding, BitplaneKernel kernel) {
  BitplaneMatrix out(rows, depth, bits, encoding);
  TESSERA_CHECK(ld >= depth, "bit-plane packing: row stride shorter than the depth");
  std::vector<uint8_t> codes(size_t(rows * depth));
  const int32_t low = out.min_value(), high = out.max_value();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < depth; ++k) {
      const int32_t v = values[r * ld + k];
      const bool valid = encoding == BitplaneEncoding::binary ? (v == -1 || v == 1) : (v >= low && v <= high);
      if (!valid)
        throw Error("bit-plane packing: value " + std::to_string(v) + " at (" + std::to_string(r) + ", " +
                    std::to_string(k) + ") does not fit " + std::to_string(bits) + "-bit " +
                    bitplane_encoding_name(encoding) + " (" + std::to_string(low) + " .. " + std::to_string(high) +
                    (encoding == BitplaneEncoding::binary ? ", -1 or +1 only)" : ")"));
      codes[size_t(r * depth + k)] = encoding == BitplaneEncoding::binary ? uint8_t(v > 0) : uint8_t(v & 0xff);
    }
  pack_bitplane_codes(codes.data(), depth, 0, rows, out, kernel);
  return out;
}

void bitplane_gemm_i64(const BitplaneMatrix& x, const BitplaneMatrix& y, int64_t* c, int64_t ldc, ThreadPool* pool,
                       BitplaneKernel kernel) {
  run_tiles(x, y, pool, kernel, [&](int64_t r0, int64_t c0, int rows, int cols, const int64_t* products,
                                      int64_t ld) {
    for (int r = 0; r < rows; ++r)
      for (int j = 0; j < cols; ++j) c[(r0 + r) * ldc + c0 + j] = products[r * ld + j];
  });
}

void bitplane_gemm_i32(const BitplaneMatrix& x, const BitplaneMatrix& y, int32_t* c, int64_t ldc, ThreadPool* pool,
                       BitplaneKernel kernel) {
  const double bound = double(x.depth()) * double(max_magnitude(x)) * double(max_magnitude(y));
  TESSERA_CHECK(bound < 2147483647.0, "bit-plane GEMM: K = " + std::to_string(x.depth()) +
                                          " could overflow int32 at these bit widths; use bitplane_gemm_i64");
  run_tiles(x, y, pool, kernel, [&](int64_t r0, int64_t c0, int rows, int cols, const int64_t* products,
                                      int64_t ld) {
    for (int r = 0; r < rows; ++r)
      for (int j = 0; j < cols; ++j) c[(r0 + r) * ldc + c0 + j] = int32_t(products[r * ld + j]);
  });
}

void bitplane_gemm_f32(const BitplaneMatrix& x, const BitplaneMatrix& y, float* c, int64_t ldc,
                       const BitplaneEpilogue& e, ThreadPool* pool, BitplaneKernel kernel) {
  const int64_t K = x.depth();
  run_tiles(x, y, pool, kernel, [&](int64_t r0, int64_t c0, int rows, int cols, const int64_t* products,
                                      int64_t ld) {
    for (int r = 0; r < rows; ++r) {
      const int64_t row = r0 + r;
      const float row_scale = e.scale * (e.x_scales ? e.x_scales[row] : 1.f);
      const float row_bias = e.bias_per_row ? e.bias_per_row[row] : 0.f;
      const int64_t row_correction = int64_t(e.y_zero_point) * x.row_sum(row);
      for (int j = 0; j < cols; ++j) {
        const int64_t col = c0 + j;
        const int64_t centered = products[r * ld + j] - int64_t(e.x_zero_point) * y.row_sum(col) - row_correction +
                                 K * int64_t(e.x_zero_point) * int64_t(e.y_zero_point);
        float value = row_scale * (e.y_scales ? e.y_scales[col] : 1.f) * float(centered) + row_bias +
                      (e.bias_per_column ? e.bias_per_column[col] : 0.f);
        if (e.relu) value = std::max(value, 0.f);
        c[row * ldc + col] = value;
      }
    }
  });
}

}  // namespace tessera::compression
