// Shape specialization and constant folding over the operator factories.
#include "runtime/specialize.h"

#include "ops/operator.h"

namespace tessera {

namespace {

std::string unsupported_message(const Node& node, int64_t opset) {
  std::string domain = node.domain.empty() ? "ai.onnx" : node.domain;
  bool known = OperatorRegistry::instance().supports(node.op_type, node.domain);
  return std::string(known ? "operator '" + node.op_type + "' is not supported at opset " +
                                 std::to_string(opset)
                           : "unsupported operator '" + node.op_type + "'") +
         " (domain " + domain + ", opset " + std::to_string(opset) + ") at node '" + node.name + "'";
}

void bind_input_shapes(Graph& graph, const std::map<std::string, Shape>& input_shapes) {
  std::map<std::string, int64_t> symbols;
  for (int id : graph.inputs) {
    Value& v = graph.values[size_t(id)];
    auto it = input_shapes.find(v.name);
    if (it == input_shapes.end()) throw Error("missing input '" + v.name + "'");
    const Shape& shape = it->second;
    if (v.has_shape) {
      if (v.dims.size() != shape.size())
        throw Error("input '" + v.name + "' has rank " + std::to_string(shape.size()) +
                    " but the model expects rank " + std::to_string(v.dims.size()) + " " +
                    "(shape " + shape_to_string(shape) + ")");
      for (size_t d = 0; d < shape.size(); ++d) {
        const Dim& dim = v.dims[d];
        if (dim.known() && dim.value != shape[d])
          throw Error("input '" + v.name + "' has shape " + shape_to_string(shape) +
                      " but the model expects dimension " + std::to_string(d) + " to be " +
                      std::to_string(dim.value));
        if (!dim.known() && !dim.symbol.empty()) {
          auto [sym, inserted] = symbols.emplace(dim.symbol, shape[d]);
          if (!inserted && sym->second != shape[d])
            throw Error("input '" + v.name + "' binds dimension '" + dim.symbol + "' to " +
                        std::to_string(shape[d]) + " but another input bound it to " +
                        std::to_string(sym->second));
        }
      }
    }
    v.has_shape = true;
    v.dims.clear();
    for (int64_t d : shape) v.dims.push_back(Dim{d, ""});
  }
}

}  // namespace

std::map<std::string, Shape> default_input_shapes(const Graph& graph,
                                                  const std::map<std::string, Shape>& given,
                                                  int64_t default_dim) {
  std::map<std::string, Shape> shapes;
  for (int id : graph.inputs) {
    const Value& v = graph.values[size_t(id)];
    auto it = given.find(v.name);
    if (it != given.end()) {
      shapes[v.name] = it->second;
      continue;
    }
    if (!v.has_shape) throw Error("input '" + v.name + "' has no declared shape; give one");
    Shape s;
    for (const Dim& d : v.dims) s.push_back(d.known() ? d.value : default_dim);
    shapes[v.name] = s;
  }
  return shapes;
}

SpecializeReport specialize_graph(Graph& graph, const std::map<std::string, Shape>& input_shapes,
                                  ThreadPool& pool, const std::map<std::string, Tensor>& input_values) {
  bind_input_shapes(graph, input_shapes);
  if (!input_values.empty()) {
    std::vector<int> still_inputs;
    for (int id : graph.inputs) {
      Value& v = graph.values[size_t(id)];
      auto it = input_values.find(v.name);
      if (it == input_values.end()) {
        still_inputs.push_back(id);
        continue;
      }
      if (v.has_type && it->second.dtype() != v.dtype)
        throw Error("input '" + v.name + "' must be " + dtype_name(v.dtype) + " but is " + dtype_name(it->second.dtype()));
      v.constant = it->second.clone();
      v.dtype = it->second.dtype();
      v.has_type = true;
    }
    graph.inputs = still_inputs;
  }
  SpecializeReport report;
  std::vector<bool> folded(graph.nodes.size(), false);
  const auto& registry = OperatorRegistry::instance();
  for (size_t n = 0; n < graph.nodes.size(); ++n) {
    Node& node = graph.nodes[n];
    const KernelFactory* factory = registry.find(node.op_type, graph.opset, node.domain);
    if (!factory) throw Error(unsupported_message(node, graph.opset));
    KernelCreateContext ctx{node, graph.opset, {}, {}, &pool};
    bool all_constant = true;
    for (int in : node.inputs) {
      ValueInfo info;
      if (in >= 0) {
        const Value& v = graph.values[size_t(in)];
        if (!v.has_type || !v.has_shape)
          throw Error("node '" + node.name + "' reads '" + v.name + "' whose type or shape is unknown");
        info.present = true;
        info.dtype = v.dtype;
        for (const Dim& d : v.dims) info.shape.push_back(d.value);
        if (v.is_constant()) info.constant = &v.constant;
        else all_constant = false;
      }
      ctx.inputs.push_back(info);
    }
    ctx.outputs.resize(node.outputs.size());
    std::unique_ptr<Kernel> kernel = (*factory)(ctx);
    for (size_t o = 0; o < node.outputs.size(); ++o) {
      if (node.outputs[o] < 0) continue;
      if (o >= ctx.outputs.size() || !ctx.outputs[o].present)
        throw Error(ctx.describe() + ": output " + std::to_string(o) + " is not produced");
      Value& v = graph.values[size_t(node.outputs[o])];
      v.dtype = ctx.outputs[o].dtype;
      v.has_type = v.has_shape = true;
      v.dims.clear();
      for (int64_t d : ctx.outputs[o].shape) v.dims.push_back(Dim{d, ""});
    }
    // Shape and Size read only their input's shape, which is known now.
    bool reads_only_shapes = node.domain.empty() && (node.op_type == "Shape" || node.op_type == "Size");
    if (!(all_constant || reads_only_shapes) || !kernel->foldable()) continue;
    // Every input is known now: compute the outputs once, at plan time.
    std::vector<Tensor> shape_placeholders;
    shape_placeholders.reserve(node.inputs.size());
    std::vector<const Tensor*> inputs;
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      int in = node.inputs[i];
      if (in < 0) {
        inputs.push_back(nullptr);
      } else if (graph.values[size_t(in)].is_constant()) {
        inputs.push_back(&graph.values[size_t(in)].constant);
      } else {
        // A zero-stride view over a tiny buffer: carries the shape, never read.
        const ValueInfo& info = ctx.inputs[i];
        shape_placeholders.push_back(
            Tensor(info.dtype, {1}).strided_view(info.shape, Shape(info.shape.size(), 0)));
        inputs.push_back(&shape_placeholders.back());
      }
    }
    std::vector<Tensor> outputs;
    std::vector<Tensor*> output_ptrs;
    outputs.reserve(node.outputs.size());
    for (size_t o = 0; o < node.outputs.size(); ++o) {
      outputs.emplace_back(node.outputs[o] >= 0 ? Tensor(ctx.outputs[o].dtype, ctx.outputs[o].shape)
                                                : Tensor());
      output_ptrs.push_back(node.outputs[o] >= 0 ? &outputs.back() : nullptr);
    }
    ExecContext exec{pool};
    kernel->run(inputs, output_ptrs, exec);
    for (size_t o = 0; o < node.outputs.size(); ++o)
      if (node.outputs[o] >= 0) graph.values[size_t(node.outputs[o])].constant = outputs[o];
    folded[n] = true;
    report.nodes_folded++;
  }
  std::vector<Node> kept;
  for (size_t n = 0; n < graph.nodes.size(); ++n)
    if (!folded[n]) kept.push_back(std::move(graph.nodes[n]));
  graph.nodes = std::move(kept);
  return report;
}

}  // namespace tessera
