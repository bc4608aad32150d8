// Pass: a convolutional network's activations to channels-last (NHWC) between its first
// convolution and its global pooling (src/ops/conv_channels_last.cpp):
//   Conv (one group, constant weights, 2-D; with its fused bias, residual and activation)
//                                          becomes tessera.ConvNhwc
//   MaxPool (one output) on an NHWC value  becomes tessera.MaxPoolNhwc
//   Relu, Add (same shapes) on NHWC values run as they are on the NHWC values
//   GlobalAveragePool on an NHWC value     becomes tessera.GlobalAveragePoolNhwc, which writes
//                                          the original [N, C, 1, 1] value: the region's exit
// A Transpose makes the NHWC form of a value that enters a region (the image), and a Transpose
// back gives an NHWC value to any reader left in NCHW (dead ones are dropped afterwards). All or
// nothing: when some rank-4 convolution cannot be converted (depthwise and grouped layers have
// no channels-last kernel yet), the graph is left as it is, so no layer pays a transpose on each
// side. Runs after the fusion passes (the Conv nodes carry their epilogues) on specialized shapes.
#include <map>
#include <set>

#include "graph/passes/pass_utils.h"
#include "graph/passes/passes.h"

namespace tessera {
namespace {

bool f32_rank4(const Value& v) {
  return v.has_type && v.dtype == DType::f32 && pass_utils::all_dims_known(v) && v.dims.size() == 4;
}

bool convertible_conv(const Graph& g, const Node& n) {
  if (!n.domain.empty() || n.op_type != "Conv" || n.inputs.size() < 2 || n.outputs.size() != 1) return false;
  if (n.attributes.get_int("group", 1) != 1) return false;
  const Value& x = g.values[size_t(n.inputs[0])];
  const Tensor* w = pass_utils::constant_f32(g, n.inputs[1]);
  return f32_rank4(x) && w && w->rank() == 4 && f32_rank4(g.values[size_t(n.outputs[0])]);
}

class ChannelsLast {
 public:
  explicit ChannelsLast(Graph& g) : g_(g) {}

  int run() {
    bool any_conv = false;
    for (const Node& n : g_.nodes) {
      if (!n.domain.empty() || n.op_type != "Conv" || n.inputs.empty()) continue;
      if (g_.values[size_t(n.inputs[0])].dims.size() != 4) continue;  // 1-D and 3-D stay as they are
      if (!convertible_conv(g_, n)) return 0;
      any_conv = true;
    }
    if (!any_conv) return 0;
    const size_t original = g_.nodes.size();
    std::vector<bool> remove(original, false);
    for (size_t i = 0; i < original; ++i) {
      const Node n = g_.nodes[i];  // a copy: pushing nodes may move the vector
      if (!n.domain.empty()) continue;
      bool converted = false;
      if (n.op_type == "Conv" && convertible_conv(g_, n))
        converted = convert_conv(n);
      else if (n.op_type == "MaxPool" && n.outputs.size() == 1 && lowered(n.inputs[0]))
        converted = convert_on_nhwc_inputs(n, "MaxPoolNhwc", "tessera");
      else if (n.op_type == "Relu" && lowered(n.inputs[0]))
        converted = convert_on_nhwc_inputs(n, "Relu", "");
      else if (n.op_type == "Add" && n.inputs.size() == 2 && lowered(n.inputs[0]) && lowered(n.inputs[1]) &&
               pass_utils::known_shape(g_.values[size_t(n.inputs[0])]) ==
                   pass_utils::known_shape(g_.values[size_t(n.inputs[1])]))
        converted = convert_on_nhwc_inputs(n, "Add", "");
      else if (n.op_type == "GlobalAveragePool" && lowered(n.inputs[0]))
        converted = convert_global_average_pool(n);
      if (converted) remove[i] = true;
    }
    materialize();
    remove.resize(g_.nodes.size(), false);
    pass_utils::erase_nodes(g_, remove);
    return converted_;
  }

 private:
  bool lowered(int value) const { return value >= 0 && nhwc_.count(value) > 0; }

  // A new f32 value with the NHWC dims of NCHW value `like`.
  int new_nhwc_value(int like) {
    const std::vector<Dim> d = g_.values[size_t(like)].dims;
    const int id = g_.add_value(g_.unique_name(g_.values[size_t(like)].name + "_nhwc"));
    Value& v = g_.values[size_t(id)];
    v.dtype = DType::f32;
    v.has_type = true;
    v.has_shape = true;
    v.dims = {d[0], d[2], d[3], d[1]};
    return id;
  }

  Node transpose(int from, int to, std::vector<int64_t> perm) {
    Node t;
    t.name = g_.unique_name(g_.values[size_t(to)].name + "_transpose");
    t.op_type = "Transpose";
    t.inputs = {from};
    t.outputs = {to};
    t.attributes.set_ints("perm", std::move(perm));
    return t;
  }

  // The NHWC form of NCHW value v: its lowered value, else a Transpose of v (made once).
  int nhwc_of(int v) {
    auto found = nhwc_.find(v);
    if (found != nhwc_.end()) return found->second;
    const int out = new_nhwc_value(v);
    g_.nodes.push_back(transpose(v, out, {0, 2, 3, 1}));
    entered_.insert(v);
    nhwc_[v] = out;
    return out;
  }

  // A copy of `original` renamed as its NHWC form, running `op` of `domain`.
  Node nhwc_node(const Node& original, const char* op, const char* domain) {
    Node n = original;
    n.name = g_.unique_name(original.name + "_nhwc");
    n.op_type = op;
    n.domain = domain;
    return n;
  }

  bool convert_conv(const Node& conv) {
    Node n = nhwc_node(conv, "ConvNhwc", "tessera");
    n.inputs[0] = nhwc_of(conv.inputs[0]);
    const int64_t residual = conv.attributes.get_int("tessera.residual_input", -1);
    if (residual >= 0) {
      if (size_t(residual) >= n.inputs.size() || !f32_rank4(g_.values[size_t(n.inputs[size_t(residual)])]))
        return false;
      n.inputs[size_t(residual)] = nhwc_of(conv.inputs[size_t(residual)]);
    }
    return emit(std::move(n), conv.outputs[0]);
  }

  // A node whose inputs are all NHWC already (MaxPool, Relu, Add) as `op` on those.
  bool convert_on_nhwc_inputs(const Node& node, const char* op, const char* domain) {
    Node n = nhwc_node(node, op, domain);
    for (int& input : n.inputs) input = nhwc_[input];
    return emit(std::move(n), node.outputs[0]);
  }

  // Writes the original [N, C, 1, 1] value: nothing after it needs a transpose.
  bool convert_global_average_pool(const Node& pool) {
    Node n = nhwc_node(pool, "GlobalAveragePoolNhwc", "tessera");
    n.inputs = {nhwc_[pool.inputs[0]]};
    g_.nodes.push_back(std::move(n));
    ++converted_;
    return true;
  }

  // Appends node `n` writing the NHWC form of NCHW value `original`.
  bool emit(Node n, int original) {
    if (!f32_rank4(g_.values[size_t(original)])) return false;
    const int out = new_nhwc_value(original);
    n.outputs = {out};
    g_.nodes.push_back(std::move(n));
    nhwc_[original] = out;
    ++converted_;
    return true;
  }

  // Every converted value gets its NCHW form back from a Transpose, for readers left in NCHW
  // and graph outputs; the dead ones are dropped with the other dead nodes.
  void materialize() {
    for (const auto& [value, nhwc] : nhwc_)
      if (!entered_.count(value)) g_.nodes.push_back(transpose(nhwc, value, {0, 3, 1, 2}));
  }

  Graph& g_;
  std::map<int, int> nhwc_;  // NCHW value -> its NHWC form
  std::set<int> entered_;    // values whose NHWC form is a Transpose of them (they keep their producer)
  int converted_ = 0;
};

}  // namespace

int convert_to_channels_last(Graph& graph) {
  const int converted = ChannelsLast(graph).run();
  if (converted > 0) {
    graph.remove_dead_nodes();
    graph.topological_sort();
  }
  return converted;
}

}  // namespace tessera
