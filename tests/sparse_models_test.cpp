// apply_sparsity on the trained Fashion-MNIST models: the rewritten graph (tessera.SparseConv /
// SparseMatMul) runs in a Session and matches PyTorch's logits of the same pruned model
// (scripts/build_sparse_references.py prunes with the same rules, independently).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "compression/sparse_compress.h"
#include "compression/sparse_gemm.h"
#include "tessera/npy.h"
#include "tessera/onnx.h"
#include "tessera/session.h"
#include "test_support.h"

using namespace tessera;

namespace {

std::string trained(const std::string& file) { return tessera::testing::source_path("models/trained/" + file); }

Tensor rows(const Tensor& tensor, int64_t begin, int64_t end) {
  Shape shape = tensor.shape();
  const size_t row_bytes = tensor.nbytes() / size_t(shape[0]);
  shape[0] = end - begin;
  Tensor out(tensor.dtype(), shape);
  std::memcpy(out.raw_data(), static_cast<const char*>(tensor.raw_data()) + size_t(begin) * row_bytes, out.nbytes());
  return out;
}

struct Case {
  const char* model;   // models/trained/<model>.onnx
  const char* config;  // the reference: models/trained/sparse/<model>_<config>_logits.npy
  SparsityOptions options;
  // A fine-tuned pruned model (models/trained/sparse/<model>_<config>_finetuned.onnx, already
  // sparse: pruning it again at the same setting keeps exactly its non-zeros).
  bool finetuned = false;
};

SparsityOptions magnitude(double sparsity, SparsityOptions::Method method = SparsityOptions::Method::magnitude) {
  SparsityOptions o;
  o.method = method;
  o.sparsity = sparsity;
  return o;
}
SparsityOptions n_of_m(int n, int m) {
  SparsityOptions o;
  o.method = SparsityOptions::Method::n_of_m;
  o.n = n;
  o.m = m;
  return o;
}

int count_ops(const Graph& graph, const std::string& op) {
  return int(std::count_if(graph.nodes.begin(), graph.nodes.end(), [&](const Node& n) { return n.op_type == op; }));
}

// Runs the first `count` test images through the graph and compares with the reference logits.
void expect_matches_reference(Graph graph, const std::string& reference_file, int64_t count) {
  const Tensor images = read_npy(trained("test_images.npy"));
  const Tensor reference = read_npy(trained("sparse/" + reference_file));
  ASSERT_EQ(reference.shape(), (Shape{images.dim(0), 10}));
  Session session(std::move(graph), SessionOptions{2});
  int64_t same_top1 = 0, compared = 0;
  for (int64_t begin = 0; begin < count; begin += 128) {
    const int64_t end = std::min(count, begin + 128);
    auto outputs = session.run({{"input", rows(images, begin, end)}});
    const Tensor& logits = outputs.at("logits");
    const Tensor expected = rows(reference, begin, end);
    ASSERT_EQ(logits.shape(), expected.shape());
    EXPECT_LT(tessera::testing::relative_l2_error(logits, expected), 1e-4) << "images " << begin << " to " << end;
    for (int64_t i = 0; i < end - begin; ++i) {
      const float* ours = logits.data<float>() + i * 10;
      const float* theirs = expected.data<float>() + i * 10;
      same_top1 += std::max_element(ours, ours + 10) - ours == std::max_element(theirs, theirs + 10) - theirs;
      ++compared;
    }
  }
  // Top-1 may differ only where PyTorch's two best logits nearly tie; allow one in 200.
  EXPECT_GE(same_top1 * 200, compared * 199);
}

}  // namespace

class SparseModel : public ::testing::TestWithParam<Case> {};

TEST_P(SparseModel, RewrittenGraphMatchesPyTorchOnThePrunedModel) {
  const Case& c = GetParam();
  const std::string stem = std::string(c.model) + "_" + c.config + (c.finetuned ? "_finetuned" : "");
  const std::string reference = stem + "_logits.npy";
  Graph original = load_onnx_model(c.finetuned ? trained("sparse/" + stem + ".onnx") : trained(std::string(c.model) + ".onnx"));
  const int layers = count_ops(original, "Conv") + count_ops(original, "Gemm");

  Graph sparse_graph = original;
  SparsityOptions options = c.options;
  options.kernels = SparsityOptions::Kernels::always;
  const SparsityReport report = apply_sparsity(sparse_graph, options);
  ASSERT_EQ(int(report.layers.size()), layers);
  EXPECT_EQ(count_ops(sparse_graph, "Conv") + count_ops(sparse_graph, "Gemm"), 0);
  EXPECT_EQ(count_ops(sparse_graph, kSparseConvOp) + count_ops(sparse_graph, kSparseMatMulOp), layers);
  const double sparsity = double(report.zeros) / double(report.weights);
  if (options.method == SparsityOptions::Method::n_of_m)
    EXPECT_NEAR(sparsity, 1.0 - double(options.n) / options.m, 0.01);
  else
    EXPECT_NEAR(sparsity, options.sparsity, 0.001);
  {
    SCOPED_TRACE("sparse kernels");
    expect_matches_reference(sparse_graph, reference, 256);
  }
  // The same pruning kept on dense kernels: pruning alone matches too.
  Graph pruned = original;
  options.kernels = SparsityOptions::Kernels::never;
  apply_sparsity(pruned, options);
  EXPECT_EQ(count_ops(pruned, kSparseConvOp) + count_ops(pruned, kSparseMatMulOp), 0);
  {
    SCOPED_TRACE("dense kernels on the pruned weights");
    expect_matches_reference(pruned, reference, 128);
  }
}

INSTANTIATE_TEST_SUITE_P(
    TrainedModels, SparseModel,
    ::testing::Values(Case{"lenet5", "magnitude75", magnitude(0.75)},
                      Case{"lenet5", "global90", magnitude(0.9, SparsityOptions::Method::global_magnitude)},
                      Case{"lenet5", "nm2of4", n_of_m(2, 4)},
                      Case{"resnet14", "magnitude75", magnitude(0.75)},
                      Case{"resnet14", "global90", magnitude(0.9, SparsityOptions::Method::global_magnitude)},
                      Case{"resnet14", "nm2of4", n_of_m(2, 4)},
                      Case{"lenet5", "global90", magnitude(0.9, SparsityOptions::Method::global_magnitude), true},
                      Case{"lenet5", "nm2of4", n_of_m(2, 4), true},
                      Case{"resnet14", "global75", magnitude(0.75, SparsityOptions::Method::global_magnitude), true},
                      Case{"resnet14", "nm2of4", n_of_m(2, 4), true}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return std::string(info.param.model) + "_" + info.param.config + (info.param.finetuned ? "_finetuned" : "");
    });

TEST(SparseModel, AutomaticChoiceFollowsTheMeasuredRule) {
  Graph graph = load_onnx_model(trained("lenet5.onnx"));
  SparsityOptions options = magnitude(0.9, SparsityOptions::Method::global_magnitude);
  const SparsityReport report = apply_sparsity(graph, options);
  int sparse_layers = 0;
  for (const SparseLayerReport& layer : report.layers) {
    const double density = 1.0 - double(layer.zeros) / double(layer.weights);
    EXPECT_EQ(layer.kernel != "dense", sparse_kernel_pays_off(false, density)) << layer.node;
    sparse_layers += layer.kernel != "dense";
  }
  EXPECT_EQ(count_ops(graph, kSparseConvOp) + count_ops(graph, kSparseMatMulOp), sparse_layers);
}

TEST(SparseModel, BadOptionsAndMalformedWeightsAreOneError) {
  Graph graph = load_onnx_model(trained("lenet5.onnx"));
  EXPECT_THROW(apply_sparsity(graph, magnitude(1.5)), Error);
  EXPECT_THROW(apply_sparsity(graph, n_of_m(5, 4)), Error);

  SparsityOptions options = magnitude(0.5);
  options.kernels = SparsityOptions::Kernels::always;
  apply_sparsity(graph, options);
  // Corrupt one row-offset table: the session refuses the node with a message naming it.
  for (Node& node : graph.nodes) {
    if (node.op_type != kSparseConvOp) continue;
    Tensor& offsets = graph.values[size_t(node.inputs[3])].constant;
    offsets.data<int64_t>()[offsets.numel() - 1] += 1;  // past the last value
    break;
  }
  Session session(std::move(graph), SessionOptions{1});
  try {
    session.run({{"input", Tensor(DType::f32, {1, 1, 28, 28})}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("SparseConv"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("row offsets"), std::string::npos) << e.what();
  }
}
