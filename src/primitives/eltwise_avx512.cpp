// AVX-512 element-wise kernels: the templates of eltwise_vector.h instantiated with 16-lane
// zmm traits, plus the activation entry the AVX-512 GEMM epilogue calls.
#include "primitives/eltwise_vector.h"
#include "primitives/vector_activation.h"

namespace tessera::primitives::detail {

namespace {
using Kernels = EltwiseVector<Avx512>;
}  // namespace

void activation_avx512(const UnaryParams& params, __m512* values, int count) {
  Kernels::activation(params, values, count);
}

constinit const EltwiseKernels kEltwiseAvx512 = {Kernels::unary, Kernels::binary_row, Kernels::reduce_rows,
                                                 Kernels::reduce_cols, Kernels::online_softmax_block,
                                                 Kernels::add_layer_norm_rows};

}  // namespace tessera::primitives::detail
