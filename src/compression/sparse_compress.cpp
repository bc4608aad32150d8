// apply_sparsity: prune the weights of Conv/Gemm/MatMul layers, fold BatchNormalization and
// activations into them, and rewrite the layers where a sparse kernel pays off (sparse_compress.h).
#include "compression/sparse_compress.h"

#include <map>
#include <set>

#include "compression/sparse_gemm.h"
#include "compression/sparse_pruning.h"
#include "graph/passes/passes.h"

namespace tessera {

namespace {

// A layer whose constant weights form an [outputs, reduction] matrix, stored either that way
// (Conv, Gemm with transB) or transposed as [reduction, outputs] (MatMul, Gemm without transB).
struct Layer {
  int node = -1;
  int weight = -1;  // value id
  int64_t outputs = 0, reduction = 0;
  bool stored_transposed = false;
};

const Tensor* constant_f32(const Graph& graph, int value) {
  if (value < 0) return nullptr;
  const Value& v = graph.values[size_t(value)];
  return v.is_constant() && v.constant.dtype() == DType::f32 ? &v.constant : nullptr;
}

bool eligible(const Graph& graph, int index, Layer* layer) {
  const Node& node = graph.nodes[size_t(index)];
  if (!node.domain.empty() || node.inputs.size() < 2) return false;
  const Tensor* w = constant_f32(graph, node.inputs[1]);
  if (!w || node.inputs[0] < 0) return false;
  layer->node = index;
  layer->weight = node.inputs[1];
  if (node.op_type == "Conv") {
    if (node.attributes.get_int("group", 1) != 1 || w->rank() < 3 || w->rank() > 4 || w->dim(0) == 0) return false;
    layer->outputs = w->dim(0);
    layer->reduction = w->numel() / w->dim(0);
    layer->stored_transposed = false;
    return true;
  }
  if (w->rank() != 2) return false;
  if (node.op_type == "Gemm") {
    if (node.attributes.get_int("transA", 0) != 0 || node.attributes.get_float("alpha", 1.f) != 1.f) return false;
    const bool trans_b = node.attributes.get_int("transB", 0) != 0;
    layer->outputs = trans_b ? w->dim(0) : w->dim(1);
    layer->reduction = trans_b ? w->dim(1) : w->dim(0);
    layer->stored_transposed = !trans_b;
    return true;
  }
  if (node.op_type == "MatMul") {
    layer->outputs = w->dim(1);
    layer->reduction = w->dim(0);
    layer->stored_transposed = true;
    return true;
  }
  return false;
}

std::vector<float> weight_matrix(const Graph& graph, const Layer& layer) {
  const Tensor c = graph.values[size_t(layer.weight)].constant.clone();
  const float* w = c.data<float>();
  std::vector<float> m(size_t(layer.outputs * layer.reduction));
  if (!layer.stored_transposed) return std::vector<float>(w, w + m.size());
  for (int64_t k = 0; k < layer.reduction; ++k)
    for (int64_t o = 0; o < layer.outputs; ++o) m[size_t(o * layer.reduction + k)] = w[k * layer.outputs + o];
  return m;
}

void store_weight_matrix(Graph& graph, const Layer& layer, const std::vector<float>& m) {
  Value& value = graph.values[size_t(layer.weight)];
  Tensor out(DType::f32, value.constant.shape());
  float* w = out.data<float>();
  if (!layer.stored_transposed) {
    std::copy(m.begin(), m.end(), w);
  } else {
    for (int64_t k = 0; k < layer.reduction; ++k)
      for (int64_t o = 0; o < layer.outputs; ++o) w[k * layer.outputs + o] = m[size_t(o * layer.reduction + k)];
  }
  value.constant = out;
}

template <typename T>
Tensor tensor_from(const std::vector<T>& values, DType dtype, Shape shape) {
  Tensor t(dtype, std::move(shape));
  if (!values.empty()) std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}

// Adds the compressed weights as constants; returns the ids of values, indices, row offsets (-1 for N:M).
std::vector<int> add_compressed_weights(Graph& graph, const std::string& base, const std::vector<float>& m,
                                        const Layer& layer, bool n_of_m, const SparsityOptions& options) {
  const int64_t rows = layer.outputs, cols = layer.reduction;
  if (n_of_m) {
    const sparse::NOfMMatrix s = sparse::NOfMMatrix::from_dense(m.data(), rows, cols, options.n, options.m);
    const int64_t per_row = s.entries_per_row();
    return {graph.add_constant(graph.unique_name(base + "_sparse_values"), tensor_from(s.value, DType::f32, {rows, per_row})),
            graph.add_constant(graph.unique_name(base + "_sparse_offsets"), tensor_from(s.offset, DType::u8, {rows, per_row})),
            -1};
  }
  const sparse::CsrMatrix s = sparse::CsrMatrix::from_dense(m.data(), rows, cols);
  return {graph.add_constant(graph.unique_name(base + "_sparse_values"), tensor_from(s.value, DType::f32, {s.nonzeros()})),
          graph.add_constant(graph.unique_name(base + "_sparse_columns"), tensor_from(s.column, DType::i32, {s.nonzeros()})),
          graph.add_constant(graph.unique_name(base + "_sparse_row_offsets"),
                             tensor_from(s.row_start, DType::i64, {rows + 1}))};
}

void check_options(const SparsityOptions& options) {
  if (options.method != SparsityOptions::Method::n_of_m && !(options.sparsity >= 0.0 && options.sparsity <= 1.0))
    throw Error("sparsity must lie in [0, 1], got " + std::to_string(options.sparsity));
  if (options.method == SparsityOptions::Method::n_of_m &&
      (options.n < 1 || options.m < 1 || options.n > options.m || options.m > 255))
    throw Error("N:M sparsity needs 1 <= N <= M <= 255, got " + std::to_string(options.n) + ":" + std::to_string(options.m));
}

}  // namespace

bool sparse_kernel_pays_off(bool n_of_m, double density) {
  return n_of_m ? density <= 0.25 : density <= 0.2;
}

SparsityReport apply_sparsity(Graph& graph, const SparsityOptions& options) {
  check_options(options);
  using Method = SparsityOptions::Method;
  // 1. Prune. Layers are remembered by node name: the passes below give folded weights new values.
  std::set<std::string> pruned_nodes;
  std::set<int> pruned_weights;
  std::vector<Layer> layers;
  std::vector<std::vector<float>> matrices;
  for (int i = 0; i < int(graph.nodes.size()); ++i) {
    Layer layer;
    if (!eligible(graph, i, &layer) || layer.outputs * layer.reduction < options.min_weights) continue;
    Node& node = graph.nodes[size_t(i)];
    if (node.name.empty() || pruned_nodes.count(node.name)) node.name = graph.unique_name(node.op_type + "_sparse");
    pruned_nodes.insert(node.name);
    if (!pruned_weights.insert(layer.weight).second) continue;  // a weight shared by two nodes: once
    layers.push_back(layer);
    matrices.push_back(weight_matrix(graph, layer));
  }
  if (options.method == Method::global_magnitude) {
    std::vector<sparse::WeightSpan> spans;
    for (auto& m : matrices) spans.push_back({m.data(), int64_t(m.size())});
    sparse::global_magnitude_prune(spans, options.sparsity);
  }
  for (size_t l = 0; l < layers.size(); ++l) {
    std::vector<float>& m = matrices[l];
    if (options.method == Method::magnitude) sparse::magnitude_prune(m.data(), int64_t(m.size()), options.sparsity);
    if (options.method == Method::n_of_m)
      sparse::prune_n_of_m(m.data(), layers[l].outputs, layers[l].reduction, options.n, options.m);
    store_weight_matrix(graph, layers[l], m);
  }

  // 2. Fold BatchNormalization and activations into the pruned layers (per-row scales keep zeros).
  run_graph_passes(graph);

  // 3. Rewrite.
  SparsityReport report;
  const bool n_of_m = options.method == Method::n_of_m;
  std::vector<Node> rewritten;
  for (int i = 0; i < int(graph.nodes.size()); ++i) {
    Layer layer;
    Node& node = graph.nodes[size_t(i)];
    if (!pruned_nodes.count(node.name) || !eligible(graph, i, &layer)) continue;
    const std::vector<float> m = weight_matrix(graph, layer);
    SparseLayerReport entry;
    entry.node = node.name;
    entry.op_type = node.op_type;
    entry.weight_shape = graph.values[size_t(layer.weight)].constant.shape();
    entry.weights = int64_t(m.size());
    for (float v : m) entry.zeros += v == 0.f;
    report.weights += entry.weights;
    report.zeros += entry.zeros;
    const double density = entry.weights ? 1.0 - double(entry.zeros) / double(entry.weights) : 0.0;
    bool sparse_kernel = options.kernels == SparsityOptions::Kernels::always ||
                         (options.kernels == SparsityOptions::Kernels::automatic && sparse_kernel_pays_off(n_of_m, density));
    // Gemm's C must be a bias per output (beta 1) to become the sparse node's epilogue.
    Attributes attributes = node.attributes;
    int bias = -1;
    if (node.op_type == "Gemm" && node.inputs.size() > 2 && node.inputs[2] >= 0) {
      const Value& c = graph.values[size_t(node.inputs[2])];
      int64_t numel = 1;
      for (const Dim& d : c.dims) numel = d.known() ? numel * d.value : -1;
      const bool per_output = c.is_constant() ? c.constant.numel() == layer.outputs
                                              : (c.has_shape && numel == layer.outputs && c.dims.size() <= 2);
      if (node.attributes.get_float("beta", 1.f) != 1.f || !per_output) sparse_kernel = false;
      bias = node.inputs[2];
    } else if (node.inputs.size() > 2) {
      bias = node.inputs[2];  // Conv's B, MatMul's fused bias
    }
    entry.kernel = sparse_kernel ? (n_of_m ? kSparseFormatNOfM : kSparseFormatCsr) : "dense";
    report.layers.push_back(entry);
    if (!sparse_kernel) continue;

    const std::vector<int> weights = add_compressed_weights(graph, node.name, m, layer, n_of_m, options);
    Node sparse_node;
    sparse_node.name = node.name;
    sparse_node.domain = "tessera";
    sparse_node.outputs = node.outputs;
    sparse_node.inputs = {node.inputs[0], weights[0], weights[1], weights[2], bias};
    for (const char* gemm_only : {"transA", "transB", "alpha", "beta"}) attributes.erase(gemm_only);
    attributes.set_string(kSparseFormatAttribute, n_of_m ? kSparseFormatNOfM : kSparseFormatCsr);
    if (n_of_m) {
      attributes.set_int("n", options.n);
      attributes.set_int("m", options.m);
    }
    if (node.op_type == "Conv") {
      sparse_node.op_type = kSparseConvOp;
      attributes.set_ints(kSparseWeightShapeAttribute, entry.weight_shape);
      const int64_t residual = node.attributes.get_int("tessera.residual_input", -1);
      if (residual >= 0) {
        sparse_node.inputs.push_back(node.inputs[size_t(residual)]);
        attributes.set_int("tessera.residual_input", 5);
      }
    } else {
      sparse_node.op_type = kSparseMatMulOp;
      attributes.set_ints(kSparseWeightShapeAttribute, {layer.reduction, layer.outputs});
    }
    sparse_node.attributes = std::move(attributes);
    const int old_weight = layer.weight;
    node = std::move(sparse_node);
    // Drop the dense copy when nothing else reads it, so the compressed graph carries one copy.
    bool still_read = false;
    for (const Node& other : graph.nodes)
      for (int input : other.inputs) still_read = still_read || input == old_weight;
    if (!still_read) graph.values[size_t(old_weight)].constant = Tensor();
  }
  graph.remove_dead_nodes();
  graph.topological_sort();
  return report;
}

}  // namespace tessera
