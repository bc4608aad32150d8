// Pass: fold an inference BatchNormalization into the Conv or Gemm that feeds it:
// y = (W x + b - mean) * s / sqrt(var + eps) + beta  ==>  W' = W * a, b' = (b - mean) * a + beta.
#include <cmath>

#include "graph/passes/pass_utils.h"
#include "graph/passes/passes.h"

namespace tessera {

namespace {

struct BatchNormScale {
  std::vector<float> a;      // scale / sqrt(var + eps), per channel
  std::vector<float> shift;  // beta - mean * a, per channel
};

bool batchnorm_constants(const Graph& g, const Node& bn, BatchNormScale* out) {
  if (bn.inputs.size() < 5) return false;
  const Tensor* scale = pass_utils::constant_f32(g, bn.inputs[1]);
  const Tensor* bias = pass_utils::constant_f32(g, bn.inputs[2]);
  const Tensor* mean = pass_utils::constant_f32(g, bn.inputs[3]);
  const Tensor* var = pass_utils::constant_f32(g, bn.inputs[4]);
  if (!scale || !bias || !mean || !var) return false;
  int64_t c = scale->numel();
  if (bias->numel() != c || mean->numel() != c || var->numel() != c) return false;
  for (size_t o = 1; o < bn.outputs.size(); ++o)
    if (bn.outputs[o] >= 0) return false;  // training-mode outputs requested
  if (bn.attributes.get_int("training_mode", 0) != 0) return false;
  float eps = bn.attributes.get_float("epsilon", 1e-5f);
  out->a.resize(size_t(c));
  out->shift.resize(size_t(c));
  for (int64_t i = 0; i < c; ++i) {
    float a = scale->data<float>()[i] / std::sqrt(var->data<float>()[i] + eps);
    out->a[size_t(i)] = a;
    out->shift[size_t(i)] = bias->data<float>()[i] - mean->data<float>()[i] * a;
  }
  return true;
}

bool fold_into_conv(Graph& g, Node& conv, const BatchNormScale& bn) {
  const Tensor* weight = pass_utils::constant_f32(g, conv.inputs.size() > 1 ? conv.inputs[1] : -1);
  if (!weight || weight->rank() < 3 || weight->dim(0) != int64_t(bn.a.size())) return false;
  const Tensor* bias = conv.inputs.size() > 2 ? pass_utils::constant_f32(g, conv.inputs[2]) : nullptr;
  if (conv.inputs.size() > 2 && conv.inputs[2] >= 0 && !bias) return false;
  int64_t out_channels = weight->dim(0), per_channel = weight->numel() / out_channels;
  Tensor new_weight = weight->clone();
  Tensor new_bias(DType::f32, {out_channels});
  for (int64_t o = 0; o < out_channels; ++o) {
    float a = bn.a[size_t(o)];
    float* w = new_weight.data<float>() + o * per_channel;
    for (int64_t i = 0; i < per_channel; ++i) w[i] *= a;
    float b = bias ? bias->data<float>()[o] : 0.f;
    new_bias.data<float>()[o] = b * a + bn.shift[size_t(o)];
  }
  conv.inputs[1] = g.add_constant(g.values[size_t(conv.inputs[1])].name + "_bn_folded", new_weight);
  int bias_id = g.add_constant(conv.name + "_bn_bias", new_bias);
  if (conv.inputs.size() > 2) conv.inputs[2] = bias_id;
  else conv.inputs.push_back(bias_id);
  return true;
}

bool fold_into_gemm(Graph& g, Node& gemm, const BatchNormScale& bn) {
  if (gemm.inputs.size() < 2) return false;
  const Tensor* b_matrix = pass_utils::constant_f32(g, gemm.inputs[1]);
  if (!b_matrix || b_matrix->rank() != 2) return false;
  bool trans_b = gemm.attributes.get_int("transB", 0) != 0;
  int64_t n = trans_b ? b_matrix->dim(0) : b_matrix->dim(1);
  int64_t k = trans_b ? b_matrix->dim(1) : b_matrix->dim(0);
  if (n != int64_t(bn.a.size())) return false;
  const Tensor* c = gemm.inputs.size() > 2 ? pass_utils::constant_f32(g, gemm.inputs[2]) : nullptr;
  if (gemm.inputs.size() > 2 && gemm.inputs[2] >= 0 && !c) return false;
  if (c && !(c->numel() == 1 || (c->numel() == n && c->shape().back() == n))) return false;
  float beta = gemm.attributes.get_float("beta", 1.f);
  Tensor new_b = b_matrix->clone();
  for (int64_t kk = 0; kk < k; ++kk)
    for (int64_t j = 0; j < n; ++j) {
      float& w = trans_b ? new_b.data<float>()[j * k + kk] : new_b.data<float>()[kk * n + j];
      w *= bn.a[size_t(j)];
    }
  Tensor new_c(DType::f32, {n});
  for (int64_t j = 0; j < n; ++j) {
    float cv = c ? c->data<float>()[c->numel() == 1 ? 0 : j] * beta : 0.f;
    new_c.data<float>()[j] = cv * bn.a[size_t(j)] + bn.shift[size_t(j)];
  }
  gemm.inputs[1] = g.add_constant(g.values[size_t(gemm.inputs[1])].name + "_bn_folded", new_b);
  int c_id = g.add_constant(gemm.name + "_bn_bias", new_c);
  if (gemm.inputs.size() > 2) gemm.inputs[2] = c_id;
  else gemm.inputs.push_back(c_id);
  gemm.attributes.set_float("beta", 1.f);
  return true;
}

}  // namespace

int fold_batchnorm(Graph& graph) {
  auto consumers = graph.consumers();
  auto producers = graph.producers();
  std::vector<bool> remove(graph.nodes.size(), false);
  int folded = 0;
  for (size_t n = 0; n < graph.nodes.size(); ++n) {
    Node& bn = graph.nodes[n];
    if (bn.op_type != "BatchNormalization" || !bn.domain.empty() || bn.inputs.empty()) continue;
    int x = bn.inputs[0];
    if (x < 0 || producers[size_t(x)] < 0 || !pass_utils::single_consumer(graph, consumers, x)) continue;
    Node& producer = graph.nodes[size_t(producers[size_t(x)])];
    if (!producer.domain.empty() || producer.attributes.has("tessera.activation") ||
        producer.attributes.has("tessera.residual_input"))
      continue;
    BatchNormScale scale;
    if (!batchnorm_constants(graph, bn, &scale)) continue;
    bool ok = false;
    if (producer.op_type == "Conv") ok = fold_into_conv(graph, producer, scale);
    else if (producer.op_type == "Gemm") ok = fold_into_gemm(graph, producer, scale);
    if (!ok) continue;
    producer.outputs[0] = bn.outputs[0];
    remove[n] = true;
    ++folded;
  }
  pass_utils::erase_nodes(graph, remove);
  return folded;
}

}  // namespace tessera
