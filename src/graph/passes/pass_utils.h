// Small helpers shared by the graph passes.
#pragma once
#include <algorithm>
#include <vector>

#include "tessera/graph.h"

namespace tessera::pass_utils {

inline bool is_graph_output(const Graph& g, int value) {
  return std::find(g.outputs.begin(), g.outputs.end(), value) != g.outputs.end();
}

// True when exactly one node reads `value` and it is not a graph output.
inline bool single_consumer(const Graph& g, const std::vector<std::vector<int>>& consumers, int value) {
  return value >= 0 && consumers[size_t(value)].size() == 1 && !is_graph_output(g, value);
}

inline bool all_dims_known(const Value& v) {
  if (!v.has_shape) return false;
  for (const Dim& d : v.dims)
    if (!d.known()) return false;
  return true;
}

inline Shape known_shape(const Value& v) {
  Shape s;
  for (const Dim& d : v.dims) s.push_back(d.value);
  return s;
}

inline const Tensor* constant_f32(const Graph& g, int value) {
  if (value < 0) return nullptr;
  const Value& v = g.values[size_t(value)];
  return v.is_constant() && v.constant.dtype() == DType::f32 ? &v.constant : nullptr;
}

// Drops the nodes flagged for removal, keeping the order of the rest.
inline void erase_nodes(Graph& g, const std::vector<bool>& remove) {
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!remove[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
}

}  // namespace tessera::pass_utils
