// Post-training bit-plane quantization: chooses weight codes and scales, calibrates activation
// ranges on a batch of inputs, and rewrites Conv / Gemm / MatMul nodes into tessera.Bitplane* nodes.
#include "compression/bitplane_quantize.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "graph/passes/passes.h"
#include "tessera/session.h"
#include "compression/rewrite_utils.h"

namespace tessera::compression {

ActivationQuantization activation_quantization(float lo, float hi, int bits) {
  const float low = std::min(lo, 0.f), high = std::max(hi, 0.f);
  const float levels = float((1 << bits) - 1);
  ActivationQuantization q;
  if (!(high - low > 0.f) || !std::isfinite(high - low)) return q;
  q.scale = (high - low) / levels;
  q.zero_point = int32_t(std::clamp(std::nearbyint(-low / q.scale), 0.f, levels));
  return q;
}

uint8_t quantize_activation(float x, const ActivationQuantization& q, int bits) {
  const float code = std::nearbyint(x / q.scale) + float(q.zero_point);
  const float levels = float((1 << bits) - 1);
  if (!(code > 0.f)) return 0;  // NaN too
  return code >= levels ? uint8_t(levels) : uint8_t(code);
}

QuantizedWeights quantize_weights(const float* weights, int64_t rows, int64_t depth, int bits) {
  TESSERA_CHECK(bits >= 1 && bits <= 8, "bit-plane weights: bits must be 1..8, got " + std::to_string(bits));
  QuantizedWeights out;
  out.codes.resize(size_t(rows * depth));
  out.scales.resize(size_t(rows));
  const int32_t qmin = -(1 << (bits - 1)), qmax = (1 << (bits - 1)) - 1;
  for (int64_t r = 0; r < rows; ++r) {
    const float* w = weights + r * depth;
    int32_t* codes = out.codes.data() + r * depth;
    if (bits == 1) {
      double magnitude = 0;
      for (int64_t k = 0; k < depth; ++k) magnitude += std::fabs(w[k]);
      out.scales[size_t(r)] = float(magnitude / double(depth));
      for (int64_t k = 0; k < depth; ++k) codes[k] = w[k] < 0.f ? -1 : 1;
      continue;
    }
    float max_abs = 0.f;
    for (int64_t k = 0; k < depth; ++k) max_abs = std::max(max_abs, std::fabs(w[k]));
    float best_scale = max_abs > 0.f ? max_abs / float(qmax) : 1.f;
    double best_error = std::numeric_limits<double>::max();
    // Clipping ratios 1% .. 100% of max|w| mapped to qmax: low bit widths gain most from clipping.
    for (int step = 1; step <= 100 && max_abs > 0.f; ++step) {
      const float scale = max_abs * float(step) / 100.f / float(qmax);
      double error = 0;
      for (int64_t k = 0; k < depth; ++k) {
        const float code = std::clamp(std::nearbyint(w[k] / scale), float(qmin), float(qmax));
        const double diff = double(w[k]) - double(code) * scale;
        error += diff * diff;
      }
      if (error < best_error) {
        best_error = error;
        best_scale = scale;
      }
    }
    out.scales[size_t(r)] = best_scale;
    for (int64_t k = 0; k < depth; ++k)
      codes[k] = int32_t(std::clamp(std::nearbyint(w[k] / best_scale), float(qmin), float(qmax)));
  }
  return out;
}

namespace {

// A node this rewrite can quantize, with its weights as N x K rows (output channel major).
struct Candidate {
  size_t node = 0;
  bool conv = false;
  int64_t N = 0, K = 0;
  std::vector<float> weights;  // N x K
  std::vector<float> bias;     // N, empty when none
};

const Tensor* constant_f32(const Graph& g, int value) {
  if (value < 0) return nullptr;
  const Value& v = g.values[size_t(value)];
  return v.is_constant() && v.constant.dtype() == DType::f32 ? &v.constant : nullptr;
}

bool make_candidate(const Graph& g, size_t index, Candidate* out) {
  const Node& node = g.nodes[index];
  if (!node.domain.empty() || node.inputs.size() < 2 || node.inputs[0] < 0 || node.outputs.size() != 1) return false;
  const Tensor* w = constant_f32(g, node.inputs[1]);
  if (!w) return false;
  const Tensor weight = w->is_contiguous() ? *w : w->clone();
  const float* data = weight.data<float>();
  Candidate c;
  c.node = index;
  int bias_input = -1;
  float bias_scale = 1.f;
  if (node.op_type == "Conv") {
    if (weight.rank() != 4 || node.attributes.get_int("group", 1) != 1) return false;
    const std::string auto_pad = node.attributes.get_string("auto_pad", "NOTSET");
    if (auto_pad != "NOTSET") return false;
    c.conv = true;
    c.N = weight.dim(0);
    c.K = weight.numel() / c.N;
    c.weights.assign(data, data + weight.numel());
    bias_input = node.inputs.size() > 2 ? node.inputs[2] : -1;
  } else if (node.op_type == "Gemm" || node.op_type == "MatMul") {
    if (weight.rank() != 2) return false;
    const bool gemm = node.op_type == "Gemm";
    if (gemm && node.attributes.get_int("transA", 0) != 0) return false;
    if (!gemm && node.inputs.size() > 2) return false;
    const bool trans_b = gemm && node.attributes.get_int("transB", 0) != 0;
    c.N = trans_b ? weight.dim(0) : weight.dim(1);
    c.K = trans_b ? weight.dim(1) : weight.dim(0);
    const float alpha = gemm ? node.attributes.get_float("alpha", 1.f) : 1.f;
    c.weights.resize(size_t(c.N * c.K));
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t k = 0; k < c.K; ++k)
        c.weights[size_t(n * c.K + k)] = alpha * (trans_b ? data[n * c.K + k] : data[k * c.N + n]);
    if (gemm && node.inputs.size() > 2) {
      bias_input = node.inputs[2];
      bias_scale = node.attributes.get_float("beta", 1.f);
    }
  } else {
    return false;
  }
  if (bias_input >= 0) {
    const Tensor* b = constant_f32(g, bias_input);
    if (!b || !(b->numel() == c.N || b->numel() == 1)) return false;
    const Tensor bias = b->is_contiguous() ? *b : b->clone();
    c.bias.resize(size_t(c.N));
    for (int64_t n = 0; n < c.N; ++n) c.bias[size_t(n)] = bias_scale * bias.data<float>()[bias.numel() == 1 ? 0 : n];
  }
  if (c.N <= 0 || c.K <= 0) return false;
  *out = std::move(c);
  return true;
}

// Records the range of input 0 of the named nodes while a session runs the float graph.
class RangeObserver : public StepObserver {
 public:
  explicit RangeObserver(const std::set<std::string>& names) : names_(names) {}
  void before_step(const StepInfo& step) override {
    if (!step.node || !names_.count(step.node->name) || step.inputs.empty() || !step.inputs[0]) return;
    const Tensor x = step.inputs[0]->is_contiguous() ? *step.inputs[0] : step.inputs[0]->clone();
    if (x.dtype() != DType::f32) return;
    auto [it, inserted] = ranges.try_emplace(step.node->name, std::numeric_limits<float>::max(),
                                             std::numeric_limits<float>::lowest());
    for (int64_t i = 0; i < x.numel(); ++i) {
      it->second.first = std::min(it->second.first, x.data<float>()[i]);
      it->second.second = std::max(it->second.second, x.data<float>()[i]);
    }
  }
  std::map<std::string, std::pair<float, float>> ranges;

 private:
  const std::set<std::string>& names_;
};

Tensor planes_tensor(const std::vector<int32_t>& codes, int64_t N, int64_t K, int bits) {
  const int64_t row_bytes = (K + 7) / 8;
  Tensor planes(DType::u8, {N, bits, row_bytes});
  uint8_t* bytes = planes.data<uint8_t>();
  std::fill(bytes, bytes + planes.numel(), uint8_t(0));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      // Binary: -1 -> 0, +1 -> 1; signed: the two's complement bits.
      const int32_t code = codes[size_t(n * K + k)];
      const uint32_t bits_of_code = bits == 1 ? uint32_t(code > 0) : uint32_t(code);
      for (int b = 0; b < bits; ++b)
        if ((bits_of_code >> b) & 1u) bytes[(n * bits + b) * row_bytes + k / 8] |= uint8_t(1u << (k % 8));
    }
  return planes;
}

Tensor floats_tensor(const std::vector<float>& values) {
  Tensor t(DType::f32, {int64_t(values.size())});
  std::copy(values.begin(), values.end(), t.data<float>());
  return t;
}

}  // namespace

BitplaneReport apply_bitplane_quantization(Graph& graph, const BitplaneOptions& options) {
  TESSERA_CHECK(options.weight_bits >= 1 && options.weight_bits <= 8,
                "bit-plane quantization: weight bits must be 1..8, got " + std::to_string(options.weight_bits));
  TESSERA_CHECK(options.activation_bits >= 1 && options.activation_bits <= 8,
                "bit-plane quantization: activation bits must be 1..8, got " + std::to_string(options.activation_bits));
  remove_identity_nodes(graph);
  fold_batchnorm(graph);
  graph.remove_dead_nodes();
  graph.topological_sort();
  for (Node& node : graph.nodes)
    if (node.name.empty()) node.name = graph.unique_name(node.op_type);

  std::set<std::string> names_seen;
  for (const Node& node : graph.nodes) names_seen.insert(node.name);
  for (const auto* list : {&options.only_layers, &options.exclude_layers})
    for (const std::string& name : *list)
      TESSERA_CHECK(names_seen.count(name), "bit-plane quantization: no node named '" + name + "' in the graph");

  std::vector<Candidate> candidates;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    Candidate c;
    if (make_candidate(graph, i, &c)) candidates.push_back(std::move(c));
  }
  BitplaneReport report;
  std::vector<Candidate> chosen;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const std::string& name = graph.nodes[candidates[i].node].name;
    const bool listed = options.only_layers.empty() ||
                        std::find(options.only_layers.begin(), options.only_layers.end(), name) != options.only_layers.end();
    const bool excluded =
        std::find(options.exclude_layers.begin(), options.exclude_layers.end(), name) != options.exclude_layers.end() ||
        (options.keep_first_layer_f32 && i == 0) || (options.keep_last_layer_f32 && i + 1 == candidates.size());
    if (listed && !excluded)
      chosen.push_back(std::move(candidates[i]));
    else
      report.kept_f32_layers.push_back(name);
  }

  std::map<std::string, std::pair<float, float>> ranges;
  if (!options.calibration_inputs.empty() && !chosen.empty()) {
    std::set<std::string> names;
    for (const Candidate& c : chosen) names.insert(graph.nodes[c.node].name);
    SessionOptions session_options;
    session_options.optimize = false;  // node names and inputs as in this graph
    Session session(graph, session_options);
    RangeObserver observer(names);
    session.add_observer(&observer);
    session.run(options.calibration_inputs);
    ranges = observer.ranges;
    for (const std::string& name : names)
      TESSERA_CHECK(ranges.count(name), "bit-plane quantization: calibration did not reach node '" + name + "'");
    report.calibrated = true;
  }

  const auto consumers = graph.consumers();
  std::vector<bool> remove(graph.nodes.size(), false);
  for (const Candidate& c : chosen) {
    Node& node = graph.nodes[c.node];
    const QuantizedWeights q = quantize_weights(c.weights.data(), c.N, c.K, options.weight_bits);
    Node rewritten;
    rewritten.name = node.name;
    rewritten.op_type = c.conv ? "BitplaneConv" : "BitplaneMatMul";
    rewritten.domain = "tessera";
    rewritten.outputs = node.outputs;
    const Tensor planes = planes_tensor(q.codes, c.N, c.K, options.weight_bits);
    report.float_weight_bytes += c.N * c.K * 4;
    report.packed_weight_bytes += int64_t(planes.nbytes()) + c.N * 4;
    rewritten.inputs = {node.inputs[0], graph.add_constant(graph.unique_name(node.name + "_bitplanes"), planes),
                        graph.add_constant(graph.unique_name(node.name + "_weight_scales"), floats_tensor(q.scales))};
    rewritten.inputs.push_back(
        c.bias.empty() ? -1 : graph.add_constant(graph.unique_name(node.name + "_bias"), floats_tensor(c.bias)));
    if (report.calibrated) {
      const auto [lo, hi] = ranges.at(node.name);
      const ActivationQuantization a = activation_quantization(lo, hi, options.activation_bits);
      rewritten.inputs.push_back(graph.add_constant(graph.unique_name(node.name + "_activation_scale"),
                                                    floats_tensor({a.scale})));
      rewritten.inputs.push_back(graph.add_constant(graph.unique_name(node.name + "_activation_zero_point"),
                                                    floats_tensor({float(a.zero_point)})));
    }
    while (!rewritten.inputs.empty() && rewritten.inputs.back() < 0) rewritten.inputs.pop_back();
    Attributes& attrs = rewritten.attributes;
    attrs.set_int("weight_bits", options.weight_bits);
    attrs.set_int("activation_bits", options.activation_bits);
    attrs.set_string("weight_encoding", options.weight_bits == 1 ? "binary" : "signed");
    if (c.conv) {
      const std::vector<int64_t> kernel_shape = {graph.values[size_t(node.inputs[1])].constant.dim(2),
                                                 graph.values[size_t(node.inputs[1])].constant.dim(3)};
      attrs.set_ints("kernel_shape", kernel_shape);
      attrs.set_ints("strides", node.attributes.get_ints("strides", {1, 1}));
      attrs.set_ints("pads", node.attributes.get_ints("pads", {0, 0, 0, 0}));
      attrs.set_ints("dilations", node.attributes.get_ints("dilations", {1, 1}));
    }
    absorb_single_relu(graph, consumers, node, rewritten, attrs, remove);
    report.quantized_layers.push_back(node.name);
    node = std::move(rewritten);
  }
  finish_rewrite(graph, remove);
  return report;
}

}  // namespace tessera::compression
