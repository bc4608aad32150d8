// Pass: Conv -> Add(other) where both operands have the same known shape becomes a Conv whose
// epilogue adds `other` (input "tessera.residual_input"), saving one pass over the output.
#include "graph/passes/pass_utils.h"
#include "graph/passes/passes.h"

namespace tessera {

int fuse_residual_add(Graph& graph) {
  auto consumers = graph.consumers();
  auto producers = graph.producers();
  std::vector<bool> remove(graph.nodes.size(), false);
  int fused = 0;
  for (size_t n = 0; n < graph.nodes.size(); ++n) {
    Node& add = graph.nodes[n];
    if (add.op_type != "Add" || !add.domain.empty() || add.inputs.size() != 2) continue;
    for (int side = 0; side < 2; ++side) {
      int conv_out = add.inputs[size_t(side)], other = add.inputs[size_t(1 - side)];
      if (conv_out < 0 || other < 0 || conv_out == other) continue;
      int p = producers[size_t(conv_out)];
      if (p < 0 || remove[size_t(p)]) continue;
      Node& conv = graph.nodes[size_t(p)];
      if (conv.op_type != "Conv" || !conv.domain.empty() || conv.attributes.has("tessera.activation") ||
          conv.attributes.has("tessera.residual_input") || conv.outputs.size() != 1)
        continue;
      if (!pass_utils::single_consumer(graph, consumers, conv_out)) continue;
      const Value& a = graph.values[size_t(conv_out)];
      const Value& b = graph.values[size_t(other)];
      if (!pass_utils::all_dims_known(a) || !pass_utils::all_dims_known(b) ||
          pass_utils::known_shape(a) != pass_utils::known_shape(b) || !a.has_type || !b.has_type ||
          a.dtype != DType::f32 || b.dtype != DType::f32)
        continue;
      while (conv.inputs.size() < 3) conv.inputs.push_back(-1);  // keep the bias slot
      conv.inputs.resize(3);
      conv.inputs.push_back(other);
      conv.attributes.set_int("tessera.residual_input", 3);
      conv.outputs[0] = add.outputs[0];
      remove[n] = true;
      ++fused;
      break;
    }
  }
  pass_utils::erase_nodes(graph, remove);
  return fused;
}

}  // namespace tessera
