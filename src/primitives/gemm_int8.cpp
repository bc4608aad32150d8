// Integer GEMM driver (gemm_int8.h): weight packing, tiling over the pool, kernel dispatch, and
// the portable kernel and reference. The vector kernels live in gemm_int8_avx2.cpp and
// gemm_int8_avx512vnni.cpp.
#include "primitives/gemm_int8.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "primitives/gemm_int8_kernels.h"
#include "primitives/primitives.h"

namespace tessera::primitives {

namespace {

template <typename T>
std::shared_ptr<T> aligned_array(int64_t count) {
  const size_t bytes = (size_t(std::max<int64_t>(count, 1)) * sizeof(T) + 63) / 64 * 64;
  T* p = static_cast<T*>(std::aligned_alloc(64, bytes));
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  return std::shared_ptr<T>(p, [](T* q) { std::free(q); });
}

const detail::Int8GemmKernel& active_kernel() {
  if (active_extensions().avx512_vnni) return detail::kInt8GemmAvx512Vnni;
  if (active_isa() >= Isa::avx2) return detail::kInt8GemmAvx2;
  return detail::kInt8GemmScalar;
}

// Per column of C: the int32 terms of the zero points that do not depend on the row.
std::vector<int32_t> zero_point_offsets(const PackedInt8B& B, const Int8Epilogue& e) {
  std::vector<int32_t> offsets;
  if (e.output == Int8Epilogue::Output::s32) return offsets;
  if (e.a_zero_point == 0 && !e.b_zero_points) return offsets;
  offsets.resize(size_t(B.panel_count() * 16), 0);
  for (int64_t n = 0; n < B.N(); ++n) {
    int64_t v = -int64_t(e.a_zero_point) * B.column_sums()[n];
    if (e.b_zero_points) v += B.K() * int64_t(e.a_zero_point) * e.b_zero_points[n];
    offsets[size_t(n)] = int32_t(v);
  }
  return offsets;
}

void check_epilogue(const Int8Epilogue& e) {
  if (e.output != Int8Epilogue::Output::s32 && !e.scale)
    throw std::invalid_argument("int8 GEMM: the epilogue needs a scale");
  if (e.output == Int8Epilogue::Output::u8 && (!(e.output_scale > 0.f) || !(e.sum_scale > 0.f)))
    throw std::invalid_argument("int8 GEMM: output scales must be positive");
}

size_t output_element_size(const Int8Epilogue& e) {
  return e.output == Int8Epilogue::Output::u8 ? 1 : 4;
}

}  // namespace

PackedInt8B::PackedInt8B(int64_t K, int64_t N, const int8_t* b, int64_t ldb, bool transposed)
    : K_(K), N_(N) {
  if (K <= 0 || N <= 0) throw std::invalid_argument("PackedInt8B: empty matrix");
  const int64_t quads = k_quads(), panels = panel_count();
  data_ = aligned_array<int8_t>(panels * quads * 64);
  column_sums_ = aligned_array<int32_t>(panels * 16);
  int8_t* out = data_.get();
  int32_t* sums = column_sums_.get();
  for (int64_t n = 0; n < N; ++n) {
    int8_t* panel = out + (n / 16) * quads * 64 + (n % 16) * 4;
    int32_t sum = 0;
    for (int64_t k = 0; k < K; ++k) {
      const int8_t v = transposed ? b[n * ldb + k] : b[k * ldb + n];
      panel[(k / 4) * 64 + k % 4] = v;
      sum += v;
    }
    sums[n] = sum;
  }
}

PreparedInt8Epilogue::PreparedInt8Epilogue(const PackedInt8B& B, const Int8Epilogue& epilogue)
    : epilogue_(epilogue), offsets_(zero_point_offsets(B, epilogue)) {
  check_epilogue(epilogue);
  // Folded below; the pointers need not outlive this object (b_zero_points is still read).
  epilogue_.residual = nullptr;
  epilogue_.scale = nullptr;
  epilogue_.bias = nullptr;
  if (epilogue.output == Int8Epilogue::Output::s32) return;
  const size_t padded = size_t(B.panel_count() * 16);
  multipliers_.assign(padded, 0.f);
  addends_.assign(padded, 0.f);
  // f32: f = acc * scale + bias. u8: f / output_scale = acc * (scale / os) + bias / os.
  const float to_units = epilogue.output == Int8Epilogue::Output::u8 ? 1.f / epilogue.output_scale : 1.f;
  for (int64_t n = 0; n < B.N(); ++n) {
    multipliers_[size_t(n)] = epilogue.scale[epilogue.scale_per_tensor ? 0 : n] * to_units;
    addends_[size_t(n)] = epilogue.bias ? epilogue.bias[n] * to_units : 0.f;
  }
}

int int8_gemm_tile_rows() { return active_kernel().mr; }

namespace detail {

void int8_epilogue_store(const Int8TileArgs& args, int r, int col, int32_t acc) {
  const Int8Epilogue& e = *args.epilogue;
  const int64_t n = args.col0 + col;
  if (e.output == Int8Epilogue::Output::s32) {
    static_cast<int32_t*>(args.c)[r * args.ldc + col] = acc;
    return;
  }
  int32_t corrected = acc;
  if (args.column_offsets) corrected += args.column_offsets[n];
  if (e.b_zero_points) corrected -= e.b_zero_points[n] * args.tile_row_sums[r];
  // The folded constants of PreparedInt8Epilogue, in the vector kernel's order of operations.
  float f = std::fma(float(corrected), args.multipliers[n], args.addends[n]);
  if (e.output == Int8Epilogue::Output::f32) {
    static_cast<float*>(args.c)[r * args.ldc + col] = e.relu ? std::max(f, 0.f) : f;
    return;
  }
  // nearbyint rounds half to even in the default rounding mode, as the vector conversions do.
  auto to_u8 = [](float units, int32_t zero_point, bool relu) {
    const float q = std::nearbyint(std::min(units, 1024.f)) + float(zero_point);
    return std::clamp(std::isnan(q) ? 0.f : q, relu ? float(zero_point) : 0.f, 255.f);
  };
  float q = to_u8(f, e.output_zero_point, e.relu);
  if (args.residual) {
    const float r_value = float(int32_t(args.residual[r * args.ld_residual + col]) - e.residual_zero_point);
    const float g = std::fma(r_value, e.residual_scale / e.sum_scale,
                             (q - float(e.output_zero_point)) * (e.output_scale / e.sum_scale));
    q = to_u8(g, e.sum_zero_point, e.relu_after_residual);
  }
  static_cast<uint8_t*>(args.c)[r * args.ldc + col] = uint8_t(q);
}

namespace {

void int8_tile_scalar(const Int8TileArgs& args) {
  constexpr int kMaxRows = 8, kMaxCols = 64;
  int32_t acc[kMaxRows][kMaxCols] = {};
  for (int64_t b = 0; b < args.batch; ++b) {
    const int8_t* bq = args.b;
    for (int64_t q = 0; q <= args.quads_per_batch; ++q) {
      const int bytes = q < args.quads_per_batch ? 4 : args.k_tail;
      if (bytes == 0) break;
      for (int r = 0; r < args.rows; ++r) {
        const uint8_t* a = args.a_batch[b] + args.a_offset + r * args.lda + q * 4;
        for (int p = 0; p < args.panels; ++p) {
          const int8_t* panel = bq + p * args.b_panel_stride + q * 64;
          for (int j = 0; j < 16; ++j)
            for (int t = 0; t < bytes; ++t) acc[r][p * 16 + j] += int32_t(a[t]) * panel[j * 4 + t];
        }
      }
    }
  }
  for (int r = 0; r < args.rows; ++r)
    for (int col = 0; col < args.cols; ++col) int8_epilogue_store(args, r, col, acc[r][col]);
}

// The batches of the scalar tile walk B continuously: batch b's quads follow batch b-1's.
void int8_tile_scalar_batched(const Int8TileArgs& args) {
  if (args.batch == 1) return int8_tile_scalar(args);
  constexpr int kMaxRows = 8, kMaxCols = 64;
  int32_t acc[kMaxRows][kMaxCols] = {};
  for (int64_t b = 0; b < args.batch; ++b)
    for (int64_t q = 0; q < args.quads_per_batch; ++q) {
      const int64_t global_quad = b * args.quads_per_batch + q;
      for (int r = 0; r < args.rows; ++r) {
        const uint8_t* a = args.a_batch[b] + args.a_offset + r * args.lda + q * 4;
        for (int p = 0; p < args.panels; ++p) {
          const int8_t* panel = args.b + p * args.b_panel_stride + global_quad * 64;
          for (int j = 0; j < 16; ++j)
            for (int t = 0; t < 4; ++t) acc[r][p * 16 + j] += int32_t(a[t]) * panel[j * 4 + t];
        }
      }
    }
  for (int r = 0; r < args.rows; ++r)
    for (int col = 0; col < args.cols; ++col) int8_epilogue_store(args, r, col, acc[r][col]);
}

}  // namespace

const Int8GemmKernel kInt8GemmScalar = {8, 4, int8_tile_scalar_batched};

}  // namespace detail

namespace {

// Runs the tiles of rows [m_begin, m_end) x panels [p_begin, p_end) of one call.
struct Int8Call {
  const detail::Int8GemmKernel* kernel;
  const uint8_t* const* a_batch;
  int64_t batch, k_per_batch, lda;
  const PackedInt8B* B;
  void* C;
  int64_t ldc;
  const PreparedInt8Epilogue* prepared;
  const uint8_t* residual;  // at the call's first row
  int64_t ld_residual;
  const int32_t* row_sums;  // per row of the call, or nullptr

  void run(int64_t m_begin, int64_t m_end, int64_t p_begin, int64_t p_end) const {
    detail::Int8TileArgs args;
    args.batch = batch;
    args.a_batch = a_batch;
    args.lda = lda;
    args.quads_per_batch = k_per_batch / 4;
    args.k_tail = int(k_per_batch % 4);
    args.b_panel_stride = B->panel_stride();
    args.ldc = ldc;
    args.epilogue = &prepared->epilogue();
    args.column_offsets = prepared->column_offsets();
    args.multipliers = prepared->multipliers();
    args.addends = prepared->addends();
    args.ld_residual = ld_residual;
    const size_t element = output_element_size(prepared->epilogue());
    const int mr = kernel->mr, np = kernel->max_panels;
    for (int64_t p = p_begin; p < p_end; p += np) {
      args.panels = int(std::min<int64_t>(np, p_end - p));
      args.cols = int(std::min<int64_t>(args.panels * 16, B->N() - p * 16));
      args.b = B->panel(p);
      args.col0 = p * 16;
      for (int64_t m = m_begin; m < m_end; m += mr) {
        args.rows = int(std::min<int64_t>(mr, m_end - m));
        args.a_offset = m * lda;
        args.tile_row_sums = row_sums ? row_sums + m : nullptr;
        args.residual = residual ? residual + m * ld_residual + p * 16 : nullptr;
        args.c = static_cast<char*>(C) + (m * ldc + p * 16) * int64_t(element);
        kernel->tile(args);
      }
    }
  }
};

}  // namespace

void gemm_u8s8_packed(int64_t M, const uint8_t* A, int64_t lda, const PackedInt8B& B, void* C, int64_t ldc,
                      const Int8Epilogue& epilogue, ThreadPool* pool) {
  if (B.empty()) throw std::invalid_argument("gemm_u8s8_packed: B was not packed");
  gemm_u8s8_packed(M, A, lda, B, C, ldc, PreparedInt8Epilogue(B, epilogue), epilogue.residual, epilogue.ld_residual,
                   pool);
}

void gemm_u8s8_packed(int64_t M, const uint8_t* A, int64_t lda, const PackedInt8B& B, void* C, int64_t ldc,
                      const PreparedInt8Epilogue& prepared, const uint8_t* residual, int64_t ld_residual,
                      ThreadPool* pool) {
  if (B.empty()) throw std::invalid_argument("gemm_u8s8_packed: B was not packed");
  const Int8Epilogue& epilogue = prepared.epilogue();
  if (M <= 0) return;
  std::vector<int32_t> row_sums;
  if (epilogue.b_zero_points && epilogue.output != Int8Epilogue::Output::s32) {
    row_sums.resize(size_t(M));
    for (int64_t m = 0; m < M; ++m) {
      int32_t s = 0;
      for (int64_t k = 0; k < B.K(); ++k) s += A[m * lda + k];
      row_sums[size_t(m)] = s;
    }
  }
  const detail::Int8GemmKernel& kernel = active_kernel();
  Int8Call call{&kernel, &A, 1, B.K(), lda, &B, C, ldc, &prepared, residual, ld_residual,
                row_sums.empty() ? nullptr : row_sums.data()};
  // Work items: blocks of rows x blocks of panels, so both tall and wide products split.
  const int64_t panels = B.panel_count();
  const int64_t panel_block = kernel.max_panels;
  const int64_t panel_blocks = (panels + panel_block - 1) / panel_block;
  const int64_t row_block = std::max<int64_t>(kernel.mr, (std::min<int64_t>(M, 8 * kernel.mr) / kernel.mr) * kernel.mr);
  const int64_t row_blocks = (M + row_block - 1) / row_block;
  const int64_t items = panel_blocks * row_blocks;
  auto run_items = [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t pb = item / row_blocks, rb = item % row_blocks;
      call.run(rb * row_block, std::min(M, (rb + 1) * row_block), pb * panel_block,
               std::min(panels, (pb + 1) * panel_block));
    }
  };
  const double ops = 2.0 * double(M) * double(B.N()) * double(B.K());
  if (pool && pool->size() > 1 && items > 1 && ops > 2e5) {
    pool->run_tasks(int(std::min<int64_t>(items, 1 << 20)), [&](int task) {
      // More items than tasks only past a million; then each task takes a contiguous share.
      const int tasks = int(std::min<int64_t>(items, 1 << 20));
      run_items(items * task / tasks, items * (task + 1) / tasks);
    });
  } else {
    run_items(0, items);
  }
}

void brgemm_u8s8(int64_t rows, const uint8_t* const* a_batch, int64_t batch, int64_t k_per_batch, int64_t lda,
                 const PackedInt8B& B, void* c, int64_t ldc, const PreparedInt8Epilogue& epilogue,
                 const uint8_t* residual, int64_t ld_residual, const int32_t* rowsum_a) {
  if (B.empty()) throw std::invalid_argument("brgemm_u8s8: B was not packed");
  const Int8Epilogue& e = epilogue.epilogue();
  if (batch > 1 && k_per_batch % 4 != 0)
    throw std::invalid_argument("brgemm_u8s8: k_per_batch must be a multiple of 4 when batched");
  if (batch * k_per_batch != B.K()) throw std::invalid_argument("brgemm_u8s8: batch * k_per_batch != K");
  if (e.b_zero_points && !rowsum_a) throw std::invalid_argument("brgemm_u8s8: row sums of A needed");
  if (rows <= 0) return;
  Int8Call call{&active_kernel(), a_batch, batch, k_per_batch, lda, &B, c, ldc, &epilogue, residual, ld_residual,
                rowsum_a};
  call.run(0, rows, 0, B.panel_count());
}

}  // namespace tessera::primitives
