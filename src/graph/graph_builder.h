// Builds graphs by hand (tests, benchmarks, programs that make models without ONNX): graph
// inputs with fixed shapes, constants, and one-output nodes named OP_node, OP_node_1, ...
#pragma once
#include <string>
#include <vector>

#include "tessera/graph.h"

namespace tessera {

struct GraphBuilder {
  Graph g;
  int input(const std::string& name, Shape shape, DType dtype = DType::f32);
  int constant(const std::string& name, Tensor t) { return g.add_constant(name, std::move(t)); }
  // A node of `op` reading `inputs`; returns its (new) output value.
  int node(const std::string& op, std::vector<int> inputs, Attributes attributes = {});
};

}  // namespace tessera
