// Pass: the element-wise subgraphs exporters write for GELU become one Gelu node (ONNX opset 20
// semantics, attribute approximate), which fuse_activation can then fold into the MatMul before it:
//   erf form:  x * 0.5 * (1 + Erf(x / sqrt 2))        (Div by 1.4142 or Mul by 0.7071)
//   tanh form: 0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))   (x^3 as Pow(x, 3) or x*x*x)
// The products may come in either order: (x * (1 + ...)) * 0.5 or (0.5 * x) * (1 + ...).
#include "graph/passes/pass_utils.h"
#include "graph/passes/passes.h"

namespace tessera {

namespace {

using pass_utils::other_input;
using pass_utils::producer_of;
using pass_utils::scalar_near;

struct Match {
  int x = -1, output = -1;
  std::vector<int> nodes;  // node indices of the subgraph
};

// The single consumer node index of `value` (not a graph output), or -1.
int only_consumer(const Graph& g, const std::vector<std::vector<int>>& consumers, int value) {
  return pass_utils::single_consumer(g, consumers, value) ? consumers[size_t(value)][0] : -1;
}

bool is(const Graph& g, int node, const char* op) {
  return node >= 0 && g.nodes[size_t(node)].domain.empty() && g.nodes[size_t(node)].op_type == op;
}

// From t = 1 + F(...) (the Add after Erf or Tanh), the products with x and 0.5 up to the output.
bool match_outer_products(const Graph& g, const std::vector<std::vector<int>>& consumers,
                          const std::vector<int>& producers, int x, int one_plus, Match* m) {
  const int mul = only_consumer(g, consumers, one_plus);
  if (!is(g, mul, "Mul")) return false;
  const Node& outer = g.nodes[size_t(mul)];
  const int other = other_input(outer, one_plus);
  m->nodes.push_back(mul);
  if (other == x) {  // (x * t) * 0.5
    const int half = only_consumer(g, consumers, outer.outputs[0]);
    if (!is(g, half, "Mul") || !scalar_near(g, other_input(g.nodes[size_t(half)], outer.outputs[0]), 0.5f))
      return false;
    m->nodes.push_back(half);
    m->output = g.nodes[size_t(half)].outputs[0];
    return true;
  }
  // (0.5 * x) * t, the half product read only here.
  const Node* half = producer_of(g, producers, other, "Mul");
  if (!half || !pass_utils::single_consumer(g, consumers, other) || other_input(*half, x) < 0 ||
      !scalar_near(g, other_input(*half, x), 0.5f))
    return false;
  m->nodes.push_back(producers[size_t(other)]);
  m->output = outer.outputs[0];
  return true;
}

// 1 + F: the Add of F's output with the constant 1.
int one_plus(const Graph& g, const std::vector<std::vector<int>>& consumers, int f_output) {
  const int add = only_consumer(g, consumers, f_output);
  if (!is(g, add, "Add") || !scalar_near(g, other_input(g.nodes[size_t(add)], f_output), 1.f)) return -1;
  return add;
}

bool match_erf(const Graph& g, const std::vector<std::vector<int>>& consumers, const std::vector<int>& producers,
               int erf_index, Match* m) {
  const Node& erf = g.nodes[size_t(erf_index)];
  const int scaled = erf.inputs.empty() ? -1 : erf.inputs[0];
  if (!pass_utils::single_consumer(g, consumers, scaled)) return false;
  const Node* div = producer_of(g, producers, scaled, "Div");
  const Node* mul = producer_of(g, producers, scaled, "Mul");
  if (div && scalar_near(g, div->inputs[1], 1.41421356f)) {
    m->x = div->inputs[0];
  } else if (mul && scalar_near(g, mul->inputs[1], 0.70710678f)) {
    m->x = mul->inputs[0];
  } else if (mul && scalar_near(g, mul->inputs[0], 0.70710678f)) {
    m->x = mul->inputs[1];
  } else {
    return false;
  }
  m->nodes = {producers[size_t(scaled)], erf_index};
  const int add = one_plus(g, consumers, erf.outputs[0]);
  if (add < 0) return false;
  m->nodes.push_back(add);
  return match_outer_products(g, consumers, producers, m->x, g.nodes[size_t(add)].outputs[0], m);
}

// x^3 as Pow(x, 3) or Mul(Mul(x, x), x); returns x.
int cube_root_operand(const Graph& g, const std::vector<std::vector<int>>& consumers, const std::vector<int>& producers,
                      int cube, std::vector<int>* nodes) {
  if (!pass_utils::single_consumer(g, consumers, cube)) return -1;
  if (const Node* pow = producer_of(g, producers, cube, "Pow")) {
    if (!scalar_near(g, pow->inputs[1], 3.f)) return -1;
    nodes->push_back(producers[size_t(cube)]);
    return pow->inputs[0];
  }
  const Node* outer = producer_of(g, producers, cube, "Mul");
  if (!outer) return -1;
  for (int side = 0; side < 2; ++side) {
    const int square = outer->inputs[size_t(side)], x = outer->inputs[size_t(1 - side)];
    const Node* inner = producer_of(g, producers, square, "Mul");
    if (inner && inner->inputs[0] == x && inner->inputs[1] == x && pass_utils::single_consumer(g, consumers, square)) {
      nodes->push_back(producers[size_t(cube)]);
      nodes->push_back(producers[size_t(square)]);
      return x;
    }
  }
  return -1;
}

bool match_tanh(const Graph& g, const std::vector<std::vector<int>>& consumers, const std::vector<int>& producers,
                int tanh_index, Match* m) {
  const Node& tanh = g.nodes[size_t(tanh_index)];
  const int scaled = tanh.inputs.empty() ? -1 : tanh.inputs[0];
  const Node* outer_scale = producer_of(g, producers, scaled, "Mul");
  if (!outer_scale || !pass_utils::single_consumer(g, consumers, scaled)) return false;
  int inner_sum = -1;
  for (int side = 0; side < 2; ++side)
    if (scalar_near(g, outer_scale->inputs[size_t(side)], 0.7978845608f)) inner_sum = outer_scale->inputs[size_t(1 - side)];
  const Node* sum = producer_of(g, producers, inner_sum, "Add");
  if (!sum || !pass_utils::single_consumer(g, consumers, inner_sum)) return false;
  m->nodes = {tanh_index, producers[size_t(scaled)], producers[size_t(inner_sum)]};
  // x + 0.044715 * x^3, in either order.
  for (int side = 0; side < 2 && m->x < 0; ++side) {
    const int term = sum->inputs[size_t(side)], x = sum->inputs[size_t(1 - side)];
    const Node* scale = producer_of(g, producers, term, "Mul");
    if (!scale || !pass_utils::single_consumer(g, consumers, term)) continue;
    for (int s2 = 0; s2 < 2; ++s2) {
      if (!scalar_near(g, scale->inputs[size_t(s2)], 0.044715f)) continue;
      std::vector<int> cube_nodes;
      if (cube_root_operand(g, consumers, producers, scale->inputs[size_t(1 - s2)], &cube_nodes) == x) {
        m->x = x;
        m->nodes.push_back(producers[size_t(term)]);
        m->nodes.insert(m->nodes.end(), cube_nodes.begin(), cube_nodes.end());
      }
    }
  }
  if (m->x < 0) return false;
  const int add = one_plus(g, consumers, tanh.outputs[0]);
  if (add < 0) return false;
  m->nodes.push_back(add);
  return match_outer_products(g, consumers, producers, m->x, g.nodes[size_t(add)].outputs[0], m);
}

}  // namespace

int fuse_gelu(Graph& graph) {
  const auto consumers = graph.consumers();
  const auto producers = graph.producers();
  std::vector<bool> remove(graph.nodes.size(), false);
  std::vector<Node> added;
  for (size_t n = 0; n < graph.nodes.size(); ++n) {
    const Node& node = graph.nodes[n];
    if (remove[n] || !node.domain.empty() || (node.op_type != "Erf" && node.op_type != "Tanh")) continue;
    Match m;
    const bool erf = node.op_type == "Erf";
    if (!(erf ? match_erf(graph, consumers, producers, int(n), &m) : match_tanh(graph, consumers, producers, int(n), &m)))
      continue;
    if (graph.values[size_t(m.x)].dtype != DType::f32) continue;
    bool taken = false;
    for (int i : m.nodes) taken = taken || remove[size_t(i)];
    if (taken) continue;
    for (int i : m.nodes) remove[size_t(i)] = true;
    Node gelu;
    gelu.name = node.name + "/gelu";
    gelu.op_type = "Gelu";
    gelu.inputs = {m.x};
    gelu.outputs = {m.output};
    gelu.attributes.set_string("approximate", erf ? "none" : "tanh");
    added.push_back(std::move(gelu));
  }
  pass_utils::erase_nodes(graph, remove);
  for (Node& n : added) graph.nodes.push_back(std::move(n));
  return int(added.size());
}

}  // namespace tessera
