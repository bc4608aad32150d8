// Internal kernel tables behind bitplane_gemm.h: one per kernel (portable, AVX2, AVX-512
// VPOPCNTDQ), each a register-tile microkernel and a code packer. Nothing here runs vector code.
#pragma once
#include <cstdint>

namespace tessera::compression::detail {

// One register tile: rows x cols raw products of X rows and Y rows (both packed along K).
// raw(r, c) = sum over plane pairs (j of X, i of Y) of +-2^(i+j) popcount(X_j AND Y_i) over
// `words` 64-bit words (a multiple of 8); the sign is negative when exactly one of the two planes
// is the top plane of a signed operand. With xor_mode (both binary {-1,+1}) raw is their dot
// product depth - 2 popcount(X XOR Y) (padding bits are zero in both, so they never differ).
// The kernels sum the pairs in Horner order of i + j (one shift per distinct i + j over the
// whole K), so the weights cost nothing inside the K loop.
struct BitplaneTileArgs {
  const uint64_t* x_rows[8];  // row r's first plane; planes follow words apart
  const uint64_t* y_rows[8];
  int rows = 0, cols = 0;  // <= the table's mr, nr
  int x_bits = 1, y_bits = 1;
  bool x_signed = false, y_signed = false;
  bool xor_mode = false;
  int64_t depth = 0;  // K, for xor_mode
  int64_t words = 0;  // words per plane
  // With BitplaneKernelTable::interleaved_columns the columns come as groups of eight instead
  // (BitplaneMatrix::interleaved_groups): y_groups[g] is group g's first plane, `groups` of them.
  const uint64_t* y_groups[8];
  int groups = 0;
  int64_t* raw = nullptr;  // raw[r * raw_ld + c]; raw_ld >= the table's nr
  int64_t raw_ld = 0;
};
using BitplaneTileFn = void (*)(const BitplaneTileArgs& args);

// codes[r * ld + k] (low `bits` bits of each byte) -> planes of rows [0, rows): row r plane b at
// planes + r * bits * words + b * words, `words` 64-bit words, zero past depth.
using BitplanePackFn = void (*)(const uint8_t* codes, int64_t ld, int64_t rows, int64_t depth, int bits,
                                int64_t words, uint64_t* planes);

// codes[i] = clamp(round_half_even(x[i] / scale) + zero_point, 0, levels) (NaN -> 0): exactly
// quantize_activation (bitplane_quantize.h), vectorized.
using BitplaneQuantizeFn = void (*)(const float* x, int64_t n, float scale, float zero_point, float levels,
                                    uint8_t* codes);
// Ones in n 64-bit words.
using BitplanePopcountFn = int64_t (*)(const uint64_t* words, int64_t n);

struct BitplaneKernelTable {
  int mr, nr;  // largest tile
  bool interleaved_columns;  // the tile reads y_groups, not y_rows
  BitplaneTileFn tile;
  BitplanePackFn pack;
  BitplaneQuantizeFn quantize;
  BitplanePopcountFn popcount;
};

extern const BitplaneKernelTable kBitplanePortable;
extern const BitplaneKernelTable kBitplaneAvx2;
extern const BitplaneKernelTable kBitplaneAvx512Popcnt;

// For each plane pair in Horner order: calls visit(y_plane i, x_plane j, negative, first_of_sum)
// where first_of_sum marks the first pair of each i + j after the first (the accumulators are
// doubled before it). Shared by the kernels so they agree on order and signs.
template <typename Visit>
inline void for_each_plane_pair(const BitplaneTileArgs& t, Visit&& visit) {
  const int top = t.x_bits + t.y_bits - 2;
  for (int s = top; s >= 0; --s) {
    const int i_begin = s - (t.x_bits - 1) > 0 ? s - (t.x_bits - 1) : 0;
    const int i_end = s < t.y_bits - 1 ? s : t.y_bits - 1;
    for (int i = i_begin; i <= i_end; ++i) {
      const int j = s - i;
      const bool negative = (t.y_signed && i == t.y_bits - 1) != (t.x_signed && j == t.x_bits - 1);
      visit(i, j, negative, s != top && i == i_begin);
    }
  }
}

}  // namespace tessera::compression::detail
