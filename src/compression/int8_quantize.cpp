// Post-training int8 quantization into QDQ form (int8_quantize.h).
#include "compression/int8_quantize.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "graph/passes/pass_utils.h"
#include "graph/passes/passes.h"
#include "tessera/error.h"
#include "runtime/specialize.h"
#include "tessera/session.h"

namespace tessera::compression {
namespace {

// The standard rewrites done before quantizing (their results are plain ONNX).
Graph prepared_graph(const Graph& float_graph) {
  Graph g = float_graph;
  remove_identity_nodes(g);
  fold_batchnorm(g);
  g.remove_dead_nodes();
  g.topological_sort();
  return g;
}

bool quantizable_conv(const Graph& g, const Node& n) {
  if (!n.domain.empty() || n.op_type != "Conv" || n.attributes.get_int("group", 1) != 1) return false;
  const Tensor* w = pass_utils::constant_f32(g, n.inputs.size() > 1 ? n.inputs[1] : -1);
  if (!w || w->rank() != 4) return false;
  return n.inputs.size() < 3 || n.inputs[2] < 0 || pass_utils::constant_f32(g, n.inputs[2]);
}

// Gemm (transA 0, alpha = beta = 1, constant 2-D B, bias absent or a constant of N) or MatMul
// with a constant 2-D B: a layer with int8 weights along its output columns.
bool quantizable_matmul(const Graph& g, const Node& n) {
  if (!n.domain.empty() || n.inputs.size() < 2) return false;
  const Tensor* b = pass_utils::constant_f32(g, n.inputs[1]);
  if (!b || b->rank() != 2) return false;
  if (n.op_type == "MatMul") return n.inputs.size() == 2;
  if (n.op_type != "Gemm" || n.attributes.get_int("transA", 0) != 0 || n.attributes.get_float("alpha", 1.f) != 1.f ||
      n.attributes.get_float("beta", 1.f) != 1.f)
    return false;
  const int64_t columns = n.attributes.get_int("transB", 0) ? b->dim(0) : b->dim(1);
  if (n.inputs.size() < 3 || n.inputs[2] < 0) return true;
  const Tensor* c = pass_utils::constant_f32(g, n.inputs[2]);
  return c && c->numel() == columns;
}

bool quantizable_layer(const Graph& g, const Node& n) { return quantizable_conv(g, n) || quantizable_matmul(g, n); }

// The names of the values that are rank-4 f32 activations, learned by specializing a copy of
// the graph to its declared input shapes (symbolic dims 1): loaded graphs rarely declare the
// types and shapes of intermediate values. (The same names and ranks hold for any batch.)
struct ActivationKinds {
  std::map<std::string, size_t> f32_rank;  // non-constant f32 values by name -> rank
  bool has_rank(const Graph& g, int value, size_t rank) const {
    const Value& v = g.values[size_t(value)];
    const auto found = f32_rank.find(v.name);
    return !v.is_constant() && found != f32_rank.end() && found->second == rank;
  }
  bool operator()(const Graph& g, int value) const { return has_rank(g, value, 4); }
};

ActivationKinds activation_kinds(const Graph& g) {
  Graph copy = g;
  ThreadPool pool(1);
  specialize_graph(copy, default_input_shapes(copy), pool);
  ActivationKinds kinds;
  for (const Value& v : copy.values)
    if (!v.is_constant() && v.has_type && v.dtype == DType::f32 && v.has_shape) kinds.f32_rank[v.name] = v.dims.size();
  return kinds;
}

// The value a node's quantized output is taken at: after a Relu that alone reads it.
int quantization_point(const Graph& g, const std::vector<std::vector<int>>& consumers, int value) {
  if (pass_utils::single_consumer(g, consumers, value)) {
    const Node& next = g.nodes[size_t(consumers[size_t(value)][0])];
    if (next.domain.empty() && next.op_type == "Relu") return next.outputs[0];
  }
  return value;
}

struct QuantizationPlan {
  std::vector<int> convolutions;   // node indices
  std::vector<int> matmuls;        // node indices (Gemm, MatMul)
  std::vector<int> activations;    // value ids, in first-seen order
};

QuantizationPlan plan_quantization(const Graph& g, const ActivationKinds& rank4_f32,
                                   const std::set<std::string>& keep_float) {
  QuantizationPlan plan;
  const auto consumers = g.consumers();
  std::set<int> seen;
  auto add = [&](int value) {
    if (value >= 0 && rank4_f32(g, value) && seen.insert(value).second) plan.activations.push_back(value);
  };
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (!n.domain.empty()) continue;
    if (n.op_type == "Conv") {
      if (!quantizable_conv(g, n) || keep_float.count(n.name)) continue;
      if (!rank4_f32(g, n.inputs[0])) continue;
      plan.convolutions.push_back(int(i));
      add(n.inputs[0]);
      add(quantization_point(g, consumers, n.outputs[0]));
    } else if (n.op_type == "Gemm" || n.op_type == "MatMul") {
      if (!quantizable_matmul(g, n) || keep_float.count(n.name) || !rank4_f32.has_rank(g, n.inputs[0], 2)) continue;
      plan.matmuls.push_back(int(i));
      if (seen.insert(n.inputs[0]).second) plan.activations.push_back(n.inputs[0]);
      // The output too, unless it leaves the model (logits stay f32).
      const int out = quantization_point(g, consumers, n.outputs[0]);
      if (!pass_utils::is_graph_output(g, out) && rank4_f32.has_rank(g, out, 2) && seen.insert(out).second)
        plan.activations.push_back(out);
    } else if ((n.op_type == "Add" && n.inputs.size() == 2) || n.op_type == "MaxPool" ||
               n.op_type == "GlobalAveragePool") {
      if (n.outputs.size() > 1 && n.outputs[1] >= 0) continue;  // MaxPool indices
      bool inputs_ok = true;
      for (int in : n.inputs) inputs_ok = inputs_ok && in >= 0 && rank4_f32(g, in);
      if (!inputs_ok || !rank4_f32(g, n.outputs[0])) continue;
      for (int in : n.inputs) add(in);
      add(quantization_point(g, consumers, n.outputs[0]));
    }
  }
  return plan;
}

struct ActivationParams {
  float scale = 1.f;
  int32_t zero_point = 0;  // in the tensor's own type (s8 or u8)
  bool s8 = false;
};

// Observes every candidate activation over the calibration set and derives its parameters.
std::map<std::string, ActivationParams> calibrate(const Graph& g, const std::vector<int>& activations,
                                                  const std::vector<Feeds>& calibration,
                                                  const Int8QuantizeOptions& options) {
  if (calibration.empty()) throw Error("int8 quantization needs at least one calibration batch");
  Graph observed = g;
  for (int v : activations)
    if (!pass_utils::is_graph_output(observed, v)) observed.outputs.push_back(v);
  SessionOptions session_options;
  session_options.optimize = false;  // observe the tensors exactly as the QDQ graph will have them
  Session session(std::move(observed), session_options);
  std::map<std::string, RangeObserver> observers;
  const bool histogram = options.calibration != CalibrationMethod::min_max;
  for (int pass = 0; pass < (histogram ? 2 : 1); ++pass)
    for (const Feeds& feeds : calibration) {
      const auto outputs = session.run(feeds);
      for (int v : activations) {
        const std::string& name = g.values[size_t(v)].name;
        const Tensor& t = outputs.at(name);
        if (pass == 0)
          observers[name].observe_range(t.data<float>(), t.numel());
        else
          observers[name].observe_histogram(t.data<float>(), t.numel());
      }
    }
  std::map<std::string, ActivationParams> params;
  for (const auto& [name, observer] : observers) {
    float low, high;
    observer.range(options.calibration, options.percentile, 256, &low, &high);
    ActivationParams p;
    if (options.symmetric_activations) {
      p.s8 = true;
      p.scale = std::max(std::fabs(low), std::fabs(high)) / 127.f;
      p.zero_point = 0;
    } else {
      p.scale = (high - low) / 255.f;
      if (p.scale > 0) p.zero_point = std::clamp(int32_t(std::nearbyint(-low / p.scale)), 0, 255);
    }
    if (!(p.scale > 0.f) || !std::isfinite(p.scale)) p.scale = 1.f;  // a constant-zero tensor
    params[name] = p;
  }
  return params;
}

Tensor scalar_tensor(DType dtype, double value) {
  Tensor t(dtype, {});
  switch (dtype) {
    case DType::f32:
      t.data<float>()[0] = float(value);
      break;
    case DType::u8:
      t.data<uint8_t>()[0] = uint8_t(value);
      break;
    case DType::i8:
      t.data<int8_t>()[0] = int8_t(value);
      break;
    default:
      throw Error("scalar_tensor: unexpected type");
  }
  return t;
}

Node make_node(Graph& g, const std::string& op, const std::string& base, std::vector<int> inputs, int output) {
  Node n;
  n.name = g.unique_name(base);
  n.op_type = op;
  n.inputs = std::move(inputs);
  n.outputs = {output};
  return n;
}

int new_value(Graph& g, const std::string& base, DType dtype, std::vector<Dim> dims) {
  const int id = g.add_value(g.unique_name(base));
  Value& v = g.values[size_t(id)];
  v.dtype = dtype;
  v.has_type = true;
  v.has_shape = !dims.empty();
  v.dims = std::move(dims);
  return id;
}

// Quantizes the weights (and bias) of layer `index` given its input's scale: per output channel
// along `axis` of the weights (0: Conv [Cout, ...] and Gemm's transposed B [N, K]; 1: B [K, N]).
void quantize_layer_weights(Graph& g, int index, float input_scale, bool per_channel, int axis) {
  Node conv = g.nodes[size_t(index)];
  const Tensor w = g.values[size_t(conv.inputs[1])].constant;
  const int64_t cout = w.dim(axis), inner = axis == 0 ? w.numel() / cout : 1;
  auto channel_of = [&](int64_t i) { return (i / inner) % cout; };
  const int64_t groups = per_channel ? cout : 1;
  std::vector<float> scales(size_t(groups), 0.f);
  for (int64_t i = 0; i < w.numel(); ++i) {
    float& s = scales[size_t(per_channel ? channel_of(i) : 0)];
    s = std::max(s, std::fabs(w.data<float>()[i]) / 127.f);
  }
  for (float& s : scales)
    if (!(s > 0.f)) s = 1.f;  // an all-zero channel
  Tensor wq(DType::i8, w.shape());
  for (int64_t i = 0; i < w.numel(); ++i) {
    const float s = scales[size_t(per_channel ? channel_of(i) : 0)];
    wq.data<int8_t>()[i] = int8_t(std::clamp(std::nearbyint(w.data<float>()[i] / s), -127.f, 127.f));
  }
  Tensor scale_tensor(DType::f32, per_channel ? Shape{cout} : Shape{});
  Tensor zero_tensor(DType::i8, per_channel ? Shape{cout} : Shape{});
  for (int64_t i = 0; i < groups; ++i) scale_tensor.data<float>()[i] = scales[size_t(i)];
  const std::string base = g.values[size_t(conv.inputs[1])].name;
  const int wq_id = g.add_constant(g.unique_name(base + "_quantized"), std::move(wq));
  const int scale_id = g.add_constant(g.unique_name(base + "_scale"), std::move(scale_tensor));
  const int zero_id = g.add_constant(g.unique_name(base + "_zero_point"), std::move(zero_tensor));
  std::vector<Dim> w_dims;
  for (int64_t d : w.shape()) w_dims.push_back(Dim{d, ""});
  const int w_dq = new_value(g, base + "_dequantized", DType::f32, w_dims);
  Node dq = make_node(g, "DequantizeLinear", conv.name + "_weight_dq", {wq_id, scale_id, zero_id}, w_dq);
  if (per_channel) dq.attributes.set_int("axis", axis);
  g.nodes.push_back(std::move(dq));
  g.nodes[size_t(index)].inputs[1] = w_dq;

  if (conv.inputs.size() > 2 && conv.inputs[2] >= 0) {
    const Tensor b = g.values[size_t(conv.inputs[2])].constant;
    Tensor bq(DType::i32, {cout}), b_scale(DType::f32, {cout}), b_zero(DType::i32, {cout});
    for (int64_t c = 0; c < cout; ++c) {
      const double s = double(input_scale) * scales[size_t(per_channel ? c : 0)];
      b_scale.data<float>()[c] = float(s);
      bq.data<int32_t>()[c] = int32_t(std::clamp(std::nearbyint(b.data<float>()[c] / s), -2147483647.0, 2147483647.0));
    }
    const std::string bias_base = g.values[size_t(conv.inputs[2])].name;
    const int bq_id = g.add_constant(g.unique_name(bias_base + "_quantized"), std::move(bq));
    const int bs_id = g.add_constant(g.unique_name(bias_base + "_scale"), std::move(b_scale));
    const int bz_id = g.add_constant(g.unique_name(bias_base + "_zero_point"), std::move(b_zero));
    const int b_dq = new_value(g, bias_base + "_dequantized", DType::f32, {Dim{cout, ""}});
    Node bias_dq = make_node(g, "DequantizeLinear", conv.name + "_bias_dq", {bq_id, bs_id, bz_id}, b_dq);
    bias_dq.attributes.set_int("axis", 0);
    g.nodes.push_back(std::move(bias_dq));
    g.nodes[size_t(index)].inputs[2] = b_dq;
  }
}

Graph build_qdq(Graph g, const QuantizationPlan& plan, const std::map<std::string, ActivationParams>& params,
                const Int8QuantizeOptions& options, Int8QuantizeReport* report) {
  // Activations: Q then DQ right after each, every reader moved to the DQ's output.
  std::map<int, float> scale_of;
  for (int v : plan.activations) {
    const ActivationParams& p = params.at(g.values[size_t(v)].name);
    scale_of[v] = p.scale;
    const std::string name = g.values[size_t(v)].name;
    const std::vector<Dim> dims = g.values[size_t(v)].dims;
    const DType type = p.s8 ? DType::i8 : DType::u8;
    const int scale_id = g.add_constant(g.unique_name(name + "_scale"), scalar_tensor(DType::f32, p.scale));
    const int zero_id = g.add_constant(g.unique_name(name + "_zero_point"), scalar_tensor(type, p.zero_point));
    const int q = new_value(g, name + "_quantized", type, dims);
    const int dq = new_value(g, name + "_dequantized", DType::f32, dims);
    for (Node& n : g.nodes)
      for (int& in : n.inputs)
        if (in == v) in = dq;
    g.nodes.push_back(make_node(g, "QuantizeLinear", name + "_q", {v, scale_id, zero_id}, q));
    g.nodes.push_back(make_node(g, "DequantizeLinear", name + "_dq", {q, scale_id, zero_id}, dq));
  }
  // Weights, with each convolution's input scale for its bias. The convolution's input now
  // reads the DQ of its original input.
  const auto producers = g.producers();
  auto input_scale = [&](int index) {
    const int dq_value = g.nodes[size_t(index)].inputs[0];
    const Node& dq = g.nodes[size_t(producers[size_t(dq_value)])];
    return scale_of.at(g.nodes[size_t(producers[size_t(dq.inputs[0])])].inputs[0]);
  };
  for (int index : plan.convolutions) quantize_layer_weights(g, index, input_scale(index), options.per_channel, 0);
  for (int index : plan.matmuls) {
    const bool transposed = g.nodes[size_t(index)].op_type == "Gemm" && g.nodes[size_t(index)].attributes.get_int("transB", 0);
    quantize_layer_weights(g, index, input_scale(index), options.per_channel, transposed ? 0 : 1);
  }
  if (report) {
    report->convolutions_quantized = int(plan.convolutions.size());
    report->matmuls_quantized = int(plan.matmuls.size());
    for (int index : plan.matmuls) report->quantized_layers.push_back(g.nodes[size_t(index)].name);
    report->activations_quantized = int(plan.activations.size());
    for (int index : plan.convolutions) report->quantized_layers.push_back(g.nodes[size_t(index)].name);
  }
  g.topological_sort();
  return g;
}

}  // namespace

std::vector<std::string> quantizable_layers(const Graph& float_graph) {
  const Graph g = prepared_graph(float_graph);
  std::vector<std::string> names;
  for (const Node& n : g.nodes)
    if (quantizable_layer(g, n)) names.push_back(n.name);
  return names;
}

Graph quantize_int8(const Graph& float_graph, const std::vector<Feeds>& calibration,
                    const Int8QuantizeOptions& options, Int8QuantizeReport* report) {
  const Graph g = prepared_graph(float_graph);
  const ActivationKinds kinds = activation_kinds(g);
  const QuantizationPlan everything = plan_quantization(g, kinds, {});
  const QuantizationPlan plan = plan_quantization(g, kinds, options.keep_float);
  const auto params = calibrate(g, everything.activations, calibration, options);
  if (report) {
    *report = Int8QuantizeReport{};
    for (const Node& n : g.nodes)
      if (quantizable_layer(g, n) && options.keep_float.count(n.name)) report->float_layers.push_back(n.name);
    report->layers_kept_float = int(report->float_layers.size());
  }
  return build_qdq(g, plan, params, options, report);
}

Int8QuantizeOptions choose_float_layers(const Graph& float_graph, const std::vector<Feeds>& calibration,
                                        Int8QuantizeOptions options,
                                        const std::function<double(const Graph&)>& evaluate, double max_drop,
                                        std::string* log) {
  const Graph g = prepared_graph(float_graph);
  const ActivationKinds kinds = activation_kinds(g);
  const QuantizationPlan everything = plan_quantization(g, kinds, {});
  const auto params = calibrate(g, everything.activations, calibration, options);
  auto quantized_score = [&](const std::set<std::string>& keep) {
    Int8QuantizeOptions o = options;
    o.keep_float = keep;
    return evaluate(build_qdq(g, plan_quantization(g, kinds, keep), params, o, nullptr));
  };
  std::ostringstream out;
  const double float_score = evaluate(g);
  double score = quantized_score(options.keep_float);
  out << "float " << float_score << ", all quantized " << score << "\n";
  if (float_score - score > max_drop) {
    const double base = score;
    std::vector<std::pair<double, std::string>> gains;
    for (const std::string& name : quantizable_layers(g)) {
      if (options.keep_float.count(name)) continue;
      std::set<std::string> keep = options.keep_float;
      keep.insert(name);
      gains.push_back({quantized_score(keep) - base, name});
    }
    std::stable_sort(gains.begin(), gains.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (const auto& [gain, name] : gains) {
      if (float_score - score <= max_drop) break;
      options.keep_float.insert(name);
      score = quantized_score(options.keep_float);
      out << "keep " << name << " in f32 (alone: +" << gain << "): " << score << "\n";
    }
  }
  if (log) *log = out.str();
  return options;
}

}  // namespace tessera::compression
