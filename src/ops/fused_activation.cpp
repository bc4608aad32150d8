// Mapping between ONNX activation ops and the unary primitive used as a fused epilogue.
#include "ops/fused_activation.h"

namespace tessera {

bool activation_from_onnx(const std::string& op, float alpha, float beta,
                          primitives::UnaryParams* p) {
  using primitives::UnaryKind;
  p->alpha = alpha;
  p->beta = beta;
  if (op == "Relu") p->kind = UnaryKind::relu;
  else if (op == "LeakyRelu") p->kind = UnaryKind::leaky_relu;
  else if (op == "Clip") p->kind = UnaryKind::clip;
  else if (op == "Sigmoid") p->kind = UnaryKind::sigmoid;
  else if (op == "Tanh") p->kind = UnaryKind::tanh;
  else if (op == "HardSigmoid") p->kind = UnaryKind::hard_sigmoid;
  else if (op == "HardSwish") p->kind = UnaryKind::hard_swish;
  else if (op == "Elu") p->kind = UnaryKind::elu;
  else if (op == "Gelu") p->kind = UnaryKind::gelu_erf;
  else if (op == kFusedGeluTanh) p->kind = UnaryKind::gelu_tanh;
  else return false;
  return true;
}

primitives::UnaryParams fused_activation(const Node& node) {
  primitives::UnaryParams params;
  std::string op = node.attributes.get_string(kFusedActivationAttribute, "");
  if (op.empty()) return params;
  activation_from_onnx(op, node.attributes.get_float(kFusedAlphaAttribute, 0.f),
                       node.attributes.get_float(kFusedBetaAttribute, 0.f), &params);
  return params;
}

}  // namespace tessera
