// The activation that the fusion pass folded into a Conv/Gemm/MatMul node, carried as node
// attributes: "tessera.activation" (ONNX op type of the activation) and its alpha/beta.
#pragma once
#include "primitives/primitives.h"
#include "tessera/graph.h"

namespace tessera {

constexpr const char* kFusedActivationAttribute = "tessera.activation";
constexpr const char* kFusedAlphaAttribute = "tessera.activation_alpha";
constexpr const char* kFusedBetaAttribute = "tessera.activation_beta";
// The fused activation name of Gelu with approximate = "tanh".
constexpr const char* kFusedGeluTanh = "Gelu:tanh";

// Maps an ONNX activation op (with its attributes/params) to a unary primitive; false if the
// op cannot be fused as a pointwise epilogue.
bool activation_from_onnx(const std::string& op_type, float alpha, float beta,
                          primitives::UnaryParams* params);
// The fused activation of a node, identity when none.
primitives::UnaryParams fused_activation(const Node& node);

}  // namespace tessera
