// The BCQ graph rewrite: constant MatMul/Gemm weights fitted, packed and stored as LutMatMul's
// constant inputs (see bcq_quantize.h).
#include "compression/bcq_quantize.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "tessera/error.h"
#include "tessera/thread_pool.h"

namespace tessera::compression {

namespace {

const Tensor* constant_f32(const Graph& g, int value) {
  if (value < 0) return nullptr;
  const Value& v = g.values[size_t(value)];
  return v.is_constant() && v.constant.dtype() == DType::f32 ? &v.constant : nullptr;
}

// What a rewritable node computes: A [.., K] times W^T, W [N, K] row-major, plus bias.
struct Candidate {
  int a = -1;
  std::vector<float> weight;  // [N, K]
  int64_t rows = 0, cols = 0;
  std::vector<float> bias;  // N or empty
};

bool matmul_candidate(const Graph& g, const Node& n, Candidate& c) {
  if (n.inputs.size() < 2 || n.inputs.size() > 3 || n.outputs.size() != 1) return false;
  if (!n.attributes.all().empty()) return false;  // e.g. a fused activation
  const Tensor* b = constant_f32(g, n.inputs[1]);
  if (!b || b->rank() != 2 || !b->is_contiguous()) return false;
  const int64_t K = b->dim(0), N = b->dim(1);
  c.a = n.inputs[0];
  c.rows = N;
  c.cols = K;
  c.weight.resize(size_t(N * K));
  const float* src = b->data<float>();
  for (int64_t k = 0; k < K; ++k)
    for (int64_t j = 0; j < N; ++j) c.weight[size_t(j * K + k)] = src[k * N + j];
  if (n.inputs.size() == 3) {
    const Tensor* bias = constant_f32(g, n.inputs[2]);
    if (!bias || bias->numel() != N) return false;
    c.bias.assign(bias->data<float>(), bias->data<float>() + N);
  }
  return true;
}

bool gemm_candidate(const Graph& g, const Node& n, Candidate& c) {
  if (n.inputs.size() < 2 || n.outputs.size() != 1) return false;
  const Attributes& at = n.attributes;
  for (const auto& [name, value] : at.all())
    if (name != "alpha" && name != "beta" && name != "transA" && name != "transB") return false;
  if (at.get_int("transA", 0) != 0) return false;
  const Tensor* b = constant_f32(g, n.inputs[1]);
  if (!b || b->rank() != 2 || !b->is_contiguous()) return false;
  const bool trans_b = at.get_int("transB", 0) != 0;
  const float alpha = at.get_float("alpha", 1.f), beta = at.get_float("beta", 1.f);
  const int64_t K = trans_b ? b->dim(1) : b->dim(0), N = trans_b ? b->dim(0) : b->dim(1);
  c.a = n.inputs[0];
  c.rows = N;
  c.cols = K;
  c.weight.resize(size_t(N * K));
  const float* src = b->data<float>();
  for (int64_t j = 0; j < N; ++j)
    for (int64_t k = 0; k < K; ++k) c.weight[size_t(j * K + k)] = alpha * (trans_b ? src[j * K + k] : src[k * N + j]);
  if (n.inputs.size() >= 3 && n.inputs[2] >= 0 && beta != 0.f) {
    const Tensor* bias = constant_f32(g, n.inputs[2]);
    if (!bias) return false;
    if (bias->numel() == N && (bias->rank() == 1 || (bias->rank() == 2 && bias->dim(0) == 1))) {
      c.bias.resize(size_t(N));
      for (int64_t j = 0; j < N; ++j) c.bias[size_t(j)] = beta * bias->data<float>()[j];
    } else if (bias->numel() == 1) {
      c.bias.assign(size_t(N), beta * bias->data<float>()[0]);
    } else {
      return false;  // a per-row or full C
    }
  }
  return true;
}

}  // namespace

BcqQuantizeReport apply_bcq_quantization(Graph& graph, const BcqQuantizeOptions& options) {
  check_bcq_options(options.bcq);
  BcqQuantizeReport report;
  ThreadPool pool(0);
  for (size_t index = 0; index < graph.nodes.size(); ++index) {
    Node& node = graph.nodes[index];
    if (!node.domain.empty() || (node.op_type != "MatMul" && node.op_type != "Gemm")) continue;
    Candidate c;
    const bool ok = node.op_type == "MatMul" ? matmul_candidate(graph, node, c) : gemm_candidate(graph, node, c);
    if (!ok || c.rows * c.cols < std::max<int64_t>(1, options.min_weight_elements)) {
      ++report.skipped;
      continue;
    }
    const PackedBcq packed(bcq_fit(c.weight.data(), c.rows, c.cols, c.cols, options.bcq, &pool));
    Tensor signs(DType::i32, {int64_t(packed.sign_words().size())});
    std::memcpy(signs.raw_data(), packed.sign_words().data(), packed.sign_words().size() * sizeof(uint32_t));
    Tensor alphas(DType::f32, {int64_t(packed.alphas().size())});
    std::copy(packed.alphas().begin(), packed.alphas().end(), alphas.data<float>());
    const std::string base = node.name.empty() ? node.op_type : node.name;
    Node lut;
    lut.name = graph.unique_name(base + "_bcq");
    lut.op_type = "LutMatMul";
    lut.domain = "tessera";
    lut.outputs = node.outputs;
    lut.inputs = {c.a, graph.add_constant(graph.unique_name(base + "_bcq_signs"), std::move(signs)),
                  graph.add_constant(graph.unique_name(base + "_bcq_alphas"), std::move(alphas))};
    if (!c.bias.empty()) {
      Tensor bias(DType::f32, {c.rows});
      std::copy(c.bias.begin(), c.bias.end(), bias.data<float>());
      lut.inputs.push_back(graph.add_constant(graph.unique_name(base + "_bcq_bias"), std::move(bias)));
    }
    lut.attributes.set_int("rows", c.rows);
    lut.attributes.set_int("cols", c.cols);
    lut.attributes.set_int("bits", options.bcq.bits);
    lut.attributes.set_int("group_size", options.bcq.group_size);
    graph.nodes[index] = std::move(lut);  // `node` is not used past here
    ++report.rewritten;
    report.f32_weight_bytes += c.rows * c.cols * int64_t(sizeof(float));
    report.bcq_weight_bytes += packed.bytes();
  }
  if (report.rewritten > 0) {
    // Drop constants nobody reads any more (the f32 weights); graph inputs and outputs are kept.
    const auto consumers = graph.consumers();
    for (Value& v : graph.values) {
      const int id = graph.find_value(v.name);
      if (!v.is_constant() || id < 0 || !consumers[size_t(id)].empty()) continue;
      if (std::find(graph.outputs.begin(), graph.outputs.end(), id) != graph.outputs.end()) continue;
      v.constant = Tensor();
    }
  }
  return report;
}

}  // namespace tessera::compression
