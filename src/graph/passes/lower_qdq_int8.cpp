// Lowers QDQ-quantized CNN graphs (QuantizeLinear / DequantizeLinear around float operators, the
// standard ONNX form that `tessera compress --method int8` and other quantizers write) to integer
// operators on u8 NHWC activations (src/ops/int8_nhwc.cpp):
//   DQ(x) -> Conv(DQ(w s8), bias) [-> Relu] -> Q        becomes tessera.Int8Conv
//   DQ(a) + DQ(b) [-> Relu] -> Q                        joins the epilogue of the Int8Conv making a
//                                                       (or becomes tessera.Int8Add)
//   DQ(x) -> MaxPool / GlobalAveragePool -> Q           becomes tessera.Int8MaxPool / ...AveragePool
//   DQ(a) -> MatMul / Gemm(DQ(w s8)) [-> Relu] [-> Q]    becomes tessera.Int8MatMul (u8 or f32 out)
// The first quantization of a region becomes tessera.QuantizeLinearNhwc; where a lowered value is
// read by anything else, tessera.NhwcToNchw puts it back in its original layout. s8 activations
// are carried as u8 with the zero point moved by 128 (the same real values). Anything the pass
// does not recognize keeps running on the reference QDQ operators.
#include <cmath>
#include <map>

#include "graph/passes/pass_utils.h"
#include "graph/passes/passes.h"

namespace tessera {
namespace {

using pass_utils::producer_of;
using pass_utils::single_consumer;

struct QuantParams {
  float scale = 0.f;
  int32_t zero_point = 0;  // in the u8 representation (s8 zero points + 128)
};

// Per-tensor parameters of a QuantizeLinear / DequantizeLinear node (constant scale and zero
// point); false for per-axis parameters or values only known at run time.
bool per_tensor_params(const Graph& g, const Node& n, QuantParams* out) {
  if (n.inputs.size() < 2) return false;
  float scale;
  if (!pass_utils::scalar_constant(g, n.inputs[1], &scale) || !(scale > 0.f) || !std::isfinite(scale)) return false;
  out->scale = scale;
  out->zero_point = 0;
  if (n.inputs.size() > 2 && n.inputs[2] >= 0) {
    const Value& zp = g.values[size_t(n.inputs[2])];
    if (!zp.is_constant() || zp.constant.numel() != 1) return false;
    if (zp.constant.dtype() == DType::u8)
      out->zero_point = zp.constant.data<uint8_t>()[0];
    else if (zp.constant.dtype() == DType::i8)
      out->zero_point = int32_t(zp.constant.data<int8_t>()[0]) + 128;
    else
      return false;
  }
  return true;
}

bool is_8bit_rank(const Value& v, size_t rank) {
  return v.has_type && (v.dtype == DType::u8 || v.dtype == DType::i8) && pass_utils::all_dims_known(v) &&
         v.dims.size() == rank;
}
bool is_8bit_rank4(const Value& v) { return is_8bit_rank(v, 4); }

bool all_zero(const Tensor& t) {
  const auto* bytes = static_cast<const unsigned char*>(t.raw_data());
  for (size_t i = 0; i < size_t(t.numel()) * dtype_size(t.dtype()); ++i)
    if (bytes[i]) return false;
  return true;
}

class Lowering {
 public:
  explicit Lowering(Graph& g) : g_(g), producers_(g.producers()), consumers_(g.consumers()) {}

  int run() {
    const size_t original = g_.nodes.size();
    for (size_t i = 0; i < original; ++i) {
      const Node& n = g_.nodes[i];
      if (!n.domain.empty()) continue;
      if (n.op_type == "Conv")
        lower_conv(int(i));
      else if (n.op_type == "Add")
        lower_add(int(i));
      else if (n.op_type == "MaxPool" || n.op_type == "GlobalAveragePool")
        lower_pool(int(i));
      else if (n.op_type == "MatMul" || n.op_type == "Gemm")
        lower_matmul(int(i));
    }
    if (lowered_ == 0) return 0;
    materialize();
    return lowered_;
  }

 private:
  struct Lowered {
    int nhwc = -1;  // the u8 NHWC value (rank 2: the u8 value itself, in its own layout)
    QuantParams params;
    int producer = -1;  // index of the new node that writes it; -1: its original QuantizeLinear
  };

  // A u8 matrix [M, K] for Int8MatMul: the output of a u8 QuantizeLinear, or of a lowered matrix
  // product. (s8 matrices are left to the reference operators.)
  const Lowered* matrix_of(int v) {
    auto found = lowered_values_.find(v);
    if (found != lowered_values_.end()) return g_.values[size_t(v)].dims.size() == 2 ? &found->second : nullptr;
    const Node* q = producer_of(g_, producers_, v, "QuantizeLinear");
    QuantParams params;
    if (!q || !per_tensor_params(g_, *q, &params) || !is_8bit_rank(g_.values[size_t(v)], 2) ||
        g_.values[size_t(v)].dtype != DType::u8)
      return nullptr;
    return &(lowered_values_[v] = Lowered{v, params, -1});
  }

  // The NHWC form of 8-bit value v (creating QuantizeLinearNhwc for a first quantization).
  const Lowered* nhwc_of(int v) {
    auto found = lowered_values_.find(v);
    if (found != lowered_values_.end()) return &found->second;
    const Node* q = producer_of(g_, producers_, v, "QuantizeLinear");
    QuantParams params;
    if (!q || !per_tensor_params(g_, *q, &params) || !is_8bit_rank4(g_.values[size_t(v)])) return nullptr;
    const Value& x = g_.values[size_t(q->inputs[0])];
    if (!x.has_type || x.dtype != DType::f32) return nullptr;
    Node node;
    node.name = g_.unique_name(q->name + "_nhwc");
    node.op_type = "QuantizeLinearNhwc";
    node.domain = "tessera";
    node.inputs = {q->inputs[0]};
    node.attributes.set_float("scale", params.scale);
    node.attributes.set_int("zero_point", params.zero_point);
    const int out = new_nhwc_value(v, g_.values[size_t(v)].dims);
    node.outputs = {out};
    g_.nodes.push_back(std::move(node));
    return &(lowered_values_[v] = Lowered{out, params, int(g_.nodes.size()) - 1});
  }

  int new_nhwc_value(int like, std::vector<Dim> nchw) {  // by value: add_value may move the values
    const std::string name = g_.unique_name(g_.values[size_t(like)].name + "_nhwc");
    const int id = g_.add_value(name);
    Value& v = g_.values[size_t(id)];
    v.dtype = DType::u8;
    v.has_type = true;
    v.has_shape = true;
    v.dims = {nchw[0], nchw[2], nchw[3], nchw[1]};
    return id;
  }

  // value -> DQ(v) with per-tensor parameters: v's NHWC form and the DQ's parameters.
  bool dequantized_input(int value, const Lowered** source, QuantParams* params) {
    const Node* dq = producer_of(g_, producers_, value, "DequantizeLinear");
    if (!dq || !per_tensor_params(g_, *dq, params)) return false;
    *source = nhwc_of(dq->inputs[0]);
    return *source != nullptr;
  }

  // After node `op`'s output: an optional single-reader Relu, then a single-reader per-tensor Q
  // whose output is 8-bit of the given rank (u8 only for matrices). *relu is set only on success.
  bool quantized_output(int value, bool* relu, const Node** q, QuantParams* params, size_t rank = 4) {
    *relu = false;
    if (!single_consumer(g_, consumers_, value)) return false;
    const Node* next = &g_.nodes[size_t(consumers_[size_t(value)][0])];
    bool through_relu = false;
    if (next->domain.empty() && next->op_type == "Relu") {
      if (!single_consumer(g_, consumers_, next->outputs[0])) return false;
      next = &g_.nodes[size_t(consumers_[size_t(next->outputs[0])][0])];
      through_relu = true;
    }
    if (!next->domain.empty() || next->op_type != "QuantizeLinear" || !per_tensor_params(g_, *next, params))
      return false;
    const Value& out = g_.values[size_t(next->outputs[0])];
    if (!is_8bit_rank(out, rank) || (rank == 2 && out.dtype != DType::u8)) return false;
    *q = next;
    *relu = through_relu;
    return true;
  }

  // Appends a lowered node whose result stands for the quantized value q_out: in a new NHWC value
  // (rank 4), or in q_out itself (matrices keep their layout).
  void emit(Node node, int q_out, const QuantParams& params, bool nhwc) {
    const int out = nhwc ? new_nhwc_value(q_out, g_.values[size_t(q_out)].dims) : q_out;
    node.outputs = {out};
    g_.nodes.push_back(std::move(node));
    lowered_values_[q_out] = Lowered{out, params, int(g_.nodes.size()) - 1};
    ++lowered_;
  }

  void lower_conv(int index) {
    const Node conv = g_.nodes[size_t(index)];
    if (conv.inputs.size() < 2 || conv.attributes.get_int("group", 1) != 1) return;
    const Lowered* x = nullptr;
    QuantParams x_params, y_params;
    if (!dequantized_input(conv.inputs[0], &x, &x_params)) return;
    // Weights: DQ(constant s8 [Cout, Cin, kh, kw], scales of 1 or Cout, zero points all 0).
    const Node* w_dq = producer_of(g_, producers_, conv.inputs[1], "DequantizeLinear");
    if (!w_dq || w_dq->inputs.size() < 2) return;
    const Value& w = g_.values[size_t(w_dq->inputs[0])];
    const Value& w_scale = g_.values[size_t(w_dq->inputs[1])];
    if (!w.is_constant() || w.constant.dtype() != DType::i8 || w.constant.rank() != 4) return;
    const int64_t cout = w.constant.dim(0);
    if (!w_scale.is_constant() || w_scale.constant.dtype() != DType::f32 ||
        (w_scale.constant.numel() != 1 && w_scale.constant.numel() != cout))
      return;
    if (w_scale.constant.numel() > 1 && w_dq->attributes.get_int("axis", 1) != 0) return;
    if (w_dq->inputs.size() > 2 && w_dq->inputs[2] >= 0) {
      const Value& zp = g_.values[size_t(w_dq->inputs[2])];
      if (!zp.is_constant() || !all_zero(zp.constant)) return;  // asymmetric weights stay on QDQ
    }
    // Bias: a float constant, or DQ(constant int32, scales) as quantizers write it.
    int bias = -1;
    if (conv.inputs.size() > 2 && conv.inputs[2] >= 0 && !(bias = float_bias(conv.inputs[2], cout), bias >= 0)) return;
    bool relu;
    const Node* q;
    if (!quantized_output(conv.outputs[0], &relu, &q, &y_params)) return;

    Node node;
    node.name = g_.unique_name(conv.name + "_int8");
    node.op_type = "Int8Conv";
    node.domain = "tessera";
    for (const char* attribute : {"kernel_shape", "strides", "pads", "dilations", "auto_pad"})
      if (conv.attributes.has(attribute)) node.attributes.set(attribute, conv.attributes.all().at(attribute));
    node.attributes.set_float("x_scale", x_params.scale);
    node.attributes.set_int("x_zero_point", x_params.zero_point);
    node.attributes.set_float("y_scale", y_params.scale);
    node.attributes.set_int("y_zero_point", y_params.zero_point);
    node.attributes.set_int("relu", relu);
    node.inputs = {x->nhwc, w_dq->inputs[0], w_dq->inputs[1], bias};
    emit(std::move(node), q->outputs[0], y_params, true);
  }

  int float_bias(int value, int64_t cout) {
    const Value& v = g_.values[size_t(value)];
    if (v.is_constant()) return v.constant.dtype() == DType::f32 && v.constant.numel() == cout ? value : -1;
    const Node* dq = producer_of(g_, producers_, value, "DequantizeLinear");
    if (!dq || dq->inputs.size() < 2) return -1;
    const Value& b = g_.values[size_t(dq->inputs[0])];
    const Value& s = g_.values[size_t(dq->inputs[1])];
    if (!b.is_constant() || b.constant.dtype() != DType::i32 || b.constant.numel() != cout) return -1;
    if (!s.is_constant() || s.constant.dtype() != DType::f32 || (s.constant.numel() != 1 && s.constant.numel() != cout))
      return -1;
    if (dq->inputs.size() > 2 && dq->inputs[2] >= 0) {
      const Value& zp = g_.values[size_t(dq->inputs[2])];
      if (!zp.is_constant() || !all_zero(zp.constant)) return -1;
    }
    Tensor f(DType::f32, {cout});
    for (int64_t i = 0; i < cout; ++i)
      f.data<float>()[i] = float(b.constant.data<int32_t>()[i]) * s.constant.data<float>()[s.constant.numel() == 1 ? 0 : i];
    return g_.add_constant(g_.unique_name(v.name + "_f32"), std::move(f));
  }

  void lower_add(int index) {
    const Node add = g_.nodes[size_t(index)];
    if (add.inputs.size() != 2) return;
    const Lowered* sources[2];
    QuantParams params[2], y_params;
    for (int i = 0; i < 2; ++i)
      if (!dequantized_input(add.inputs[size_t(i)], &sources[i], &params[i])) return;
    if (g_.values[size_t(sources[0]->nhwc)].dims[1].value != g_.values[size_t(sources[1]->nhwc)].dims[1].value) return;
    bool relu;
    const Node* q;
    if (!quantized_output(add.outputs[0], &relu, &q, &y_params)) return;
    for (int i : {0, 1}) {
      if (!params_equal(params[i], sources[i]->params)) continue;
      if (try_fuse_residual(add, i, sources[i], sources[1 - i], params[1 - i], y_params, relu, q->outputs[0])) return;
    }
    Node node;
    node.name = g_.unique_name(add.name + "_int8");
    node.op_type = "Int8Add";
    node.domain = "tessera";
    node.inputs = {sources[0]->nhwc, sources[1]->nhwc};
    node.attributes.set_float("a_scale", params[0].scale);
    node.attributes.set_int("a_zero_point", params[0].zero_point);
    node.attributes.set_float("b_scale", params[1].scale);
    node.attributes.set_int("b_zero_point", params[1].zero_point);
    node.attributes.set_float("y_scale", y_params.scale);
    node.attributes.set_int("y_zero_point", y_params.zero_point);
    node.attributes.set_int("relu", relu);
    emit(std::move(node), q->outputs[0], y_params, true);
  }

  static bool params_equal(const QuantParams& a, const QuantParams& b) {
    return a.scale == b.scale && a.zero_point == b.zero_point;
  }

  // The Add's input `i` comes from an Int8Conv made here that nothing else reads: the sum moves
  // into that convolution's epilogue (one pass over the output instead of three).
  bool try_fuse_residual(const Node& add, int i, const Lowered* conv_side, const Lowered* other,
                         const QuantParams& other_params, const QuantParams& y_params, bool relu, int q_out) {
    Node& conv = g_.nodes[size_t(conv_side->producer)];
    if (conv.op_type != "Int8Conv" || conv.inputs.size() > 4) return false;
    // The quantized conv output (before the DQ) must be read by that one DQ only, which feeds
    // only this Add; and its NHWC form by nothing lowered yet but this.
    const int dq_out = add.inputs[size_t(i)];
    const int quantized = g_.nodes[size_t(producers_[size_t(dq_out)])].inputs[0];
    if (!single_consumer(g_, consumers_, quantized) || !single_consumer(g_, consumers_, dq_out)) return false;
    if (other->nhwc == conv_side->nhwc) return false;
    if (g_.values[size_t(other->nhwc)].dims[1].value != g_.values[size_t(conv.outputs[0])].dims[1].value ||
        g_.values[size_t(other->nhwc)].dims[2].value != g_.values[size_t(conv.outputs[0])].dims[2].value ||
        g_.values[size_t(other->nhwc)].dims[3].value != g_.values[size_t(conv.outputs[0])].dims[3].value)
      return false;
    conv.inputs.resize(4, -1);
    conv.inputs.push_back(other->nhwc);
    conv.attributes.set_float("residual_scale", other_params.scale);
    conv.attributes.set_int("residual_zero_point", other_params.zero_point);
    conv.attributes.set_float("sum_scale", y_params.scale);
    conv.attributes.set_int("sum_zero_point", y_params.zero_point);
    conv.attributes.set_int("relu_after_residual", relu);
    const Lowered fused{conv_side->nhwc, y_params, conv_side->producer};
    lowered_values_.erase(quantized);  // its NHWC value now holds the sum
    lowered_values_[q_out] = fused;
    ++lowered_;
    return true;
  }

  // DQ(a u8 [M, K]) -> MatMul / Gemm(DQ(w s8 constant [K, N] or [N, K] with transB), bias)
  // [-> Relu] [-> Q]: Int8MatMul, with a u8 output when a Q follows, else the f32 product.
  void lower_matmul(int index) {
    const Node mm = g_.nodes[size_t(index)];
    if (mm.inputs.size() < 2 || mm.outputs.empty()) return;
    const bool gemm = mm.op_type == "Gemm";
    if (gemm && (mm.attributes.get_int("transA", 0) != 0 || mm.attributes.get_float("alpha", 1.f) != 1.f ||
                 mm.attributes.get_float("beta", 1.f) != 1.f))
      return;
    const Node* a_dq = producer_of(g_, producers_, mm.inputs[0], "DequantizeLinear");
    QuantParams a_params;
    if (!a_dq || !per_tensor_params(g_, *a_dq, &a_params)) return;
    const int a_source = a_dq->inputs[0];
    const Node* w_dq = producer_of(g_, producers_, mm.inputs[1], "DequantizeLinear");
    if (!w_dq || w_dq->inputs.size() < 2) return;
    const Value& w = g_.values[size_t(w_dq->inputs[0])];
    const Value& w_scale = g_.values[size_t(w_dq->inputs[1])];
    if (!w.is_constant() || w.constant.dtype() != DType::i8 || w.constant.rank() != 2) return;
    const bool transposed = gemm && mm.attributes.get_int("transB", 0) != 0;
    const int64_t n = transposed ? w.constant.dim(0) : w.constant.dim(1), k = transposed ? w.constant.dim(1) : w.constant.dim(0);
    if (!w_scale.is_constant() || w_scale.constant.dtype() != DType::f32 ||
        (w_scale.constant.numel() != 1 && w_scale.constant.numel() != n))
      return;
    if (w_scale.constant.numel() > 1 && w_dq->attributes.get_int("axis", 1) != (transposed ? 0 : 1)) return;
    if (w_dq->inputs.size() > 2 && w_dq->inputs[2] >= 0) {
      const Value& zp = g_.values[size_t(w_dq->inputs[2])];
      if (!zp.is_constant() || !all_zero(zp.constant)) return;
    }
    const Value& a_value = g_.values[size_t(a_source)];
    if (!is_8bit_rank(a_value, 2) || a_value.dims[1].value != k) return;
    int bias = -1;
    if (mm.inputs.size() > 2 && mm.inputs[2] >= 0 && !(bias = float_bias(mm.inputs[2], n), bias >= 0)) return;
    const Lowered* a = matrix_of(a_source);
    if (!a) return;
    bool relu = false;
    const Node* q = nullptr;
    QuantParams y_params;
    const bool quantized = quantized_output(mm.outputs[0], &relu, &q, &y_params, 2);
    // Weights as [K, N] (the GEMM's B), transposed here when the Gemm reads them as [N, K].
    int weights = w_dq->inputs[0];
    if (transposed) {
      Tensor kn(DType::i8, {k, n});
      for (int64_t r = 0; r < k; ++r)
        for (int64_t c = 0; c < n; ++c) kn.data<int8_t>()[r * n + c] = w.constant.data<int8_t>()[c * k + r];
      weights = g_.add_constant(g_.unique_name(g_.values[size_t(weights)].name + "_kn"), std::move(kn));
    }
    Node node;
    node.name = g_.unique_name(mm.name + "_int8");
    node.op_type = "Int8MatMul";
    node.domain = "tessera";
    node.inputs = {a->nhwc, weights, w_dq->inputs[1], bias};
    node.attributes.set_float("a_scale", a_params.scale);
    node.attributes.set_int("a_zero_point", a_params.zero_point);
    node.attributes.set_int("relu", relu);
    if (quantized) {
      node.attributes.set_string("output", "u8");
      node.attributes.set_float("y_scale", y_params.scale);
      node.attributes.set_int("y_zero_point", y_params.zero_point);
      emit(std::move(node), q->outputs[0], y_params, false);
    } else {
      node.attributes.set_string("output", "f32");
      node.outputs = {mm.outputs[0]};
      g_.nodes.push_back(std::move(node));
      replaced_.push_back(index);  // the float node: its output is now written by Int8MatMul
      ++lowered_;
    }
  }

  void lower_pool(int index) {
    const Node pool = g_.nodes[size_t(index)];
    if (pool.outputs.size() > 1 && pool.outputs[1] >= 0) return;  // MaxPool's indices
    const Lowered* x;
    QuantParams x_params, y_params;
    bool relu;
    const Node* q;
    if (!dequantized_input(pool.inputs[0], &x, &x_params)) return;
    if (!quantized_output(pool.outputs[0], &relu, &q, &y_params) || relu) return;
    Node node;
    node.name = g_.unique_name(pool.name + "_int8");
    node.op_type = pool.op_type == "MaxPool" ? "Int8MaxPool" : "Int8GlobalAveragePool";
    node.domain = "tessera";
    if (pool.op_type == "MaxPool") {
      if (pool.attributes.get_int("storage_order", 0) != 0) return;
      for (const char* attribute : {"kernel_shape", "strides", "pads", "dilations", "auto_pad", "ceil_mode"})
        if (pool.attributes.has(attribute)) node.attributes.set(attribute, pool.attributes.all().at(attribute));
    }
    node.attributes.set_float("x_scale", x_params.scale);
    node.attributes.set_int("x_zero_point", x_params.zero_point);
    node.attributes.set_float("y_scale", y_params.scale);
    node.attributes.set_int("y_zero_point", y_params.zero_point);
    node.inputs = {x->nhwc};
    emit(std::move(node), q->outputs[0], y_params, true);
  }

  // Lowered values still read in their original form get it back from their NHWC form; their
  // original producers (the QuantizeLinear ending each lowered chain) are dropped.
  void materialize() {
    std::vector<bool> remove(g_.nodes.size(), false);
    for (const auto& [value, lowered] : lowered_values_) {
      const int producer = producers_[size_t(value)];
      if (producer < 0) continue;
      // A first quantization (QuantizeLinearNhwc made from it, or a matrix read in place) keeps
      // its own node; a lowered matrix product writes the value itself.
      if (lowered.producer < 0 || g_.nodes[size_t(lowered.producer)].op_type == "QuantizeLinearNhwc") continue;
      if (lowered.nhwc == value) {
        remove[size_t(producer)] = true;
        continue;
      }
      remove[size_t(producer)] = true;
      const bool s8 = g_.values[size_t(value)].dtype == DType::i8;
      Node back;
      back.name = g_.unique_name(g_.values[size_t(value)].name + "_nchw");
      back.op_type = "NhwcToNchw";
      back.domain = "tessera";
      back.inputs = {lowered.nhwc};
      back.outputs = {value};
      if (s8) {
        // s8 values were carried as u8 + 128: convert back through a float round trip.
        back.outputs = {g_.add_value(g_.unique_name(g_.values[size_t(value)].name + "_u8"))};
        g_.values[size_t(back.outputs[0])].dtype = DType::u8;
        g_.values[size_t(back.outputs[0])].has_type = true;
        const int u8_nchw = back.outputs[0];
        g_.nodes.push_back(std::move(back));
        add_requantize_to_s8(u8_nchw, value, lowered.params);
        continue;
      }
      g_.nodes.push_back(std::move(back));
    }
    remove.resize(g_.nodes.size(), false);
    for (int index : replaced_) remove[size_t(index)] = true;
    pass_utils::erase_nodes(g_, remove);
  }

  void add_requantize_to_s8(int u8_value, int s8_value, const QuantParams& params) {
    // DQ(u8, scale, zp) then Q(scale, zp - 128 as s8): exact, as the values are the same.
    Tensor scale(DType::f32, {});
    scale.data<float>()[0] = params.scale;
    Tensor u8_zero(DType::u8, {});
    u8_zero.data<uint8_t>()[0] = uint8_t(params.zero_point);
    Tensor s8_zero(DType::i8, {});
    s8_zero.data<int8_t>()[0] = int8_t(params.zero_point - 128);
    const int scale_id = g_.add_constant(g_.unique_name("int8_lowering_scale"), std::move(scale));
    const int u8_zero_id = g_.add_constant(g_.unique_name("int8_lowering_zero_u8"), std::move(u8_zero));
    const int s8_zero_id = g_.add_constant(g_.unique_name("int8_lowering_zero_s8"), std::move(s8_zero));
    const int real = g_.add_value(g_.unique_name(g_.values[size_t(s8_value)].name + "_real"));
    Node dq;
    dq.name = g_.unique_name("int8_lowering_dq");
    dq.op_type = "DequantizeLinear";
    dq.inputs = {u8_value, scale_id, u8_zero_id};
    dq.outputs = {real};
    Node q;
    q.name = g_.unique_name("int8_lowering_q");
    q.op_type = "QuantizeLinear";
    q.inputs = {real, scale_id, s8_zero_id};
    q.outputs = {s8_value};
    g_.nodes.push_back(std::move(dq));
    g_.nodes.push_back(std::move(q));
  }

  Graph& g_;
  std::vector<int> producers_;
  std::vector<std::vector<int>> consumers_;
  std::map<int, Lowered> lowered_values_;  // original 8-bit NCHW value -> its NHWC form
  std::vector<int> replaced_;              // float nodes whose outputs lowered nodes now write
  int lowered_ = 0;
};

// DequantizeLinear of constants left after lowering (weights of layers not lowered; the
// operator does not fold quantized weights itself so that this pass can read them) becomes an
// f32 constant, as constant folding would have made it.
void fold_constant_dequantize(Graph& g) {
  std::vector<bool> remove(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (!n.domain.empty() || n.op_type != "DequantizeLinear" || n.inputs.size() < 2 || n.outputs[0] < 0) continue;
    bool constant = true;
    for (int in : n.inputs) constant = constant && (in < 0 || g.values[size_t(in)].is_constant());
    if (!constant) continue;
    const Tensor& x = g.values[size_t(n.inputs[0])].constant;
    const Tensor& scale = g.values[size_t(n.inputs[1])].constant;
    const Tensor* zero = n.inputs.size() > 2 && n.inputs[2] >= 0 ? &g.values[size_t(n.inputs[2])].constant : nullptr;
    if (scale.dtype() != DType::f32 || (zero && zero->numel() != scale.numel())) continue;
    int64_t inner = 1, channels = 1;
    if (scale.numel() > 1) {
      int64_t axis = n.attributes.get_int("axis", 1);
      if (axis < 0) axis += x.rank();
      if (axis < 0 || axis >= x.rank() || x.dim(int(axis)) != scale.numel()) continue;
      channels = scale.numel();
      for (int d = int(axis) + 1; d < x.rank(); ++d) inner *= x.dim(d);
    }
    Tensor y(DType::f32, x.shape());
    for (int64_t k = 0; k < x.numel(); ++k) {
      const int64_t c = channels > 1 ? (k / inner) % channels : 0;
      const double zp = zero ? zero->value_as_double(c) : 0.0;
      y.data<float>()[k] = float((x.value_as_double(k) - zp) * double(scale.data<float>()[c]));
    }
    Value& out = g.values[size_t(n.outputs[0])];
    out.constant = std::move(y);
    out.dtype = DType::f32;
    out.has_type = true;
    remove[i] = true;
  }
  pass_utils::erase_nodes(g, remove);
}

}  // namespace

int lower_qdq_to_int8(Graph& graph) {
  const int lowered = Lowering(graph).run();
  fold_constant_dequantize(graph);
  return lowered;
}

}  // namespace tessera
