// Registers every compression method's operators (see compression_operators.h).
#include "compression/compression_operators.h"

namespace tessera {

void register_compression_operators(OperatorRegistry& registry) {
  register_bitplane_operators(registry);
  register_lut_gemm_operators(registry);
  register_sparse_operators(registry);
  register_winograd_int8_operators(registry);
}

}  // namespace tessera
