// Pass: MatMul(Q, K^T) -> [Mul|Div by a scalar] -> [Add(mask) | Where(mask)] -> Softmax(last
// axis) -> MatMul(., V) becomes one tessera.Attention node (src/ops/attention.cpp), and the
// Transposes that split heads before it and merge them after it are absorbed into its operand
// layouts. A constant lower-triangular Where mask becomes the causal flag (no mask is read).
#include <cmath>

#include "graph/passes/pass_utils.h"
#include "graph/passes/passes.h"

namespace tessera {

namespace {

bool is_op(const Node& n, const char* op) { return n.domain.empty() && n.op_type == op; }

using pass_utils::scalar_constant;

int rank_of(const Graph& g, int value) {
  const Value& v = g.values[size_t(value)];
  return v.has_shape ? int(v.dims.size()) : -1;
}

// A constant bool mask whose last two dims keep exactly j <= i + (keys - queries): causal.
bool is_causal_keep_mask(const Graph& g, int value, bool keep_where_true) {
  const Value& v = g.values[size_t(value)];
  if (!v.is_constant() || v.constant.dtype() != DType::boolean || v.constant.rank() < 2) return false;
  const Tensor& t = v.constant;
  const int64_t rows = t.dim(-2), cols = t.dim(-1), shift = cols - rows;
  const uint8_t* m = t.data<uint8_t>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const int64_t col = i % cols, row = (i / cols) % rows;
    const bool keep = (m[i] != 0) == keep_where_true;
    if (keep != (col <= row + shift)) return false;
  }
  return true;
}

// Whether `value` is Q K^T, possibly scaled by a scalar constant: the chain side of a mask Add.
bool leads_to_scores(const Graph& g, const std::vector<int>& producers, int value) {
  for (int hops = 0; hops < 2; ++hops) {
    const int p = producers[size_t(value)];
    if (p < 0) return false;
    const Node& n = g.nodes[size_t(p)];
    if (is_op(n, "MatMul")) return n.inputs.size() == 2 && rank_of(g, n.inputs[0]) == 4;
    float c;
    if (!(is_op(n, "Mul") || is_op(n, "Div")) || n.inputs.size() != 2) return false;
    if (scalar_constant(g, n.inputs[1], &c))
      value = n.inputs[0];
    else if (is_op(n, "Mul") && scalar_constant(g, n.inputs[0], &c))
      value = n.inputs[1];
    else
      return false;
  }
  return false;
}

struct Operand {
  int value = -1;
  std::string layout;  // order of the axes b, h, s, d in the stored tensor
  std::vector<size_t> transposes;  // absorbed Transpose nodes
};

// Walks back through single-reader Transposes, composing their permutations into the layout.
Operand absorb_transposes(const Graph& g, const std::vector<std::vector<int>>& consumers,
                          const std::vector<int>& producers, int value, std::string layout,
                          const std::vector<bool>& removed) {
  Operand op{value, std::move(layout), {}};
  for (;;) {
    const int p = producers[size_t(op.value)];
    if (p < 0 || removed[size_t(p)] || !pass_utils::single_consumer(g, consumers, op.value)) break;
    const Node& t = g.nodes[size_t(p)];
    if (!is_op(t, "Transpose") || t.inputs.empty() || rank_of(g, t.inputs[0]) != 4) break;
    const std::vector<int64_t> perm = t.attributes.get_ints("perm", {3, 2, 1, 0});
    if (perm.size() != 4) break;
    // Output axis i is input axis perm[i].
    std::string input_layout(4, '?');
    for (size_t i = 0; i < 4; ++i) input_layout[size_t(perm[i])] = op.layout[i];
    op.layout = input_layout;
    op.value = t.inputs[0];
    op.transposes.push_back(size_t(p));
  }
  return op;
}

// Q, K and V as the thirds of one [b, s, 3 h d] tensor: the merged QKV projection
// (merge_parallel_matmuls) Split along its last axis, each third Reshaped to [b, s, h, d] and
// stored so ("bshd"). Attention can read the thirds in place (attribute qkv_heads), which drops
// the Split's copy of the whole projection and the Reshapes.
struct PackedQkv {
  int value = -1;
  int64_t heads = 0;
  std::vector<size_t> nodes;  // the Split and the three Reshapes
};

PackedQkv find_packed_qkv(const Graph& g, const std::vector<std::vector<int>>& consumers,
                          const std::vector<int>& producers, const Operand& q, const Operand& k, const Operand& v,
                          const std::vector<bool>& removed) {
  PackedQkv none;
  if (q.layout != "bshd" || k.layout != "bshd" || v.layout != "bshd") return none;
  const Node* split = nullptr;
  size_t split_index = 0;
  std::vector<size_t> reshapes;
  const int thirds[3] = {q.value, k.value, v.value};
  for (int part = 0; part < 3; ++part) {
    const int value = thirds[part];
    const int p = producers[size_t(value)];
    if (p < 0 || removed[size_t(p)] || !pass_utils::single_consumer(g, consumers, value)) return none;
    const Node& reshape = g.nodes[size_t(p)];
    if (!is_op(reshape, "Reshape") || reshape.inputs.empty()) return none;
    const int piece = reshape.inputs[0];
    const int sp = producers[size_t(piece)];
    if (sp < 0 || removed[size_t(sp)] || !pass_utils::single_consumer(g, consumers, piece)) return none;
    if (split && size_t(sp) != split_index) return none;
    split = &g.nodes[size_t(sp)];
    split_index = size_t(sp);
    if (!is_op(*split, "Split") || split->outputs.size() != 3 || split->outputs[size_t(part)] != piece) return none;
    reshapes.push_back(size_t(p));
  }
  // Shapes from the thirds and the Split's outputs (the merged projection's own value is new
  // and has none yet): three pieces [b, s, h d] of x [b, s, 3 h d], each Reshaped to [b, s, h, d].
  const Value& third = g.values[size_t(q.value)];
  if (!pass_utils::all_dims_known(third) || third.dims.size() != 4 ||
      g.values[size_t(split->inputs[0])].dtype != DType::f32)
    return none;
  const int64_t axis = split->attributes.get_int("axis", 0);
  if (axis != -1 && axis != 2) return none;
  const Shape ts = pass_utils::known_shape(third);
  for (int value : {k.value, v.value})
    if (!pass_utils::all_dims_known(g.values[size_t(value)]) || pass_utils::known_shape(g.values[size_t(value)]) != ts)
      return none;
  for (int out : split->outputs) {
    const Value& piece = g.values[size_t(out)];
    if (!pass_utils::all_dims_known(piece) || pass_utils::known_shape(piece) != Shape{ts[0], ts[1], ts[2] * ts[3]})
      return none;
  }
  PackedQkv found;
  found.value = split->inputs[0];
  found.heads = ts[2];
  found.nodes = reshapes;
  found.nodes.push_back(split_index);
  return found;
}

}  // namespace

int fuse_attention(Graph& graph) {
  auto consumers = graph.consumers();
  auto producers = graph.producers();
  std::vector<bool> remove(graph.nodes.size(), false);
  std::vector<Node> added;
  int fused = 0;
  const size_t original = graph.nodes.size();
  for (size_t n = 0; n < original; ++n) {
    const Node& softmax = graph.nodes[n];
    if (remove[n] || !is_op(softmax, "Softmax") || softmax.inputs.empty() || softmax.outputs.size() != 1) continue;
    // The last axis of a 4-D input (older opsets flatten from `axis`: the same for axis 3).
    const int64_t axis = softmax.attributes.get_int("axis", graph.opset < 13 ? 1 : -1);
    if (rank_of(graph, softmax.inputs[0]) != 4 || (axis != -1 && axis != 3)) continue;
    std::vector<size_t> chain = {n};
    // Softmax -> the MatMul with V.
    const int probs = softmax.outputs[0];
    if (!pass_utils::single_consumer(graph, consumers, probs)) continue;
    const size_t pv_index = size_t(consumers[size_t(probs)][0]);
    const Node& pv = graph.nodes[pv_index];
    if (remove[pv_index] || !is_op(pv, "MatMul") || pv.inputs.size() != 2 || pv.inputs[0] != probs ||
        rank_of(graph, pv.inputs[1]) != 4)
      continue;
    chain.push_back(pv_index);
    // Back from the Softmax: mask, then scale, then the MatMul of Q and K^T.
    int x = softmax.inputs[0];
    float scale = 1.f, fill = -1e9f;
    int mask = -1;
    bool keep_where_true = true, have_mask = false, have_scale = false, where_mask = false, ok = true;
    for (;;) {
      const int p = producers[size_t(x)];
      if (p < 0 || remove[size_t(p)] || !pass_utils::single_consumer(graph, consumers, x)) {
        ok = false;
        break;
      }
      const Node& node = graph.nodes[size_t(p)];
      if (is_op(node, "MatMul")) break;
      float c;
      if (!have_mask && !have_scale && is_op(node, "Add") && node.inputs.size() == 2) {
        // The chain side leads to the MatMul of Q and K^T; the other side is the mask.
        const int side = leads_to_scores(graph, producers, node.inputs[0]) ? 0 : 1;
        if (!leads_to_scores(graph, producers, node.inputs[size_t(side)])) {
          ok = false;
          break;
        }
        mask = node.inputs[size_t(1 - side)];
        x = node.inputs[size_t(side)];
        have_mask = true;
      } else if (!have_mask && !have_scale && is_op(node, "Where") && node.inputs.size() == 3) {
        if (scalar_constant(graph, node.inputs[2], &fill)) {
          keep_where_true = true;
          x = node.inputs[1];
        } else if (scalar_constant(graph, node.inputs[1], &fill)) {
          keep_where_true = false;
          x = node.inputs[2];
        } else {
          ok = false;
          break;
        }
        mask = node.inputs[0];
        have_mask = where_mask = true;
      } else if (!have_scale && (is_op(node, "Mul") || is_op(node, "Div")) && node.inputs.size() == 2) {
        const bool div = is_op(node, "Div");
        if (scalar_constant(graph, node.inputs[1], &c)) {
          x = node.inputs[0];
        } else if (!div && scalar_constant(graph, node.inputs[0], &c)) {
          x = node.inputs[1];
        } else {
          ok = false;
          break;
        }
        if (div && c == 0) {
          ok = false;
          break;
        }
        scale = div ? 1.f / c : c;
        have_scale = true;
      } else {
        ok = false;
        break;
      }
      chain.push_back(size_t(p));
    }
    if (!ok) continue;
    const size_t qk_index = size_t(producers[size_t(x)]);
    const Node& qk = graph.nodes[qk_index];
    if (qk.inputs.size() != 2 || rank_of(graph, qk.inputs[0]) != 4 || rank_of(graph, qk.inputs[1]) != 4) continue;
    chain.push_back(qk_index);
    for (int v : {qk.inputs[0], qk.inputs[1], pv.inputs[1]})
      if (graph.values[size_t(v)].dtype != DType::f32) ok = false;
    if (mask >= 0 && (graph.values[size_t(mask)].dtype != (where_mask ? DType::boolean : DType::f32) ||
                      rank_of(graph, mask) > 4 || rank_of(graph, mask) < 0))
      ok = false;
    if (!ok) continue;

    // Operands with their transposes absorbed.
    const Operand q = absorb_transposes(graph, consumers, producers, qk.inputs[0], "bhsd", remove);
    const Operand k = absorb_transposes(graph, consumers, producers, qk.inputs[1], "bhds", remove);
    const Operand v = absorb_transposes(graph, consumers, producers, pv.inputs[1], "bhsd", remove);
    // The output, through a single-reader Transpose that keeps the head size innermost.
    int out = pv.outputs[0];
    std::string out_layout = "bhsd";
    size_t out_transpose = SIZE_MAX;
    if (pass_utils::single_consumer(graph, consumers, out)) {
      const size_t t = size_t(consumers[size_t(out)][0]);
      const Node& tn = graph.nodes[t];
      const std::vector<int64_t> perm = tn.attributes.get_ints("perm", {3, 2, 1, 0});
      if (!remove[t] && is_op(tn, "Transpose") && perm.size() == 4 && perm[3] == 3) {
        std::string layout(4, '?');
        for (size_t i = 0; i < 4; ++i) layout[i] = out_layout[size_t(perm[i])];
        out_layout = layout;
        out = tn.outputs[0];
        out_transpose = t;
      }
    }

    const PackedQkv packed = find_packed_qkv(graph, consumers, producers, q, k, v, remove);

    Node attention;
    attention.name = qk.name + "/attention";
    attention.op_type = "Attention";
    attention.domain = "tessera";
    attention.inputs = {q.value, k.value, v.value};
    if (packed.value >= 0) {
      attention.inputs = {packed.value, packed.value, packed.value};
      attention.attributes.set_int("qkv_heads", packed.heads);
    }
    attention.outputs = {out};
    attention.attributes.set_float("scale", scale);
    attention.attributes.set_string("q_layout", q.layout);
    attention.attributes.set_string("k_layout", k.layout);
    attention.attributes.set_string("v_layout", v.layout);
    attention.attributes.set_string("out_layout", out_layout);
    if (mask >= 0 && graph.values[size_t(mask)].dtype == DType::boolean &&
        is_causal_keep_mask(graph, mask, keep_where_true) &&
        graph.values[size_t(mask)].constant.dim(-2) == graph.values[size_t(qk.outputs[0])].dims[2].value &&
        graph.values[size_t(mask)].constant.dim(-1) == graph.values[size_t(qk.outputs[0])].dims[3].value) {
      attention.attributes.set_int("causal", 1);
    } else if (mask >= 0) {
      attention.inputs.push_back(mask);
      attention.attributes.set_float("fill", fill);
      attention.attributes.set_int("keep_where_true", keep_where_true ? 1 : 0);
    }
    for (size_t c : chain) remove[c] = true;
    for (const Operand* o : {&q, &k, &v})
      for (size_t t : o->transposes) remove[t] = true;
    if (out_transpose != SIZE_MAX) remove[out_transpose] = true;
    for (size_t node : packed.nodes) remove[node] = true;
    added.push_back(std::move(attention));
    ++fused;
  }
  pass_utils::erase_nodes(graph, remove);
  for (Node& n : added) graph.nodes.push_back(std::move(n));
  return fused;
}

}  // namespace tessera
