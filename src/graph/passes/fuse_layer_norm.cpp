// Passes over layer normalization:
// - fuse_layer_norm: the decomposed form exporters write before opset 17,
//     mean = ReduceMean(x), d = x - mean, v = ReduceMean(d ^ 2), y = d / Sqrt(v + eps) [* gamma] [+ beta]
//   (reductions over the last axis), becomes one LayerNormalization node.
// - fuse_add_layer_norm: LayerNormalization of a residual sum a + b becomes tessera.AddLayerNorm,
//   one pass over the rows that also writes the sum when later nodes read it (pre-LN blocks).
#include "graph/passes/pass_utils.h"
#include "graph/passes/passes.h"

namespace tessera {

namespace {

using pass_utils::producer_of;

// A ReduceMean over the last axis only, keeping dims.
bool is_last_axis_mean(const Graph& g, const Node& n, int rank) {
  if (n.attributes.get_int("keepdims", 1) != 1) return false;
  std::vector<int64_t> axes = n.attributes.get_ints("axes");
  if (n.inputs.size() > 1 && n.inputs[1] >= 0) {
    const Value& a = g.values[size_t(n.inputs[1])];
    if (!a.is_constant()) return false;
    axes = a.constant.to_int64_vector();
  }
  return axes.size() == 1 && (axes[0] == -1 || axes[0] == rank - 1);
}

int rank_of(const Graph& g, int value) {
  const Value& v = g.values[size_t(value)];
  return v.has_shape ? int(v.dims.size()) : -1;
}

}  // namespace

int fuse_layer_norm(Graph& graph) {
  const auto consumers = graph.consumers();
  const auto producers = graph.producers();
  std::vector<bool> remove(graph.nodes.size(), false);
  std::vector<Node> added;
  for (size_t n = 0; n < graph.nodes.size(); ++n) {
    const Node& div = graph.nodes[n];
    if (remove[n] || !div.domain.empty() || div.op_type != "Div" || div.inputs.size() != 2) continue;
    const int d = div.inputs[0], root = div.inputs[1];
    const Node* sub = producer_of(graph, producers, d, "Sub");
    const Node* sqrt = producer_of(graph, producers, root, "Sqrt");
    if (!sub || !sqrt || consumers[size_t(d)].size() != 2 || pass_utils::is_graph_output(graph, d) ||
        !pass_utils::single_consumer(graph, consumers, root))
      continue;
    const int x = sub->inputs[0], mean = sub->inputs[1];
    const int rank = rank_of(graph, x);
    const Node* mean_node = producer_of(graph, producers, mean, "ReduceMean");
    if (rank < 1 || !mean_node || mean_node->inputs[0] != x || !is_last_axis_mean(graph, *mean_node, rank) ||
        !pass_utils::single_consumer(graph, consumers, mean) || graph.values[size_t(x)].dtype != DType::f32)
      continue;
    const Node* add_eps = producer_of(graph, producers, sqrt->inputs[0], "Add");
    float eps = 0;
    if (!add_eps || !pass_utils::single_consumer(graph, consumers, sqrt->inputs[0])) continue;
    int variance = -1;
    for (int side = 0; side < 2; ++side)
      if (pass_utils::scalar_constant(graph, add_eps->inputs[size_t(side)], &eps)) variance = add_eps->inputs[size_t(1 - side)];
    const Node* var_node = producer_of(graph, producers, variance, "ReduceMean");
    if (!var_node || !is_last_axis_mean(graph, *var_node, rank) || !pass_utils::single_consumer(graph, consumers, variance))
      continue;
    const int square = var_node->inputs[0];
    const Node* pow = producer_of(graph, producers, square, "Pow");
    const Node* mul_sq = producer_of(graph, producers, square, "Mul");
    const bool squares_d = (pow && pow->inputs[0] == d && pass_utils::scalar_near(graph, pow->inputs[1], 2.f)) ||
                           (mul_sq && mul_sq->inputs[0] == d && mul_sq->inputs[1] == d);
    if (!squares_d || !pass_utils::single_consumer(graph, consumers, square)) continue;
    std::vector<int> nodes = {int(n), producers[size_t(d)], producers[size_t(root)], producers[size_t(mean)],
                              producers[size_t(sqrt->inputs[0])], producers[size_t(variance)], producers[size_t(square)]};
    // Optional affine part: * gamma, + beta (constants over the last axis).
    const int64_t columns = graph.values[size_t(x)].dims.back().value;
    int out = div.outputs[0], gamma = -1, beta = -1;
    auto constant_over_last_axis = [&](int value) {
      const Tensor* t = pass_utils::constant_f32(graph, value);
      return t && t->numel() == columns;
    };
    if (pass_utils::single_consumer(graph, consumers, out)) {
      const Node& mul = graph.nodes[size_t(consumers[size_t(out)][0])];
      const int other = pass_utils::other_input(mul, out);
      if (mul.domain.empty() && mul.op_type == "Mul" && constant_over_last_axis(other)) {
        gamma = other;
        nodes.push_back(consumers[size_t(out)][0]);
        out = mul.outputs[0];
        if (pass_utils::single_consumer(graph, consumers, out)) {
          const Node& add = graph.nodes[size_t(consumers[size_t(out)][0])];
          const int b = pass_utils::other_input(add, out);
          if (add.domain.empty() && add.op_type == "Add" && constant_over_last_axis(b)) {
            beta = b;
            nodes.push_back(consumers[size_t(out)][0]);
            out = add.outputs[0];
          }
        }
      }
    }
    bool taken = false;
    for (int i : nodes) taken = taken || remove[size_t(i)];
    if (taken) continue;
    for (int i : nodes) remove[size_t(i)] = true;
    if (gamma < 0) {
      Tensor ones(DType::f32, {columns});
      for (int64_t i = 0; i < columns; ++i) ones.data<float>()[i] = 1.f;
      gamma = graph.add_constant(graph.unique_name(div.name + "/gamma"), ones);
    }
    Node ln;
    ln.name = div.name + "/layer_norm";
    ln.op_type = "LayerNormalization";
    ln.inputs = {x, gamma};
    if (beta >= 0) ln.inputs.push_back(beta);
    ln.outputs = {out};
    ln.attributes.set_int("axis", -1);
    ln.attributes.set_float("epsilon", eps);
    added.push_back(std::move(ln));
  }
  pass_utils::erase_nodes(graph, remove);
  for (Node& n : added) graph.nodes.push_back(std::move(n));
  return int(added.size());
}

int fuse_add_layer_norm(Graph& graph) {
  const auto consumers = graph.consumers();
  const auto producers = graph.producers();
  std::vector<bool> remove(graph.nodes.size(), false);
  int fused = 0;
  for (size_t n = 0; n < graph.nodes.size(); ++n) {
    Node& ln = graph.nodes[n];
    if (!ln.domain.empty() || ln.op_type != "LayerNormalization" || ln.inputs.size() < 2 || ln.outputs.size() != 1)
      continue;
    const int sum = ln.inputs[0];
    const Node* add = producer_of(graph, producers, sum, "Add");
    if (!add || add->inputs.size() != 2 || remove[size_t(producers[size_t(sum)])]) continue;
    const int rank = rank_of(graph, sum);
    const int64_t axis = ln.attributes.get_int("axis", -1);
    if (rank < 1 || (axis != -1 && axis != rank - 1)) continue;
    const Value &a = graph.values[size_t(add->inputs[0])], &b = graph.values[size_t(add->inputs[1])];
    // Same shapes (no broadcasting), both f32.
    if (!pass_utils::all_dims_known(a) || !pass_utils::all_dims_known(b) ||
        pass_utils::known_shape(a) != pass_utils::known_shape(b) || a.dtype != DType::f32 || b.dtype != DType::f32 ||
        pass_utils::known_shape(a) != pass_utils::known_shape(graph.values[size_t(sum)]))
      continue;
    const bool sum_read_elsewhere = consumers[size_t(sum)].size() > 1 || pass_utils::is_graph_output(graph, sum);
    remove[size_t(producers[size_t(sum)])] = true;
    const std::vector<int> inputs = {add->inputs[0], add->inputs[1], ln.inputs[1], ln.inputs.size() > 2 ? ln.inputs[2] : -1};
    ln.domain = "tessera";
    ln.op_type = "AddLayerNorm";
    ln.inputs = inputs;
    if (sum_read_elsewhere) ln.outputs.push_back(sum);
    ++fused;
  }
  pass_utils::erase_nodes(graph, remove);
  return fused;
}

}  // namespace tessera
