// Vector activations shared by the element-wise kernels and the GEMM epilogues of one ISA.
// Only the *_avx2.cpp / *_avx512.cpp files include this; the definitions live in eltwise_<isa>.cpp.
#pragma once
#include <immintrin.h>

#include "primitives/kernels.h"

// GCC 12 reports the _mm512_undefined_* placeholders inside its own intrinsic headers as
// "may be used uninitialized" once they are inlined into these files; false positives.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace tessera::primitives::detail {

#if defined(__AVX512F__)
// Applies params to count vectors in place (the register tile of a GEMM store step).
void activation_avx512(const UnaryParams& params, __m512* values, int count);
#endif
#if defined(__AVX2__)
void activation_avx2(const UnaryParams& params, __m256* values, int count);
#endif

}  // namespace tessera::primitives::detail
