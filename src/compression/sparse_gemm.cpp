// Sparse weight formats (CSR, N:M, complementary packing) and the multithreaded drivers that
// split a product into blocks for the ISA kernels (sparse_gemm_{avx512,avx2,scalar}.cpp).
#include "compression/sparse_gemm.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "tessera/error.h"

namespace tessera::sparse {

// ---------------------------------------------------------------- CSR

CsrMatrix CsrMatrix::from_dense(const float* w, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0 || cols > INT32_MAX) throw Error("sparse matrix: bad shape");
  CsrMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.row_start.reserve(size_t(rows + 1));
  m.row_start.push_back(0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const float v = w[r * cols + c];
      if (v == 0.f) continue;
      m.column.push_back(int32_t(c));
      m.value.push_back(v);
    }
    m.row_start.push_back(int64_t(m.value.size()));
  }
  m.finish();
  return m;
}

CsrMatrix CsrMatrix::from_arrays(int64_t rows, int64_t cols, std::vector<int64_t> row_start,
                                 std::vector<int32_t> column, std::vector<float> value) {
  auto fail = [&](const std::string& why) {
    throw Error("sparse CSR weights [" + std::to_string(rows) + ", " + std::to_string(cols) + "]: " + why);
  };
  if (rows < 0 || cols < 0 || cols > INT32_MAX) fail("bad shape");
  if (int64_t(row_start.size()) != rows + 1) fail("row offsets must hold rows + 1 entries");
  if (column.size() != value.size()) fail("column indices and values differ in count");
  if (row_start[0] != 0 || row_start.back() != int64_t(value.size()))
    fail("row offsets must start at 0 and end at the number of values");
  for (int64_t r = 0; r < rows; ++r) {
    if (row_start[size_t(r + 1)] < row_start[size_t(r)]) fail("row offsets decrease at row " + std::to_string(r));
    for (int64_t i = row_start[size_t(r)]; i < row_start[size_t(r + 1)]; ++i) {
      if (column[size_t(i)] < 0 || column[size_t(i)] >= cols) fail("a column index is out of range");
      if (i > row_start[size_t(r)] && column[size_t(i)] <= column[size_t(i - 1)])
        fail("column indices must increase within a row");
    }
  }
  CsrMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.row_start = std::move(row_start);
  m.column = std::move(column);
  m.value = std::move(value);
  m.finish();
  return m;
}

void CsrMatrix::finish() {
  const int64_t b = blocks();
  block_start.assign(size_t(rows * (b + 1)), 0);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t i = row_start[size_t(r)];
    for (int64_t block = 0; block <= b; ++block) {
      const int64_t first_column = block * kReductionBlock;
      while (i < row_start[size_t(r + 1)] && column[size_t(i)] < first_column) ++i;
      block_start[size_t(r * (b + 1) + block)] = i;
    }
    block_start[size_t(r * (b + 1) + b)] = row_start[size_t(r + 1)];
  }
}

std::vector<float> CsrMatrix::to_dense() const {
  std::vector<float> w(size_t(rows * cols), 0.f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = row_start[size_t(r)]; i < row_start[size_t(r + 1)]; ++i)
      w[size_t(r * cols + column[size_t(i)])] = value[size_t(i)];
  return w;
}

// ---------------------------------------------------------------- N:M

NOfMMatrix NOfMMatrix::from_dense(const float* w, int64_t rows, int64_t cols, int n, int m) {
  if (n < 1 || m < 1 || n > m || m > 255)
    throw Error("N:M weights need 1 <= N <= M <= 255, got " + std::to_string(n) + ":" + std::to_string(m));
  NOfMMatrix s;
  s.rows = rows;
  s.cols = cols;
  s.n = n;
  s.m = m;
  const int64_t per_row = s.entries_per_row();
  s.value.assign(size_t(rows * per_row), 0.f);
  s.offset.assign(size_t(rows * per_row), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < s.groups(); ++g) {
      int stored = 0;
      for (int64_t c = g * m; c < std::min<int64_t>(cols, (g + 1) * m); ++c) {
        const float v = w[r * cols + c];
        if (v == 0.f) continue;
        if (stored == n)
          throw Error("weights are not " + std::to_string(n) + ":" + std::to_string(m) + " sparse: row " +
                      std::to_string(r) + " has more than " + std::to_string(n) + " non-zeros in columns " +
                      std::to_string(g * m) + ".." + std::to_string((g + 1) * m - 1) +
                      " (prune them with prune_n_of_m first)");
        const size_t slot = size_t(r * per_row + g * n + stored++);
        s.value[slot] = v;
        s.offset[slot] = uint8_t(c - g * m);
      }
    }
  return s;
}

NOfMMatrix NOfMMatrix::from_arrays(int64_t rows, int64_t cols, int n, int m, std::vector<float> value,
                                   std::vector<uint8_t> offset) {
  if (n < 1 || m < 1 || n > m || m > 255 || rows < 0 || cols < 0)
    throw Error("N:M weights: bad shape or N:M (" + std::to_string(n) + ":" + std::to_string(m) + ")");
  NOfMMatrix s;
  s.rows = rows;
  s.cols = cols;
  s.n = n;
  s.m = m;
  const size_t expected = size_t(rows * s.entries_per_row());
  if (value.size() != expected || offset.size() != expected)
    throw Error("N:M weights: expected " + std::to_string(expected) + " values and offsets, got " +
                std::to_string(value.size()) + " and " + std::to_string(offset.size()));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < s.groups(); ++g) {
      const int64_t length = std::min<int64_t>(m, cols - g * m);
      for (int j = 0; j < n; ++j)
        if (offset[size_t((r * s.groups() + g) * n + j)] >= length)
          throw Error("N:M weights: an offset points outside its group (row " + std::to_string(r) + ")");
    }
  s.value = std::move(value);
  s.offset = std::move(offset);
  return s;
}

std::vector<float> NOfMMatrix::to_dense() const {
  std::vector<float> w(size_t(rows * cols), 0.f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups(); ++g)
      for (int j = 0; j < n; ++j) {
        const size_t slot = size_t((r * groups() + g) * n + j);
        if (value[slot] != 0.f) w[size_t(r * cols + g * m + offset[slot])] = value[slot];
      }
  return w;
}

// ---------------------------------------------------------------- complementary

ComplementaryMatrix ComplementaryMatrix::pack(const float* w, int64_t rows, int64_t cols, int set_size) {
  if (set_size < 1 || set_size > 255)
    throw Error("complementary packing needs a set size in [1, 255], got " + std::to_string(set_size));
  ComplementaryMatrix c;
  c.rows = rows;
  c.cols = cols;
  c.set_size = set_size;
  c.sets = (rows + set_size - 1) / set_size;
  c.set_stride = (c.sets + 15) / 16 * 16;
  c.packed.assign(size_t(cols * c.set_stride), 0.f);
  c.owner.assign(size_t(cols * c.set_stride), 0);
  for (int64_t s = 0; s < c.sets; ++s)
    for (int64_t r = s * set_size; r < std::min<int64_t>(rows, (s + 1) * set_size); ++r)
      for (int64_t k = 0; k < cols; ++k) {
        const float v = w[r * cols + k];
        if (v == 0.f) continue;
        const size_t slot = size_t(k * c.set_stride + s);
        if (c.packed[slot] != 0.f)
          throw Error("complementary packing: rows " + std::to_string(s * set_size + c.owner[slot]) + " and " +
                      std::to_string(r) + " of one set both have a weight at input " + std::to_string(k) +
                      " (prune with prune_complementary first)");
        c.packed[slot] = v;
        c.owner[slot] = uint8_t(r - s * set_size);
      }
  return c;
}

std::vector<float> ComplementaryMatrix::unpack() const {
  std::vector<float> w(size_t(rows * cols), 0.f);
  for (int64_t k = 0; k < cols; ++k)
    for (int64_t s = 0; s < sets; ++s) {
      const size_t slot = size_t(k * set_stride + s);
      if (packed[slot] != 0.f) w[size_t((s * set_size + owner[slot]) * cols + k)] = packed[slot];
    }
  return w;
}

// ---------------------------------------------------------------- drivers

namespace {

// Columns per task: wide enough for the 64-column register strips, narrow enough to share out.
constexpr int64_t kTaskColumns = 128;
constexpr int64_t kRowQuantum = 4;  // the kernels' row group

void apply_epilogue(const SparseEpilogue& e, int64_t row_begin, int64_t row_end, int64_t col_begin,
                    int64_t col_end, float* y, int64_t ldy) {
  const int64_t width = col_end - col_begin;
  const bool activation = e.activation.kind != primitives::UnaryKind::identity;
  if (!e.bias_per_row && !e.residual && !activation) return;
  for (int64_t r = row_begin; r < row_end; ++r) {
    float* out = y + r * ldy + col_begin;
    if (e.bias_per_row) {
      const float b = e.bias_per_row[r];
      for (int64_t c = 0; c < width; ++c) out[c] += b;
    }
    if (e.residual) {
      const float* res = e.residual + r * e.ld_residual + col_begin;
      for (int64_t c = 0; c < width; ++c) out[c] += res[c];
    }
    if (activation) primitives::unary_f32(e.activation, width, out, out);
  }
}

template <typename BlockFn>
void run_blocks(int64_t rows, int64_t n, ThreadPool* pool, const BlockFn& block) {
  if (rows == 0 || n == 0) return;
  const int64_t threads = pool ? pool->size() : 1;
  const int64_t column_tasks = (n + kTaskColumns - 1) / kTaskColumns;
  // Enough tasks for dynamic balance (a few per thread), in whole row groups.
  const int64_t row_groups = (rows + kRowQuantum - 1) / kRowQuantum;
  const int64_t row_tasks =
      std::clamp<int64_t>((4 * threads + column_tasks - 1) / column_tasks, 1, row_groups);
  const int64_t tasks = column_tasks * row_tasks;
  auto run_task = [&](int64_t t) {
    const int64_t ct = t / row_tasks, rt = t % row_tasks;
    const int64_t r0 = (rt * row_groups / row_tasks) * kRowQuantum;
    const int64_t r1 = std::min(rows, ((rt + 1) * row_groups / row_tasks) * kRowQuantum);
    const int64_t c0 = ct * kTaskColumns, c1 = std::min(n, c0 + kTaskColumns);
    if (r0 < r1) block(r0, r1, c0, c1);
  };
  if (!pool || threads == 1 || tasks == 1) {
    for (int64_t t = 0; t < tasks; ++t) run_task(t);
    return;
  }
  pool->run_tasks(int(tasks), [&](int t) { run_task(t); });
}

}  // namespace

void csr_gemm(const CsrMatrix& w, int64_t n, const float* x, int64_t ldx, float* y, int64_t ldy,
              const SparseEpilogue& epilogue, ThreadPool* pool) {
  const primitives::Isa isa = primitives::active_isa();
  run_blocks(w.rows, n, pool, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    switch (isa) {
      case primitives::Isa::avx512: kernels_avx512::csr_block(w, r0, r1, c0, c1, x, ldx, y, ldy); break;
      case primitives::Isa::avx2: kernels_avx2::csr_block(w, r0, r1, c0, c1, x, ldx, y, ldy); break;
      default: kernels_scalar::csr_block(w, r0, r1, c0, c1, x, ldx, y, ldy);
    }
    apply_epilogue(epilogue, r0, r1, c0, c1, y, ldy);
  });
}

void n_of_m_gemm(const NOfMMatrix& w, int64_t n, const float* x, int64_t ldx, float* y, int64_t ldy,
                 const SparseEpilogue& epilogue, ThreadPool* pool) {
  const primitives::Isa isa = primitives::active_isa();
  run_blocks(w.rows, n, pool, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    switch (isa) {
      case primitives::Isa::avx512: kernels_avx512::n_of_m_block(w, r0, r1, c0, c1, x, ldx, y, ldy); break;
      case primitives::Isa::avx2: kernels_avx2::n_of_m_block(w, r0, r1, c0, c1, x, ldx, y, ldy); break;
      default: kernels_scalar::n_of_m_block(w, r0, r1, c0, c1, x, ldx, y, ldy);
    }
    apply_epilogue(epilogue, r0, r1, c0, c1, y, ldy);
  });
}

namespace {
void check_active(int64_t batch, int64_t k, int64_t cols, const int32_t* indices) {
  if (k < 0 || k > cols) throw Error("k-WTA product: k must lie in [0, inputs], got " + std::to_string(k));
  for (int64_t i = 0; i < batch * k; ++i)
    if (indices[i] < 0 || indices[i] >= cols)
      throw Error("k-WTA product: active input index " + std::to_string(indices[i]) + " is out of range [0, " +
                  std::to_string(cols) + ")");
}

template <typename SampleFn>
void run_samples(int64_t batch, ThreadPool* pool, const SampleFn& sample) {
  if (!pool || pool->size() == 1 || batch == 1) {
    for (int64_t b = 0; b < batch; ++b) sample(b);
    return;
  }
  pool->parallel_for(batch, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) sample(b);
  });
}
}  // namespace

void complementary_kwta_gemm(const ComplementaryMatrix& w, int64_t batch, int64_t k,
                             const int32_t* indices, const float* values, float* y, int64_t ldy,
                             ThreadPool* pool) {
  check_active(batch, k, w.cols, indices);
  const primitives::Isa isa = primitives::active_isa();
  run_samples(batch, pool, [&](int64_t b) {
    const int32_t* idx = indices + b * k;
    const float* val = values + b * k;
    switch (isa) {
      case primitives::Isa::avx512: return kernels_avx512::complementary_sample(w, k, idx, val, y + b * ldy);
      case primitives::Isa::avx2: return kernels_avx2::complementary_sample(w, k, idx, val, y + b * ldy);
      default: return kernels_scalar::complementary_sample(w, k, idx, val, y + b * ldy);
    }
  });
}

void dense_kwta_gemm(const float* w_transposed, int64_t rows, int64_t cols, int64_t batch, int64_t k,
                     const int32_t* indices, const float* values, float* y, int64_t ldy,
                     ThreadPool* pool) {
  check_active(batch, k, cols, indices);
  const primitives::Isa isa = primitives::active_isa();
  run_samples(batch, pool, [&](int64_t b) {
    const int32_t* idx = indices + b * k;
    const float* val = values + b * k;
    switch (isa) {
      case primitives::Isa::avx512:
        return kernels_avx512::dense_kwta_sample(w_transposed, rows, k, idx, val, y + b * ldy);
      case primitives::Isa::avx2:
        return kernels_avx2::dense_kwta_sample(w_transposed, rows, k, idx, val, y + b * ldy);
      default: return kernels_scalar::dense_kwta_sample(w_transposed, rows, k, idx, val, y + b * ldy);
    }
  });
}

}  // namespace tessera::sparse
