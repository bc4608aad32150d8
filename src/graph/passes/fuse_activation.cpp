// Pass: a pointwise activation that is the only reader of a Conv/ConvTranspose/Gemm/MatMul output
// becomes that node's epilogue (attributes tessera.activation / _alpha / _beta).
#include <limits>

#include "graph/passes/pass_utils.h"
#include "graph/passes/passes.h"
#include "ops/fused_activation.h"

namespace tessera {

namespace {

// Reads the activation's parameters; false when they are not plan-time constants.
bool activation_parameters(const Graph& g, const Node& act, float* alpha, float* beta) {
  const std::string& op = act.op_type;
  if (op == "LeakyRelu") *alpha = act.attributes.get_float("alpha", 0.01f);
  else if (op == "HardSigmoid") {
    *alpha = act.attributes.get_float("alpha", 0.2f);
    *beta = act.attributes.get_float("beta", 0.5f);
  } else if (op == "Elu") *alpha = act.attributes.get_float("alpha", 1.f);
  else if (op == "Clip") {
    *alpha = act.attributes.get_float("min", std::numeric_limits<float>::lowest());
    *beta = act.attributes.get_float("max", std::numeric_limits<float>::max());
    for (size_t i = 1; i < act.inputs.size() && i < 3; ++i) {
      if (act.inputs[i] < 0) continue;
      const Tensor* bound = pass_utils::constant_f32(g, act.inputs[i]);
      if (!bound || bound->numel() != 1) return false;
      (i == 1 ? *alpha : *beta) = bound->data<float>()[0];
    }
  } else if (op == "Gelu") {
    const std::string approximate = act.attributes.get_string("approximate", "none");
    if (approximate != "none" && approximate != "tanh") return false;
  }
  return true;
}

}  // namespace

int fuse_activation(Graph& graph) {
  auto consumers = graph.consumers();
  auto producers = graph.producers();
  std::vector<bool> remove(graph.nodes.size(), false);
  int fused = 0;
  for (size_t n = 0; n < graph.nodes.size(); ++n) {
    Node& act = graph.nodes[n];
    if (!act.domain.empty() || act.inputs.empty() || act.inputs[0] < 0 || act.outputs.size() != 1) continue;
    float alpha = 0, beta = 0;
    primitives::UnaryParams params;
    if (!activation_from_onnx(act.op_type, 0, 0, &params)) continue;
    if (!activation_parameters(graph, act, &alpha, &beta)) continue;
    int x = act.inputs[0];
    int p = producers[size_t(x)];
    if (p < 0 || remove[size_t(p)] || !pass_utils::single_consumer(graph, consumers, x)) continue;
    Node& producer = graph.nodes[size_t(p)];
    const std::string& op = producer.op_type;
    if (!producer.domain.empty() || !(op == "Conv" || op == "Gemm" || op == "MatMul") ||
        producer.attributes.has(kFusedActivationAttribute) || producer.outputs.size() != 1)
      continue;
    const Value& v = graph.values[size_t(x)];
    if (v.has_type && v.dtype != DType::f32) continue;
    const bool gelu_tanh = act.op_type == "Gelu" && act.attributes.get_string("approximate", "none") == "tanh";
    producer.attributes.set_string(kFusedActivationAttribute, gelu_tanh ? kFusedGeluTanh : act.op_type);
    producer.attributes.set_float(kFusedAlphaAttribute, alpha);
    producer.attributes.set_float(kFusedBetaAttribute, beta);
    producer.outputs[0] = act.outputs[0];
    remove[n] = true;
    ++fused;
  }
  pass_utils::erase_nodes(graph, remove);
  return fused;
}

}  // namespace tessera
