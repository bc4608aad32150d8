// Pass: bypass Identity nodes and inference-mode Dropout nodes whose mask nobody reads.
#include "graph/passes/pass_utils.h"
#include "graph/passes/passes.h"

namespace tessera {

int remove_identity_nodes(Graph& graph) {
  auto consumers = graph.consumers();
  std::vector<bool> remove(graph.nodes.size(), false);
  int removed = 0;
  for (size_t n = 0; n < graph.nodes.size(); ++n) {
    Node& node = graph.nodes[n];
    if (!node.domain.empty() || node.inputs.empty() || node.inputs[0] < 0) continue;
    bool is_identity = node.op_type == "Identity";
    if (node.op_type == "Dropout") {
      bool mask_unused = node.outputs.size() < 2 || node.outputs[1] < 0 ||
                         (consumers[size_t(node.outputs[1])].empty() &&
                          !pass_utils::is_graph_output(graph, node.outputs[1]));
      // Opset 12+ takes training_mode as input 2; only a constant false (or absent) is inference.
      bool inference = true;
      if (node.inputs.size() > 2 && node.inputs[2] >= 0) {
        const Value& mode = graph.values[size_t(node.inputs[2])];
        inference = mode.is_constant() && mode.constant.numel() == 1 && mode.constant.value_as_double(0) == 0;
      }
      is_identity = mask_unused && inference && node.attributes.get_int("is_test", 1) != 0;
    }
    if (!is_identity || node.outputs.empty() || node.outputs[0] < 0) continue;
    int out = node.outputs[0];
    // Graph outputs keep their names, so an Identity that produces one stays.
    if (pass_utils::is_graph_output(graph, out)) continue;
    graph.replace_uses(out, node.inputs[0]);
    remove[n] = true;
    ++removed;
  }
  pass_utils::erase_nodes(graph, remove);
  return removed;
}

}  // namespace tessera
