// Runs the ONNX backend node tests (Debian libonnx-testdata) of the conv, gemm, pool and
// normalization families directly through their kernels, without the executor.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "ops_kernel_harness.h"
#include "tessera/onnx.h"
#include "test_support.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
const char* kNodeTestDir = "/usr/share/libonnx-testdata/data/node";

bool is_my_test(const std::string& name) {
  static const char* prefixes[] = {
      "test_conv_", "test_basic_conv_", "test_convtranspose", "test_gemm_", "test_matmul_",
      "test_maxpool_", "test_averagepool_", "test_globalaveragepool", "test_globalmaxpool",
      "test_lppool", "test_batchnorm_", "test_instancenorm_", "test_layer_normalization_",
      "test_softmax_", "test_logsoftmax_", "test_lrn"};
  if (name.find("_expanded") != std::string::npos) return false;
  return std::any_of(std::begin(prefixes), std::end(prefixes),
                     [&](const char* p) { return name.rfind(p, 0) == 0; });
}

// Cases the operators reject on purpose, with a clear error.
bool expected_rejection(const std::string& name) {
  return name.find("training_mode") != std::string::npos;
}

// Returns "" on success, else a description of the mismatch.
std::string run_case(const fs::path& dir) {
  Graph graph = load_onnx_model((dir / "model.onnx").string());
  if (graph.nodes.size() != 1) return "model has " + std::to_string(graph.nodes.size()) + " nodes";
  const Node& node = graph.nodes[0];
  fs::path data = dir / "test_data_set_0";
  std::vector<Tensor> graph_inputs;
  for (size_t i = 0; i < graph.inputs.size(); ++i)
    graph_inputs.push_back(load_onnx_tensor((data / ("input_" + std::to_string(i) + ".pb")).string()));
  std::vector<Tensor> inputs;
  std::vector<bool> constant;
  for (int id : node.inputs) {
    if (id < 0) {
      inputs.emplace_back();
      constant.push_back(false);
      continue;
    }
    const Value& v = graph.values[size_t(id)];
    auto it = std::find(graph.inputs.begin(), graph.inputs.end(), id);
    if (v.is_constant()) {
      inputs.push_back(v.constant);
      constant.push_back(true);
    } else if (it != graph.inputs.end()) {
      inputs.push_back(graph_inputs[size_t(it - graph.inputs.begin())]);
      constant.push_back(false);  // exercise the run-time paths; constants are tested elsewhere
    } else {
      return "input " + v.name + " is neither a graph input nor a constant";
    }
  }
  testing::NodeRun result = testing::run_node(node, graph.opset, inputs, int(node.outputs.size()),
                                              constant);
  for (size_t o = 0; o < node.outputs.size(); ++o) {
    fs::path expected_path = data / ("output_" + std::to_string(o) + ".pb");
    if (!fs::exists(expected_path)) continue;
    Tensor expected = load_onnx_tensor(expected_path.string());
    if (o >= result.outputs.size() || !result.outputs[o].defined()) return "missing output";
    const Tensor& got = result.outputs[o];
    if (got.shape() != expected.shape())
      return "output " + std::to_string(o) + " shape " + shape_to_string(got.shape()) +
             " expected " + shape_to_string(expected.shape());
    if (got.dtype() != expected.dtype()) return "output dtype differs";
    for (int64_t i = 0; i < got.numel(); ++i) {
      double a = got.value_as_double(i), b = expected.value_as_double(i);
      if (std::fabs(a - b) > 1e-4 + 1e-4 * std::fabs(b))
        return "output " + std::to_string(o) + " element " + std::to_string(i) + ": " +
               std::to_string(a) + " expected " + std::to_string(b);
    }
  }
  return "";
}

TEST(OnnxNodeTests, ConvGemmPoolNormalizationFamilies) {
  if (!fs::exists(kNodeTestDir)) GTEST_SKIP() << "libonnx-testdata is not installed";
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(kNodeTestDir))
    if (entry.is_directory() && is_my_test(entry.path().filename().string()))
      dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());
  int passed = 0;
  for (const fs::path& dir : dirs) {
    const std::string name = dir.filename().string();
    std::string failure;
    try {
      failure = run_case(dir);
    } catch (const Error& e) {
      failure = std::string("error: ") + e.what();
    }
    if (expected_rejection(name)) {
      EXPECT_NE(failure.rfind("error: ", 0), std::string::npos) << name << " should be rejected";
      continue;
    }
    EXPECT_EQ(failure, "") << name;
    if (failure.empty()) ++passed;
  }
  std::printf("%d of %zu node tests passed\n", passed, dirs.size());
  EXPECT_GT(passed, 80);
}

}  // namespace
}  // namespace tessera
