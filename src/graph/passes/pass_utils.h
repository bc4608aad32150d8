// Small helpers shared by the graph passes.
#pragma once
#include <algorithm>
#include <cmath>
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

// The value of a one-element f32 constant.
inline bool scalar_constant(const Graph& g, int value, float* out) {
  const Tensor* t = constant_f32(g, value);
  if (!t || t->numel() != 1) return false;
  *out = t->data<float>()[0];
  return true;
}

// Whether `value` is a one-element f32 constant within a relative 1e-4 of `expected` (the
// constants exporters write for sqrt(2), 0.5, 0.044715...).
inline bool scalar_near(const Graph& g, int value, float expected) {
  float v;
  return scalar_constant(g, value, &v) && std::fabs(v - expected) <= 1e-4f * std::fabs(expected);
}

// The default-domain node producing `value` if it is of type `op`, else nullptr.
inline const Node* producer_of(const Graph& g, const std::vector<int>& producers, int value, const char* op) {
  if (value < 0) return nullptr;
  const int p = producers[size_t(value)];
  if (p < 0) return nullptr;
  const Node& n = g.nodes[size_t(p)];
  return n.domain.empty() && n.op_type == op ? &n : nullptr;
}

// The other input of a two-input node, given one.
inline int other_input(const Node& n, int one) {
  return n.inputs.size() == 2 ? (n.inputs[0] == one ? n.inputs[1] : n.inputs[1] == one ? n.inputs[0] : -1) : -1;
}

// Drops the nodes flagged for removal, keeping the order of the rest.
inline void erase_nodes(Graph& g, const std::vector<bool>& remove) {
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!remove[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
}

}  // namespace tessera::pass_utils
