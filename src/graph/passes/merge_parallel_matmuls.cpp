// Pass: MatMuls that read the same input with constant 2-D weights of the same depth (the Q, K
// and V projections of an attention block) become one MatMul over the concatenated weights (and
// biases), followed by a Split into the original outputs: the input is packed and streamed once,
// and one larger GEMM keeps the cores busier than three small ones.
#include "graph/passes/pass_utils.h"
#include "graph/passes/passes.h"
#include "ops/fused_activation.h"

namespace tessera {

int merge_parallel_matmuls(Graph& graph) {
  const auto consumers = graph.consumers();
  std::vector<bool> remove(graph.nodes.size(), false);
  std::vector<Node> added;
  int merged = 0;
  for (size_t v = 0; v < consumers.size(); ++v) {  // the values that were there before this pass
    const Value& input = graph.values[v];
    if (input.is_constant() || input.dtype != DType::f32 || !pass_utils::all_dims_known(input) || input.dims.size() < 2)
      continue;
    const int64_t depth = input.dims.back().value;
    std::vector<size_t> group;
    for (int c : consumers[v]) {
      const Node& n = graph.nodes[size_t(c)];
      if (remove[size_t(c)] || !n.domain.empty() || n.op_type != "MatMul" || n.inputs.size() < 2 ||
          n.inputs[0] != int(v) || n.attributes.has(kFusedActivationAttribute) || n.outputs.size() != 1)
        continue;
      const Tensor* w = pass_utils::constant_f32(graph, n.inputs[1]);
      if (!w || w->rank() != 2 || w->dim(0) != depth || !pass_utils::all_dims_known(graph.values[size_t(n.outputs[0])]))
        continue;
      if (n.inputs.size() > 2 && !pass_utils::constant_f32(graph, n.inputs[2])) continue;
      group.push_back(size_t(c));
    }
    if (group.size() < 2) continue;
    int64_t total = 0;
    bool any_bias = false;
    for (size_t c : group) {
      total += graph.values[size_t(graph.nodes[c].inputs[1])].constant.dim(1);
      any_bias = any_bias || graph.nodes[c].inputs.size() > 2;
    }
    Tensor weights(DType::f32, {depth, total}), bias(DType::f32, {total});
    std::vector<int64_t> widths;
    int64_t column = 0;
    for (size_t c : group) {
      const Node& n = graph.nodes[c];
      const Tensor& w = graph.values[size_t(n.inputs[1])].constant;
      const int64_t width = w.dim(1);
      for (int64_t k = 0; k < depth; ++k)
        std::copy(w.data<float>() + k * width, w.data<float>() + (k + 1) * width, weights.data<float>() + k * total + column);
      if (n.inputs.size() > 2)
        std::copy(graph.values[size_t(n.inputs[2])].constant.data<float>(),
                  graph.values[size_t(n.inputs[2])].constant.data<float>() + width, bias.data<float>() + column);
      widths.push_back(width);
      column += width;
      remove[c] = true;
    }
    const std::string base = graph.nodes[group[0]].name;
    Node matmul;
    matmul.name = base + "/merged";
    matmul.op_type = "MatMul";
    matmul.inputs = {int(v), graph.add_constant(graph.unique_name(base + "/merged_weights"), weights)};
    if (any_bias) matmul.inputs.push_back(graph.add_constant(graph.unique_name(base + "/merged_bias"), bias));
    const int product = graph.add_value(graph.unique_name(base + "/merged_out"));
    matmul.outputs = {product};
    Node split;
    split.name = base + "/split";
    split.op_type = "Split";
    split.inputs = {product};
    split.attributes.set_int("axis", -1);
    if (graph.opset >= 13)
      split.inputs.push_back(graph.add_constant(graph.unique_name(base + "/split_sizes"), Tensor::from_int64(widths, {int64_t(widths.size())})));
    else
      split.attributes.set_ints("split", widths);
    for (size_t c : group) split.outputs.push_back(graph.nodes[c].outputs[0]);
    added.push_back(std::move(matmul));
    added.push_back(std::move(split));
    ++merged;
  }
  pass_utils::erase_nodes(graph, remove);
  for (Node& n : added) graph.nodes.push_back(std::move(n));
  return merged;
}

}  // namespace tessera
