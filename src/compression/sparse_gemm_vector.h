// The register-tiled sparse kernels, written once over a vector-traits type and instantiated by
// sparse_gemm_avx512.cpp (16 lanes) and sparse_gemm_avx2.cpp (8 lanes) with their own flags.
// Include only from those files: the traits' intrinsics need the file's target flags.
#pragma once
#include <algorithm>
#include <utility>

#include "compression/sparse_gemm.h"

namespace tessera::sparse::vector_kernels {

// Vector j of a tile row at `in`; the last one masked when the tile has a tail.
template <class V, int J, bool Tail, class Mask>
inline __attribute__((always_inline)) typename V::Reg load_lane_group(const float* in, int j, Mask mask) {
  return (Tail && j == J - 1) ? V::load_masked(in + j * V::kLanes, mask) : V::load(in + j * V::kLanes);
}

// A tile is R output rows x J vectors of columns; the last vector is masked when Tail. For each
// non-zero w[r, k] the row k of X (the tile's columns) is multiplied by the broadcast weight and
// added to row r's accumulators: no multiplications by zero weights, and X's row is read from
// L1 because the R rows walk the reduction axis together, one kReductionBlock at a time.
template <class V, int R, int J, bool Tail>
void csr_tile(const CsrMatrix& w, int64_t row0, int64_t col0, int tail_lanes, const float* x, int64_t ldx,
              float* y, int64_t ldy) {
  using Reg = typename V::Reg;
  Reg acc[R][J];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < J; ++j) acc[r][j] = V::zero();
  const auto mask = V::tail_mask(Tail ? tail_lanes : V::kLanes);
  const int64_t blocks = w.blocks();
  const float* values = w.value.data();
  const int32_t* columns = w.column.data();
  const float* xc = x + col0;
  auto row_block = [&](Reg(&a)[J], int64_t row, int64_t block) __attribute__((always_inline)) {
    const int64_t* starts = w.block_start.data() + row * (blocks + 1) + block;
    const int64_t end = starts[1];
    // Non-zeros in pairs into two accumulator sets: one set alone would chain every FMA of a row
    // on the previous one's latency (4 cycles), leaving the FMA ports half idle.
    Reg b[J];
    for (int j = 0; j < J; ++j) b[j] = V::zero();
    int64_t i = starts[0];
    for (; i + 1 < end; i += 2) {
      const Reg v0 = V::broadcast(values[i]), v1 = V::broadcast(values[i + 1]);
      const float* in0 = xc + int64_t(columns[i]) * ldx;
      const float* in1 = xc + int64_t(columns[i + 1]) * ldx;
#pragma GCC unroll 8
      for (int j = 0; j < J; ++j) {
        a[j] = V::fmadd(v0, load_lane_group<V, J, Tail>(in0, j, mask), a[j]);
        b[j] = V::fmadd(v1, load_lane_group<V, J, Tail>(in1, j, mask), b[j]);
      }
    }
    if (i < end) {
      const Reg v = V::broadcast(values[i]);
      const float* in = xc + int64_t(columns[i]) * ldx;
#pragma GCC unroll 8
      for (int j = 0; j < J; ++j) a[j] = V::fmadd(v, load_lane_group<V, J, Tail>(in, j, mask), a[j]);
    }
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) a[j] = V::add(a[j], b[j]);
  };
  for (int64_t block = 0; block < blocks; ++block)
    [&]<int... rs>(std::integer_sequence<int, rs...>) {
      (row_block(acc[rs], row0 + rs, block), ...);
    }(std::make_integer_sequence<int, R>());
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < J; ++j) {
      float* out = y + (row0 + r) * ldy + col0 + j * V::kLanes;
      if (Tail && j == J - 1) V::store_masked(out, mask, acc[r][j]);
      else V::store(out, acc[r][j]);
    }
}

// The N:M tile: the same walk with implicit structure (every row has n entries per group of m
// columns, the column being the group's first plus a one-byte offset) and no row bounds to read.
template <class V, int R, int J, bool Tail>
void n_of_m_tile(const NOfMMatrix& w, int64_t row0, int64_t col0, int tail_lanes, const float* x, int64_t ldx,
                 float* y, int64_t ldy) {
  using Reg = typename V::Reg;
  Reg acc[R][J];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < J; ++j) acc[r][j] = V::zero();
  const auto mask = V::tail_mask(Tail ? tail_lanes : V::kLanes);
  const int64_t groups = w.groups(), per_row = w.entries_per_row();
  const int n = w.n, m = w.m;
  const int64_t groups_per_block = std::max<int64_t>(1, kReductionBlock / m);
  const float* xc = x + col0;
  auto row_block = [&](Reg(&a)[J], int64_t row, int64_t g0, int64_t g1) __attribute__((always_inline)) {
    const float* values = w.value.data() + row * per_row;
    const uint8_t* offsets = w.offset.data() + row * per_row;
    Reg b[J];
    for (int j = 0; j < J; ++j) b[j] = V::zero();
    for (int64_t g = g0; g < g1; ++g) {
      const float* group_x = xc + g * m * ldx;
      int e = 0;
      for (; e + 1 < n; e += 2) {  // in pairs, two accumulator sets (see csr_tile)
        const int64_t slot = g * n + e;
        const Reg v0 = V::broadcast(values[slot]), v1 = V::broadcast(values[slot + 1]);
        const float* in0 = group_x + int64_t(offsets[slot]) * ldx;
        const float* in1 = group_x + int64_t(offsets[slot + 1]) * ldx;
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) {
          a[j] = V::fmadd(v0, load_lane_group<V, J, Tail>(in0, j, mask), a[j]);
          b[j] = V::fmadd(v1, load_lane_group<V, J, Tail>(in1, j, mask), b[j]);
        }
      }
      if (e < n) {
        const int64_t slot = g * n + e;
        const Reg v = V::broadcast(values[slot]);
        const float* in = group_x + int64_t(offsets[slot]) * ldx;
        // Odd n: alternate the set by group so the lone entries do not chain either.
        if (g & 1) {
#pragma GCC unroll 8
          for (int j = 0; j < J; ++j) b[j] = V::fmadd(v, load_lane_group<V, J, Tail>(in, j, mask), b[j]);
        } else {
#pragma GCC unroll 8
          for (int j = 0; j < J; ++j) a[j] = V::fmadd(v, load_lane_group<V, J, Tail>(in, j, mask), a[j]);
        }
      }
    }
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) a[j] = V::add(a[j], b[j]);
  };
  for (int64_t g0 = 0; g0 < groups; g0 += groups_per_block) {
    const int64_t g1 = std::min(groups, g0 + groups_per_block);
    [&]<int... rs>(std::integer_sequence<int, rs...>) {
      (row_block(acc[rs], row0 + rs, g0, g1), ...);
    }(std::make_integer_sequence<int, R>());
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < J; ++j) {
      float* out = y + (row0 + r) * ldy + col0 + j * V::kLanes;
      if (Tail && j == J - 1) V::store_masked(out, mask, acc[r][j]);
      else V::store(out, acc[r][j]);
    }
}

// Tile kernels by (rows, vectors, tail), R in 1..MaxR, J in 1..MaxJ.
template <class Matrix>
using TileFn = void (*)(const Matrix&, int64_t, int64_t, int, const float*, int64_t, float*, int64_t);

template <class V, class Matrix, int MaxR, int MaxJ, template <class, int, int, bool> class Tile>
struct TileTable {
  TileFn<Matrix> fn[MaxR][MaxJ][2];
  constexpr TileTable() : fn{} {
    fill(std::make_integer_sequence<int, MaxR * MaxJ>());
  }
  template <int... is>
  constexpr void fill(std::integer_sequence<int, is...>) {
    ((fn[is / MaxJ][is % MaxJ][0] = &Tile<V, is / MaxJ + 1, is % MaxJ + 1, false>::run,
      fn[is / MaxJ][is % MaxJ][1] = &Tile<V, is / MaxJ + 1, is % MaxJ + 1, true>::run),
     ...);
  }
};

template <class V, int R, int J, bool Tail>
struct CsrTile {
  static void run(const CsrMatrix& w, int64_t r0, int64_t c0, int tail, const float* x, int64_t ldx, float* y,
                  int64_t ldy) {
    csr_tile<V, R, J, Tail>(w, r0, c0, tail, x, ldx, y, ldy);
  }
};
template <class V, int R, int J, bool Tail>
struct NOfMTile {
  static void run(const NOfMMatrix& w, int64_t r0, int64_t c0, int tail, const float* x, int64_t ldx, float* y,
                  int64_t ldy) {
    n_of_m_tile<V, R, J, Tail>(w, r0, c0, tail, x, ldx, y, ldy);
  }
};

// Covers [row_begin, row_end) x [col_begin, col_end) with tiles: strips of MaxJ vectors (the last
// one narrower, its last vector masked), each strip walked by groups of MaxR rows.
template <class V, int MaxR, int MaxJ, class Matrix, template <class, int, int, bool> class Tile>
void block(const Matrix& w, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end,
           const float* x, int64_t ldx, float* y, int64_t ldy) {
  static constexpr TileTable<V, Matrix, MaxR, MaxJ, Tile> table;
  const int64_t strip = int64_t(MaxJ) * V::kLanes;
  for (int64_t c0 = col_begin; c0 < col_end; c0 += strip) {
    const int64_t width = std::min(strip, col_end - c0);
    const int vectors = int((width + V::kLanes - 1) / V::kLanes);
    const int tail = int(width % V::kLanes);
    for (int64_t r0 = row_begin; r0 < row_end; r0 += MaxR) {
      const int rows = int(std::min<int64_t>(MaxR, row_end - r0));
      table.fn[rows - 1][vectors - 1][tail != 0](w, r0, c0, tail, x, ldx, y, ldy);
    }
  }
}

// y[0, rows) = sum over active inputs of value * w_transposed[index, 0:rows]: the outputs are
// walked in strips of J vectors kept in registers across all k active inputs.
template <class V, int J>
void dense_kwta(const float* w_transposed, int64_t rows, int64_t k, const int32_t* indices, const float* values,
                float* y) {
  using Reg = typename V::Reg;
  const int64_t strip = int64_t(J) * V::kLanes;
  int64_t r0 = 0;
  for (; r0 + strip <= rows; r0 += strip) {
    Reg acc[J];
    for (int j = 0; j < J; ++j) acc[j] = V::zero();
    for (int64_t i = 0; i < k; ++i) {
      const Reg v = V::broadcast(values[i]);
      const float* row = w_transposed + int64_t(indices[i]) * rows + r0;
#pragma GCC unroll 8
      for (int j = 0; j < J; ++j) acc[j] = V::fmadd(v, V::load(row + j * V::kLanes), acc[j]);
    }
    for (int j = 0; j < J; ++j) V::store(y + r0 + j * V::kLanes, acc[j]);
  }
  for (; r0 < rows; r0 += V::kLanes) {  // the rest, one (masked) vector at a time
    const auto mask = V::tail_mask(int(std::min<int64_t>(V::kLanes, rows - r0)));
    Reg acc = V::zero();
    for (int64_t i = 0; i < k; ++i)
      acc = V::fmadd(V::broadcast(values[i]),
                     V::load_masked(w_transposed + int64_t(indices[i]) * rows + r0, mask), acc);
    V::store_masked(y + r0, mask, acc);
  }
}

}  // namespace tessera::sparse::vector_kernels
