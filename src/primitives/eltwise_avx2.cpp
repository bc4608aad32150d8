// AVX2 element-wise kernels: the templates of eltwise_vector.h instantiated with 8-lane ymm
// traits, plus the activation entry the AVX2 GEMM epilogue calls.
#include "primitives/eltwise_vector.h"
#include "primitives/vector_activation.h"

namespace tessera::primitives::detail {

namespace {
using Kernels = EltwiseVector<Avx2>;
}  // namespace

void activation_avx2(const UnaryParams& params, __m256* values, int count) {
  Kernels::activation(params, values, count);
}

namespace {

// One 8 x 8 block in registers: 32-bit interleaves of row pairs, 64-bit shuffles of those, then
// the 128-bit halves of rows 0-3 and 4-7 paired up.
void transpose_8x8(const uint32_t* src, int64_t ld_src, uint32_t* dst, int64_t ld_dst) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(reinterpret_cast<const float*>(src + i * ld_src));
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int g = 0; g < 2; ++g) {
    r[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  auto out = [&](int row) { return reinterpret_cast<float*>(dst + row * ld_dst); };
  for (int q = 0; q < 4; ++q) {
    _mm256_storeu_ps(out(q), _mm256_permute2f128_ps(r[q], r[4 + q], 0x20));
    _mm256_storeu_ps(out(4 + q), _mm256_permute2f128_ps(r[q], r[4 + q], 0x31));
  }
}

}  // namespace

constinit const EltwiseKernels kEltwiseAvx2 = {Kernels::unary, Kernels::binary_row, Kernels::reduce_rows,
                                               Kernels::reduce_cols, Kernels::online_softmax_block,
                                                 Kernels::add_layer_norm_rows,
                                               transpose_4byte_by_blocks<8, transpose_8x8>};

}  // namespace tessera::primitives::detail
