// Fused operators: nodes the graph passes make out of several ONNX ones.
#include "ops/operator.h"

namespace tessera {

std::unique_ptr<Kernel> create_attention(KernelCreateContext& ctx);       // attention.cpp
std::unique_ptr<Kernel> create_add_layer_norm(KernelCreateContext& ctx);  // add_layer_norm.cpp

// Operators only graph passes make, in Tessera's own domain.
void register_fused_operators(OperatorRegistry& registry) {
  registry.add("Attention", 1, 1000, create_attention, "tessera");
  registry.add("AddLayerNorm", 1, 1000, create_add_layer_norm, "tessera");
}

}  // namespace tessera
