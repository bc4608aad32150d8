// apply_winograd_int8: finds the 3x3 stride-1 convolutions, calibrates per-tap activation ranges
// through a session observer, quantizes the transformed weights and rewrites the nodes.
#include "compression/winograd_int8_quantize.h"

#include <algorithm>
#include <set>

#include "graph/passes/passes.h"
#include "tessera/session.h"
#include "compression/rewrite_utils.h"

namespace tessera::compression {

namespace {

bool eligible(const Graph& g, const Node& node) {
  if (!node.domain.empty() || node.op_type != "Conv" || node.inputs.size() < 2 || node.inputs[0] < 0 ||
      node.outputs.size() != 1)
    return false;
  const Value& w = g.values[size_t(node.inputs[1])];
  if (!w.is_constant() || w.constant.dtype() != DType::f32 || w.constant.rank() != 4) return false;
  if (w.constant.dim(2) != 3 || w.constant.dim(3) != 3) return false;
  if (node.inputs.size() > 2 && node.inputs[2] >= 0) {
    const Value& b = g.values[size_t(node.inputs[2])];
    if (!b.is_constant() || b.constant.dtype() != DType::f32 || b.constant.numel() != w.constant.dim(0)) return false;
  }
  const Attributes& a = node.attributes;
  if (a.get_int("group", 1) != 1 || a.get_string("auto_pad", "NOTSET") != "NOTSET") return false;
  if (a.get_ints("strides", {1, 1}) != std::vector<int64_t>{1, 1}) return false;
  if (a.get_ints("dilations", {1, 1}) != std::vector<int64_t>{1, 1}) return false;
  const auto pads = a.get_ints("pads", {0, 0, 0, 0});
  return pads.size() == 4 && std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p >= 0 && p <= 2; });
}

// Per-tap max |B^T d B| of input 0 of the named Conv nodes while the float graph runs.
class TapRangeObserver : public StepObserver {
 public:
  TapRangeObserver(const std::set<std::string>& names, int tile, bool histograms)
      : names_(names), tile_(tile), histograms_(histograms) {}
  static constexpr int kBins = 2048;
  void before_step(const StepInfo& step) override {
    if (!step.node || !names_.count(step.node->name) || step.inputs.empty() || !step.inputs[0]) return;
    const Tensor x = step.inputs[0]->is_contiguous() ? *step.inputs[0] : step.inputs[0]->clone();
    if (x.dtype() != DType::f32 || x.rank() != 4) return;
    const auto pads = step.node->attributes.get_ints("pads", {0, 0, 0, 0});
    WinogradProblem p;
    p.batch = x.dim(0);
    p.in_channels = x.dim(1);
    p.in_h = x.dim(2);
    p.in_w = x.dim(3);
    p.pad_top = pads[0];
    p.pad_left = pads[1];
    p.out_h = p.in_h + pads[0] + pads[2] - 2;
    p.out_w = p.in_w + pads[1] + pads[3] - 2;
    if (p.out_h <= 0 || p.out_w <= 0) return;
    const std::vector<float> tap_max = winograd_input_tap_max(x.data<float>(), p, tile_);
    // The calibration is one session run, so each node is seen once.
    TESSERA_CHECK(!ranges.count(step.node->name), "int8 Winograd: node '" + step.node->name + "' ran twice in calibration");
    ranges[step.node->name] = tap_max;
    if (histograms_) histograms[step.node->name] = winograd_input_tap_histograms(x.data<float>(), p, tile_, tap_max, kBins);
  }
  std::map<std::string, std::vector<float>> ranges;
  std::map<std::string, std::vector<double>> histograms;

 private:
  const std::set<std::string>& names_;
  int tile_;
  bool histograms_;
};

Tensor floats_tensor(const std::vector<float>& values, Shape shape) {
  Tensor t(DType::f32, std::move(shape));
  std::copy(values.begin(), values.end(), t.data<float>());
  return t;
}

}  // namespace

WinogradInt8Report apply_winograd_int8(Graph& graph, const WinogradInt8Options& options) {
  const int tile = options.scheme.tile;
  TESSERA_CHECK(tile == 2 || tile == 4, "int8 Winograd: tile must be 2 or 4, got " + std::to_string(tile));
  TESSERA_CHECK(!options.calibration_inputs.empty(),
                "int8 Winograd: calibration inputs are required (activation scales are static)");
  remove_identity_nodes(graph);
  fold_batchnorm(graph);
  graph.remove_dead_nodes();
  graph.topological_sort();
  for (Node& node : graph.nodes)
    if (node.name.empty()) node.name = graph.unique_name(node.op_type);
  std::set<std::string> names_seen;
  for (const Node& node : graph.nodes) names_seen.insert(node.name);
  for (const std::string& name : options.exclude_layers)
    TESSERA_CHECK(names_seen.count(name), "int8 Winograd: no node named '" + name + "' in the graph");

  WinogradInt8Report report;
  std::vector<size_t> chosen;
  std::set<std::string> chosen_names;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    if (!eligible(graph, graph.nodes[i])) continue;
    const std::string& name = graph.nodes[i].name;
    if (std::find(options.exclude_layers.begin(), options.exclude_layers.end(), name) != options.exclude_layers.end()) {
      report.kept_f32_layers.push_back(name);
      continue;
    }
    chosen.push_back(i);
    chosen_names.insert(name);
  }
  if (chosen.empty()) return report;

  SessionOptions session_options;
  session_options.optimize = false;  // node names and inputs as in this graph
  Session session(graph, session_options);
  const bool mse = options.calibration == WinogradInt8Options::Calibration::mse;
  TapRangeObserver observer(chosen_names, tile, mse);
  session.add_observer(&observer);
  session.run(options.calibration_inputs);
  for (const std::string& name : chosen_names)
    TESSERA_CHECK(observer.ranges.count(name), "int8 Winograd: calibration did not reach node '" + name + "'");

  const auto consumers = graph.consumers();
  std::vector<bool> remove(graph.nodes.size(), false);
  for (size_t index : chosen) {
    Node& node = graph.nodes[index];
    const Tensor& w_value = graph.values[size_t(node.inputs[1])].constant;
    const Tensor w = w_value.is_contiguous() ? w_value : w_value.clone();
    const int64_t cout = w.dim(0), cin = w.dim(1);
    const WinogradInt8Weights q = quantize_winograd_weights(w.data<float>(), cout, cin, options.scheme);
    const std::vector<float>& tap_max = observer.ranges.at(node.name);
    const std::vector<float> activation_scales =
        mse ? winograd_activation_scales_mse(tap_max, observer.histograms.at(node.name), TapRangeObserver::kBins,
                                             options.scheme)
            : winograd_activation_scales(tap_max, options.scheme);
    const float lo = *std::min_element(tap_max.begin(), tap_max.end());
    const float hi = *std::max_element(tap_max.begin(), tap_max.end());
    report.activation_range_spread.push_back(lo > 0.f ? hi / lo : 0.f);

    Node rewritten;
    rewritten.name = node.name;
    rewritten.op_type = "WinogradInt8Conv";
    rewritten.domain = "tessera";
    rewritten.outputs = node.outputs;
    Tensor codes(DType::i8, {q.taps(), cin, cout});
    std::copy(q.codes.begin(), q.codes.end(), codes.data<int8_t>());
    rewritten.inputs = {node.inputs[0], graph.add_constant(graph.unique_name(node.name + "_winograd_codes"), codes),
                        graph.add_constant(graph.unique_name(node.name + "_winograd_weight_scales"),
                                           floats_tensor(q.scales, {q.taps(), cout})),
                        graph.add_constant(graph.unique_name(node.name + "_winograd_activation_scales"),
                                           floats_tensor(activation_scales, {q.taps()}))};
    if (node.inputs.size() > 2 && node.inputs[2] >= 0) rewritten.inputs.push_back(node.inputs[2]);
    Attributes& attrs = rewritten.attributes;
    attrs.set_int("tile", tile);
    attrs.set_ints("pads", node.attributes.get_ints("pads", {0, 0, 0, 0}));
    attrs.set_int("tap_wise", options.scheme.tap_wise ? 1 : 0);
    attrs.set_int("power_of_two", options.scheme.power_of_two ? 1 : 0);
    absorb_single_relu(graph, consumers, node, rewritten, attrs, remove);
    report.quantized_layers.push_back(node.name);
    node = std::move(rewritten);
  }
  finish_rewrite(graph, remove);
  return report;
}

}  // namespace tessera::compression
