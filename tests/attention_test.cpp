// Fused attention: the kernel against plain double-precision loops (every ISA, layouts, masks,
// causal, decode shapes, block tails), and the fuse_attention pass: graphs in the shapes PyTorch
// exports (BERT-style additive padding mask, GPT-style causal Where) give the unfused graph's
// outputs at lengths 1 to 4096, with no score-sized value left in the plan.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "primitives/attention.h"
#include "tessera/npy.h"
#include "tessera/onnx.h"
#include "tessera/session.h"
#include "attention_graph.h"
#include "test_support.h"

using namespace tessera;
using primitives::AttentionOperand;
using primitives::AttentionProblem;

namespace {

// Strides of a contiguous 4-D tensor stored with axes in `layout` order (letters b, h, s, d),
// as the logical [b, h, s, d] strides.
AttentionOperand operand(const float* data, const std::string& layout, int64_t b, int64_t h, int64_t s, int64_t d) {
  const std::string letters = "bhsd";
  const int64_t extent[4] = {b, h, s, d};
  Shape stored(4);
  for (int i = 0; i < 4; ++i) stored[size_t(i)] = extent[letters.find(layout[size_t(i)])];
  const Shape strides = contiguous_strides(stored);
  int64_t logical[4];
  for (int i = 0; i < 4; ++i) logical[letters.find(layout[size_t(i)])] = strides[size_t(i)];
  return AttentionOperand{data, logical[0], logical[1], logical[2], logical[3]};
}

struct Case {
  int64_t batch, heads, queries, keys, head_size, value_size;
  std::string q_layout = "bhsd", k_layout = "bhsd", v_layout = "bhsd";
  bool causal = false;
  int mask = 0;  // 0 none, 1 additive [b,1,1,k], 2 additive [1,1,q,k], 3 bool keep [b,1,q,k], 4 bool fill-where-true
};

void check_case(const Case& c, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << "b" << c.batch << " h" << c.heads << " q" << c.queries << " k" << c.keys << " d"
                                    << c.head_size << "/" << c.value_size << " " << c.q_layout << " " << c.k_layout
                                    << " " << c.v_layout << " causal " << c.causal << " mask " << c.mask);
  const Tensor q = tessera::testing::random_tensor({c.batch * c.heads * c.queries * c.head_size}, seed, -2, 2);
  const Tensor k = tessera::testing::random_tensor({c.batch * c.heads * c.keys * c.head_size}, seed + 1, -2, 2);
  const Tensor v = tessera::testing::random_tensor({c.batch * c.heads * c.keys * c.value_size}, seed + 2);
  AttentionProblem p;
  p.batch = c.batch;
  p.heads = c.heads;
  p.query_length = c.queries;
  p.key_length = c.keys;
  p.head_size = c.head_size;
  p.value_size = c.value_size;
  p.scale = 1.f / std::sqrt(float(c.head_size));
  p.causal = c.causal;
  p.q = operand(q.data<float>(), c.q_layout, c.batch, c.heads, c.queries, c.head_size);
  p.k = operand(k.data<float>(), c.k_layout, c.batch, c.heads, c.keys, c.head_size);
  p.v = operand(v.data<float>(), c.v_layout, c.batch, c.heads, c.keys, c.value_size);
  Tensor additive, keep;
  if (c.mask == 1 || c.mask == 2) {
    const int64_t rows = c.mask == 1 ? c.batch : c.queries;
    additive = tessera::testing::random_tensor({rows * c.keys}, seed + 3, -3, 0);
    for (int64_t i = 0; i < additive.numel(); i += 3) additive.data<float>()[i] = -10000.f;  // padding
    p.additive_mask = additive.data<float>();
    p.mask_column_stride = 1;
    (c.mask == 1 ? p.mask_batch_stride : p.mask_row_stride) = c.keys;
  } else if (c.mask >= 3) {
    keep = Tensor(DType::boolean, {c.batch * c.queries * c.keys});
    for (int64_t i = 0; i < keep.numel(); ++i) keep.data<uint8_t>()[i] = (i * 7 + 3) % 5 != 0;
    p.keep_mask = keep.data<uint8_t>();
    p.keep_where_true = c.mask == 3;
    p.fill = -1e9f;
    p.mask_batch_stride = c.queries * c.keys;
    p.mask_row_stride = c.keys;
    p.mask_column_stride = 1;
  }
  const int64_t out_size = c.batch * c.heads * c.queries * c.value_size;
  std::vector<float> fused(size_t(out_size), -7.f), reference(size_t(out_size), -8.f);
  p.out_batch_stride = c.heads * c.queries * c.value_size;
  p.out_head_stride = c.queries * c.value_size;
  p.out_row_stride = c.value_size;
  p.out = reference.data();
  primitives::attention_reference_f32(p);
  ThreadPool pool(2);
  p.out = fused.data();
  primitives::attention_f32(p, &pool);
  double diff = 0, norm = 0;
  for (size_t i = 0; i < fused.size(); ++i) {
    ASSERT_TRUE(std::isfinite(fused[i])) << "element " << i;
    diff += (double(fused[i]) - reference[i]) * (double(fused[i]) - reference[i]);
    norm += double(reference[i]) * reference[i];
  }
  EXPECT_LT(std::sqrt(diff / std::max(norm, 1e-30)), 2e-6);
}

TEST(AttentionKernel, MatchesPlainLoopsOnEveryIsa) {
  tessera::testing::for_each_isa([](primitives::Isa) {
    uint32_t seed = 1;
    for (int64_t len : {1, 5, 64, 65, 300})
      for (bool causal : {false, true})
        for (int mask : {0, 1, 2, 3, 4}) check_case({2, 3, len, len, 16, 16, "bhsd", "bhsd", "bhsd", causal, mask}, seed++);
    // Decode (one query against a cache), cross attention (queries != keys), other head sizes.
    check_case({1, 4, 1, 300, 64, 64, "bhsd", "bhsd", "bhsd", true, 0}, 100);
    check_case({2, 2, 7, 513, 32, 24, "bhsd", "bhsd", "bhsd", false, 1}, 101);
    check_case({1, 2, 70, 130, 8, 8, "bhsd", "bhsd", "bhsd", true, 0}, 102);
    // Layouts: heads not transposed, K stored transposed, V in head-split order, output strides.
    check_case({2, 3, 70, 70, 16, 16, "bshd", "bshd", "bshd", true, 1}, 103);
    check_case({2, 3, 70, 90, 16, 16, "bhsd", "bhds", "bshd", false, 2}, 104);
    check_case({1, 2, 33, 33, 16, 16, "sbhd", "dhsb", "hbsd", false, 0}, 105);
  });
}

// ---------------------------------------------------------------------------- graph level

using tessera::testing::GraphBuilder;

void check_fused_graph(int64_t length, int64_t heads, int64_t head_size, bool causal) {
  SCOPED_TRACE("length " + std::to_string(length) + (causal ? " causal" : " padding mask"));
  const Graph g = tessera::testing::attention_graph(length, heads, head_size, causal, uint32_t(length));
  std::map<std::string, Tensor> inputs = tessera::testing::attention_graph_inputs(length, heads * head_size, causal);
  Session unfused(g, SessionOptions{2, false}), fused(g, SessionOptions{2, true});
  const Tensor expected = unfused.run(inputs).begin()->second;
  const Tensor actual = fused.run(inputs).begin()->second;
  EXPECT_LT(tessera::testing::relative_l2_error(actual, expected), 2e-6);
  int attention_nodes = 0, transposes = 0, splits = 0;
  for (const Node& n : fused.planned_graph().nodes) {
    attention_nodes += n.op_type == "Attention";
    transposes += n.op_type == "Transpose";
    splits += n.op_type == "Split";
  }
  EXPECT_EQ(attention_nodes, 1);
  EXPECT_EQ(transposes, 0) << "head split and merge transposes absorbed";
  EXPECT_EQ(splits, 0) << "the merged projection's thirds are read in place";
  for (const Node& n : fused.planned_graph().nodes)
    if (n.op_type == "Attention") EXPECT_EQ(n.attributes.get_int("causal", 0), causal ? 1 : 0);
  // No value the size of the score matrix is left (the activation memory is linear in length).
  for (const Node& node : fused.planned_graph().nodes)
    for (int out : node.outputs) {
      const Value& v = fused.planned_graph().values[size_t(out)];
      int64_t n = 1;
      for (const Dim& d : v.dims) n *= d.value;
      if (length >= 512) EXPECT_LT(n, length * length) << v.name << " of " << node.op_type;
    }
  if (length >= 1024) EXPECT_LT(fused.plan_stats().peak_activation_bytes * 10, unfused.plan_stats().peak_activation_bytes);
}

TEST(FuseAttention, MatchesTheUnfusedGraphFromLength1To4096) {
  for (int64_t length : {1, 2, 7, 64, 65, 129, 512, 1024, 4096}) {
    check_fused_graph(length, 2, 32, false);
    check_fused_graph(length, 2, 32, true);
  }
}

TEST(FuseAttention, LeavesOtherPatternsAlone) {
  // A scale applied after the mask is not scale * QK^T + mask: not fused.
  GraphBuilder b;
  int q = b.input("q", {1, 2, 8, 4}), k = b.input("k", {1, 2, 4, 8}), v = b.input("v", {1, 2, 8, 4});
  int m = b.input("m", {1, 1, 1, 8});
  int s = b.node("MatMul", {q, k});
  int masked = b.node("Add", {s, m});
  Tensor two(DType::f32, {});
  two.data<float>()[0] = 2.f;
  int scaled = b.node("Mul", {masked, b.constant("two", two)});
  int p = b.node("Softmax", {scaled});
  b.g.outputs = {b.node("MatMul", {p, v}), s};  // the scores are also an output
  Session session(b.g, SessionOptions{1, true});
  std::map<std::string, Tensor> inputs = {{"q", tessera::testing::random_tensor({1, 2, 8, 4}, 1)},
                                          {"k", tessera::testing::random_tensor({1, 2, 4, 8}, 2)},
                                          {"v", tessera::testing::random_tensor({1, 2, 8, 4}, 3)},
                                          {"m", tessera::testing::random_tensor({1, 1, 1, 8}, 4)}};
  session.run(inputs);
  for (const Node& n : session.planned_graph().nodes) EXPECT_NE(n.op_type, "Attention");
}

}  // namespace

// ------------------------------------------------------------- whole transformer graphs

// The zoo's BERT-style encoder and GPT-2-style decoder (PyTorch exports, opset 13): after the
// passes no element-wise GELU, decomposed layer norm, separate bias Add, softmax or head
// transpose is left, and the outputs equal the unoptimized graph's (PyTorch's own outputs are
// checked in model_zoo_test).
TEST(TransformerFusion, ZooEncoderAndDecoderFuseCompletely) {
  for (const char* name : {"bert_tiny", "gpt2_tiny"}) {
    SCOPED_TRACE(name);
    const std::string folder = tessera::testing::source_path(std::string("models/zoo/") + name);
    std::ifstream meta_file(folder + "/meta.json");
    if (!meta_file) GTEST_SKIP() << "model zoo not built (scripts/build_zoo.py)";
    const nlohmann::json meta = nlohmann::json::parse(meta_file);
    std::map<std::string, Tensor> inputs;
    for (const auto& in : meta["inputs"])
      inputs[in["name"].get<std::string>()] = read_npy(folder + "/" + in["file"].get<std::string>());
    const Graph g = load_onnx_model(folder + "/model.onnx");
    Session unfused(g, SessionOptions{2, false}), fused(g, SessionOptions{2, true});
    const auto expected = unfused.run(inputs);
    const auto actual = fused.run(inputs);
    for (const auto& [output, tensor] : expected)
      EXPECT_LT(tessera::testing::relative_l2_error(actual.at(output), tensor), 2e-6) << output;
    std::map<std::string, int> ops;
    for (const Node& n : fused.planned_graph().nodes) ++ops[n.op_type];
    // Split: the merged QKV projection's thirds are read in place by Attention (qkv_heads).
    for (const char* gone : {"Erf", "Tanh", "Pow", "ReduceMean", "Softmax", "Transpose", "Div", "Sqrt", "Split"})
      EXPECT_EQ(ops[gone], 0) << gone << " left";
    EXPECT_EQ(ops["Attention"], 4);
    EXPECT_GE(ops["AddLayerNorm"], 7);  // per layer: after attention and after the FFN (GPT: pre-LN)
    int matmuls_with_bias = 0, gelu_epilogues = 0;
    for (const Node& n : fused.planned_graph().nodes)
      if (n.op_type == "MatMul") {
        matmuls_with_bias += n.inputs.size() > 2;
        gelu_epilogues += n.attributes.get_string("tessera.activation", "").rfind("Gelu", 0) == 0;
      }
    EXPECT_EQ(gelu_epilogues, 4);
    EXPECT_GE(matmuls_with_bias, 4 * 3);  // merged QKV, output projection, FFN in, FFN out
  }
}

// GELU subgraphs in the other orders exporters write: 0.7071 products instead of a division,
// (0.5 * x) * t instead of (x * t) * 0.5, x * x * x instead of Pow: each becomes one Gelu and
// computes what the subgraph did.
TEST(TransformerFusion, GeluVariantsBecomeOneNode) {
  auto scalar = [](GraphBuilder& b, const std::string& name, float v) {
    Tensor t(DType::f32, {});
    t.data<float>()[0] = v;
    return b.constant(name, t);
  };
  for (int variant = 0; variant < 2; ++variant) {
    SCOPED_TRACE(variant == 0 ? "erf, 0.7071 product, half first" : "tanh, x*x*x, half last");
    GraphBuilder b;
    int x = b.input("x", {3, 40});
    int out;
    if (variant == 0) {
      int e = b.node("Erf", {b.node("Mul", {x, scalar(b, "r", 0.70710678f)})});
      int t = b.node("Add", {scalar(b, "one", 1.f), e});
      out = b.node("Mul", {b.node("Mul", {scalar(b, "half", 0.5f), x}), t});
    } else {
      int cube = b.node("Mul", {b.node("Mul", {x, x}), x});
      int inner = b.node("Add", {x, b.node("Mul", {cube, scalar(b, "c", 0.044715f)})});
      int th = b.node("Tanh", {b.node("Mul", {scalar(b, "s", 0.7978845608f), inner})});
      int t = b.node("Add", {th, scalar(b, "one", 1.f)});
      out = b.node("Mul", {b.node("Mul", {x, t}), scalar(b, "half", 0.5f)});
    }
    b.g.outputs = {out};
    const std::map<std::string, Tensor> inputs = {{"x", tessera::testing::random_tensor({3, 40}, 5, -4, 4)}};
    Session unfused(b.g, SessionOptions{1, false}), fused(b.g, SessionOptions{1, true});
    EXPECT_LT(tessera::testing::relative_l2_error(fused.run(inputs).begin()->second, unfused.run(inputs).begin()->second), 1e-6);
    ASSERT_EQ(fused.planned_graph().nodes.size(), 1u);
    EXPECT_EQ(fused.planned_graph().nodes[0].op_type, "Gelu");
    EXPECT_EQ(fused.planned_graph().nodes[0].attributes.get_string("approximate", ""), variant == 0 ? "none" : "tanh");
  }
}
