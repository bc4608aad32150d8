// ISA detection (CPUID + XGETBV) and the public element-wise entry points, which forward to the
// kernel table of the active ISA. Built with baseline flags: only CPUID decides what runs.
#include <cpuid.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "primitives/kernels.h"

namespace tessera::primitives {

namespace {

uint64_t read_xcr0() {
  uint32_t eax = 0, edx = 0;
  // xgetbv is encoded by hand so this file needs no -mxsave.
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

Isa probe_cpu() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return Isa::scalar;
  const bool fma = ecx & (1u << 12), osxsave = ecx & (1u << 27), avx = ecx & (1u << 28),
             f16c = ecx & (1u << 29);
  // The OS must save the YMM (and for AVX-512 the opmask/ZMM) state, or the registers are
  // unusable even when the CPU has them.
  if (!osxsave || !avx) return Isa::scalar;
  const uint64_t xcr0 = read_xcr0();
  if ((xcr0 & 0x6) != 0x6) return Isa::scalar;
  if (__get_cpuid_max(0, nullptr) < 7) return Isa::scalar;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const bool avx2 = ebx & (1u << 5);
  // The AVX2 files are compiled with -mfma -mf16c too, so all three are required.
  if (!avx2 || !fma || !f16c) return Isa::scalar;
  const bool avx512f = ebx & (1u << 16), avx512dq = ebx & (1u << 17), avx512bw = ebx & (1u << 30),
             avx512vl = ebx & (1u << 31);
  if (avx512f && avx512dq && avx512bw && avx512vl && (xcr0 & 0xe0) == 0xe0) return Isa::avx512;
  return Isa::avx2;
}

CpuExtensions probe_extensions() {
  CpuExtensions found;
  if (probe_cpu() != Isa::avx512) return found;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  found.avx512_vnni = ecx & (1u << 11);
  found.avx512_bitalg = ecx & (1u << 12);
  found.avx512_vpopcntdq = ecx & (1u << 14);
  __cpuid_count(7, 1, eax, ebx, ecx, edx);
  found.avx512_bf16 = eax & (1u << 5);
  return found;
}

Isa isa_from_environment(Isa detected) {
  const char* value = std::getenv("TESSERA_ISA");
  if (!value) return detected;
  Isa wanted = detected;
  if (std::strcmp(value, "scalar") == 0)
    wanted = Isa::scalar;
  else if (std::strcmp(value, "avx2") == 0)
    wanted = Isa::avx2;
  else if (std::strcmp(value, "avx512") == 0)
    wanted = Isa::avx512;
  return wanted < detected ? wanted : detected;
}

std::atomic<int>& active_slot() {
  static std::atomic<int> slot{int(isa_from_environment(detected_isa()))};
  return slot;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return "scalar";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
  }
  return "unknown";
}

Isa detected_isa() {
  static const Isa detected = probe_cpu();
  return detected;
}

Isa active_isa() { return Isa(active_slot().load(std::memory_order_relaxed)); }

const CpuExtensions& detected_extensions() {
  static const CpuExtensions detected = probe_extensions();
  return detected;
}

CpuExtensions active_extensions() {
  return active_isa() == Isa::avx512 ? detected_extensions() : CpuExtensions{};
}

Isa set_isa(Isa isa) {
  const Isa clamped = isa < detected_isa() ? isa : detected_isa();
  active_slot().store(int(clamped), std::memory_order_relaxed);
  return clamped;
}

namespace detail {

const EltwiseKernels& eltwise_kernels(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return kEltwiseAvx512;
    case Isa::avx2:
      return kEltwiseAvx2;
    default:
      return kEltwiseScalar;
  }
}

const GemmKernel& gemm_kernel(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return kGemmAvx512;
    case Isa::avx2:
      return kGemmAvx2;
    default:
      return kGemmScalar;
  }
}

}  // namespace detail

void unary_f32(const UnaryParams& params, int64_t n, const float* x, float* y) {
  if (n <= 0) return;
  detail::eltwise_kernels(active_isa()).unary(params, n, x, y);
}

void binary_f32(BinaryKind kind, int64_t rows, int64_t cols, const float* a, int64_t a_row_stride,
                int64_t a_col_stride, const float* b, int64_t b_row_stride, int64_t b_col_stride, float* y,
                int64_t ldy) {
  if (rows <= 0 || cols <= 0) return;
  // An operand is "dense" when its rows follow each other with no gap and "scalar" when it is
  // one value; with dense/scalar operands and a dense output the whole matrix is one long row,
  // which keeps short rows (the common [N, C, 1, 1]-style shapes) in the vector loop.
  auto flat = [&](int64_t row_stride, int64_t col_stride) {
    return (col_stride == 1 && row_stride == cols) || (col_stride == 0 && row_stride == 0);
  };
  if (rows > 1 && ldy == cols && flat(a_row_stride, a_col_stride) && flat(b_row_stride, b_col_stride)) {
    cols *= rows;
    rows = 1;
  }
  const auto& kernels = detail::eltwise_kernels(active_isa());
  const bool unit_steps =
      (a_col_stride == 0 || a_col_stride == 1) && (b_col_stride == 0 || b_col_stride == 1);
  for (int64_t r = 0; r < rows; ++r) {
    const float* a_row = a + r * a_row_stride;
    const float* b_row = b + r * b_row_stride;
    float* y_row = y + r * ldy;
    if (unit_steps) {
      kernels.binary_row(kind, cols, a_row, a_col_stride, b_row, b_col_stride, y_row);
    } else {
      detail::binary_row_scalar(kind, cols, a_row, a_col_stride, b_row, b_col_stride, y_row);
    }
  }
}

void reduce_rows_f32(ReduceKind kind, int64_t rows, int64_t cols, const float* x, int64_t ldx, float* y) {
  if (rows <= 0) return;
  detail::eltwise_kernels(active_isa()).reduce_rows(kind, rows, cols, x, ldx, y);
}

void add_layer_norm_rows_f32(int64_t rows, int64_t cols, const float* x, const float* residual, int64_t ld,
                             float* sum_out, const float* scale, const float* bias, float epsilon, float* y) {
  if (rows <= 0 || cols <= 0) return;
  detail::eltwise_kernels(active_isa())
      .add_layer_norm_rows(rows, cols, x, residual, ld, sum_out, scale, bias, epsilon, y);
}

void online_softmax_block_f32(int64_t rows, int64_t cols, float* scores, int64_t ld, float* row_max,
                              float* row_sum, float* rescale) {
  if (rows <= 0) return;
  detail::eltwise_kernels(active_isa()).online_softmax_block(rows, cols, scores, ld, row_max, row_sum, rescale);
}

void reduce_cols_f32(ReduceKind kind, int64_t rows, int64_t cols, const float* x, int64_t ldx, float* y) {
  if (cols <= 0) return;
  detail::eltwise_kernels(active_isa()).reduce_cols(kind, rows, cols, x, ldx, y);
}

}  // namespace tessera::primitives
