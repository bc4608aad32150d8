// GraphBuilder: hand-made graphs.
#include "graph/graph_builder.h"

namespace tessera {

int GraphBuilder::input(const std::string& name, Shape shape, DType dtype) {
  int id = g.add_value(name);
  Value& v = g.values[size_t(id)];
  v.dtype = dtype;
  v.has_type = v.has_shape = true;
  for (int64_t d : shape) v.dims.push_back(Dim{d, ""});
  g.inputs.push_back(id);
  return id;
}

int GraphBuilder::node(const std::string& op, std::vector<int> inputs, Attributes attributes) {
  Node n;
  n.op_type = op;
  n.name = g.unique_name(op + "_node");
  n.inputs = std::move(inputs);
  int out = g.add_value(g.unique_name(op + "_out"));
  n.outputs = {out};
  n.attributes = std::move(attributes);
  g.nodes.push_back(n);
  return out;
}

}  // namespace tessera
