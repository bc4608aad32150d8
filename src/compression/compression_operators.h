// Operators of the compression methods (bit-plane, LUT-GEMM, sparse, int8 Winograd; int8 runs on the standard
// QDQ operators, lowered by the lower_qdq_to_int8 pass): custom-domain
// ("tessera") nodes whose compressed weights are ordinary initializers, so a compressed graph
// can be saved as ONNX and loaded back. The registry calls this once at start-up.
#pragma once

namespace tessera {

class OperatorRegistry;

void register_compression_operators(OperatorRegistry& registry);

// One per method, each defined in that method's operator file.
void register_bitplane_operators(OperatorRegistry& registry);
void register_lut_gemm_operators(OperatorRegistry& registry);
void register_sparse_operators(OperatorRegistry& registry);
void register_winograd_int8_operators(OperatorRegistry& registry);

}  // namespace tessera
