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

constinit const EltwiseKernels kEltwiseAvx2 = {Kernels::unary, Kernels::binary_row, Kernels::reduce_rows,
                                               Kernels::reduce_cols, Kernels::online_softmax_block,
                                                 Kernels::add_layer_norm_rows};

}  // namespace tessera::primitives::detail
