// Steps shared by the compression methods' graph rewrites (bit-plane, int8 Winograd, ...): a Relu
// that alone reads a rewritten node's output becomes its epilogue, and the end of a rewrite drops
// the replaced nodes and the float weights nobody reads any more.
#pragma once
#include <algorithm>
#include <vector>

#include "tessera/graph.h"

namespace tessera::compression {

// When the only reader of `node`'s first output is a Relu (and the output is not a graph output),
// the rewritten node takes over the Relu's outputs, records it as attribute activation = "Relu",
// and the Relu is marked for removal.
inline void absorb_single_relu(const Graph& graph, const std::vector<std::vector<int>>& consumers, const Node& node,
                               Node& rewritten, Attributes& attrs, std::vector<bool>& remove) {
  const int output = node.outputs[0];
  const auto& readers = consumers[size_t(output)];
  const bool graph_output = std::find(graph.outputs.begin(), graph.outputs.end(), output) != graph.outputs.end();
  if (readers.size() != 1 || graph_output) return;
  const Node& reader = graph.nodes[size_t(readers[0])];
  if (reader.domain.empty() && reader.op_type == "Relu" && reader.outputs.size() == 1) {
    attrs.set_string("activation", "Relu");
    rewritten.outputs = reader.outputs;
    remove[size_t(readers[0])] = true;
  }
}

// Drops the nodes marked in `remove` and the dead ones, re-sorts, and frees the constants no node
// or graph output reads (so the saved model holds only the compressed weights).
inline void finish_rewrite(Graph& graph, const std::vector<bool>& remove) {
  std::vector<Node> kept;
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    if (!remove[i]) kept.push_back(std::move(graph.nodes[i]));
  graph.nodes = std::move(kept);
  graph.remove_dead_nodes();
  graph.topological_sort();
  std::vector<bool> read(graph.values.size(), false);
  for (const Node& node : graph.nodes)
    for (int in : node.inputs)
      if (in >= 0) read[size_t(in)] = true;
  for (int out : graph.outputs) read[size_t(out)] = true;
  for (size_t v = 0; v < graph.values.size(); ++v)
    if (!read[v] && graph.values[v].is_constant()) graph.values[v].constant = Tensor();
}

}  // namespace tessera::compression
