// ISA dispatch of the fused depthwise plane kernel and the mapping from a fused activation to its
// clamp; the kernels themselves live in conv_depthwise_impl.h, compiled once per ISA.
#include "ops/conv_depthwise.h"

#include <limits>

#include "primitives/primitives.h"

namespace tessera {

bool depthwise_epilogue_for(const primitives::UnaryParams& activation, DepthwiseEpilogue* epilogue) {
  const float infinity = std::numeric_limits<float>::infinity();
  switch (activation.kind) {
    case primitives::UnaryKind::identity: epilogue->clamp = false; return true;
    case primitives::UnaryKind::relu:
      epilogue->clamp = true;
      epilogue->clamp_low = 0.f;
      epilogue->clamp_high = infinity;
      return true;
    case primitives::UnaryKind::clip:
      epilogue->clamp = true;
      epilogue->clamp_low = activation.alpha;
      epilogue->clamp_high = activation.beta;
      return true;
    default: epilogue->clamp = false; return false;
  }
}

void depthwise_plane_fused_f32(const DepthwisePlaneShape& shape, const float* input,
                               const float* weights, float bias, const DepthwiseEpilogue& epilogue,
                               float* output) {
  switch (primitives::active_isa()) {
    case primitives::Isa::avx512:
      return depthwise_avx512::plane_fused(shape, input, weights, bias, epilogue, output);
    case primitives::Isa::avx2:
      return depthwise_avx2::plane_fused(shape, input, weights, bias, epilogue, output);
    default: return depthwise_scalar::plane_fused(shape, input, weights, bias, epilogue, output);
  }
}

bool depthwise_plane_rows_fused_f32(const DepthwisePlaneShape& shape, const float* input,
                                    const float* weights, float bias, const DepthwiseEpilogue& epilogue,
                                    float* output, int64_t row_begin, int64_t row_end) {
  switch (primitives::active_isa()) {
    case primitives::Isa::avx512:
      return depthwise_avx512::plane_rows_fused(shape, input, weights, bias, epilogue, output, row_begin, row_end);
    case primitives::Isa::avx2:
      return depthwise_avx2::plane_rows_fused(shape, input, weights, bias, epilogue, output, row_begin, row_end);
    default:
      return depthwise_scalar::plane_rows_fused(shape, input, weights, bias, epilogue, output, row_begin, row_end);
  }
}

}  // namespace tessera
