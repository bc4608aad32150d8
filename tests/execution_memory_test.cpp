// How an execution plan uses the memory planner: byte-copy steps share their input's buffer,
// outputs are not held between runs, the reused (never zeroed) arena gives the same answers run
// after run, and the zoo's activation arenas stay at or under ONNX Runtime's (issue 3).
#include <gtest/gtest.h>

#include <malloc.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tessera/npy.h"
#include "tessera/session.h"
#include "test_support.h"

using namespace tessera;

namespace {

int add_input(Graph& g, const std::string& name, Shape shape) {
  int id = g.add_value(name);
  Value& v = g.values[size_t(id)];
  v.has_type = v.has_shape = true;
  for (int64_t d : shape) v.dims.push_back(Dim{d, ""});
  g.inputs.push_back(id);
  return id;
}

int add_node(Graph& g, const std::string& op, std::vector<int> inputs) {
  Node n;
  n.op_type = op;
  n.name = g.unique_name(op);
  n.inputs = std::move(inputs);
  n.outputs = {g.add_value(g.unique_name(op + "_out"))};
  g.nodes.push_back(n);
  return n.outputs[0];
}

// Bytes the process holds in malloc'd blocks (heap and mmapped).
size_t heap_bytes_in_use() {
  struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
}

std::string zoo_folder(const std::string& name) { return tessera::testing::source_path("models/zoo/" + name); }

std::map<std::string, Tensor> zoo_inputs(const std::string& folder, nlohmann::json& meta) {
  std::ifstream meta_file(folder + "/meta.json");
  if (!meta_file) throw Error("missing " + folder + "/meta.json: run scripts/build_zoo.py (scripts/test.sh does)");
  meta = nlohmann::json::parse(meta_file);
  std::map<std::string, Tensor> inputs;
  for (const auto& in : meta["inputs"])
    inputs[in["name"].get<std::string>()] = read_npy(folder + "/" + in["file"].get<std::string>());
  return inputs;
}

}  // namespace

TEST(ExecutionMemory, ReshapeSharesItsInputsBuffer) {
  // y = Sigmoid(Reshape(Relu(x), [32, 32])): the Relu output and its reshaped view are one 4 KiB
  // buffer, where two separate ones would both be live at the Reshape step.
  Graph g;
  int x = add_input(g, "x", {1, 1024});
  Tensor shape(DType::i64, {2});
  shape.data<int64_t>()[0] = 32;
  shape.data<int64_t>()[1] = 32;
  int relu = add_node(g, "Relu", {x});
  int reshaped = add_node(g, "Reshape", {relu, g.add_constant("shape", shape)});
  g.outputs.push_back(add_node(g, "Sigmoid", {reshaped}));
  Session session(std::move(g), SessionOptions{1});
  Tensor input = tessera::testing::random_tensor({1, 1024}, 3);
  auto outputs = session.run({{"x", input}});
  EXPECT_EQ(session.plan_stats().peak_activation_bytes, 4096u);
  EXPECT_EQ(session.plan_stats().naive_activation_bytes, 8192u);
  const Tensor& y = outputs.begin()->second;
  ASSERT_EQ(y.shape(), (Shape{32, 32}));
  for (int i = 0; i < 1024; ++i) {
    float expected = 1.f / (1.f + std::exp(-std::max(input.data<float>()[i], 0.f)));
    EXPECT_NEAR(y.data<float>()[i], expected, 1e-6f) << i;
  }
}

TEST(ExecutionMemory, OutputsAreNotHeldBetweenRuns) {
  // A 4 MiB output: once the caller drops it, the session must not keep it (or a second one
  // would be alive while the next run writes its own).
  Graph g;
  int x = add_input(g, "x", {1, 1 << 20});
  g.outputs.push_back(add_node(g, "Relu", {x}));
  Session session(std::move(g), SessionOptions{1});
  std::map<std::string, Tensor> inputs = {{"x", tessera::testing::random_tensor({1, 1 << 20}, 5)}};
  session.prepare({{"x", {1, 1 << 20}}});
  size_t before = heap_bytes_in_use();
  session.run(inputs);  // the returned output is dropped at once
  size_t after = heap_bytes_in_use();
  EXPECT_LT(after, before + (1u << 20)) << "the session still holds the 4 MiB output";
}

TEST(ExecutionMemory, RepeatedRunsOnTheReusedArenaAgree) {
  // The arena is not zeroed and later runs find the previous run's tensors in it: every kernel
  // must write all of its output. Bitwise equal results across runs show that none depends on
  // what the arena held before.
  for (const std::string name : {"mobilenet_v2", "bert_tiny"}) {
    nlohmann::json meta;
    std::string folder = zoo_folder(name);
    auto inputs = zoo_inputs(folder, meta);
    Session session = Session::from_file(folder + "/" + meta["model"].get<std::string>(), SessionOptions{2});
    auto first = session.run(inputs);
    for (int run = 1; run < 3; ++run) {
      auto again = session.run(inputs);
      for (const auto& [output, tensor] : first) {
        ASSERT_EQ(again.at(output).nbytes(), tensor.nbytes());
        EXPECT_EQ(std::memcmp(again.at(output).raw_data(), tensor.raw_data(), tensor.nbytes()), 0)
            << name << " output " << output << " differs in run " << run;
      }
    }
  }
}

// ONNX Runtime 1.30's memory-pattern block (its planned activation arena) for the same models
// and inputs, measured by bench/compare_memory_with_onnxruntime.py on 2026-11-21 (see
// docs/PERFORMANCE.md). One case per model, so that the sanitizer run can leave out the big ones.
const std::map<std::string, size_t> kOnnxRuntimeActivationBytes = {
    {"resnet50", 7225344}, {"mobilenet_v2", 6823936}, {"resnet18", 4014080},
    {"vgg11", 16056320},   {"bert_tiny", 2490880},    {"gpt2_tiny", 1310720}};

class ZooActivationArena : public ::testing::TestWithParam<std::string> {};

TEST_P(ZooActivationArena, AtMostOnnxRuntimes) {
  nlohmann::json meta;
  std::string folder = zoo_folder(GetParam());
  auto inputs = zoo_inputs(folder, meta);
  Session session = Session::from_file(folder + "/" + meta["model"].get<std::string>(), SessionOptions{1});
  std::map<std::string, Shape> shapes;
  for (const auto& [input, tensor] : inputs) shapes[input] = tensor.shape();
  session.prepare(shapes);
  const PlanStats& stats = session.plan_stats();
  EXPECT_LE(stats.peak_activation_bytes, kOnnxRuntimeActivationBytes.at(GetParam()));
  // On these graphs the placement is as small as any can be for this execution order, except
  // GPT-2's: there the most bytes live at one step (with the packed QKV projection read in place
  // by Attention since commit "Attention reads the merged QKV projection's thirds in place") is
  // not reachable by the planner's greedy placements, which stay within 17% of it (the same
  // arena as before that change, when the bound and the arena were both 0.46 MB).
  if (GetParam() == "gpt2_tiny")
    EXPECT_LE(stats.peak_activation_bytes, stats.activation_lower_bound_bytes * 6 / 5);
  else
    EXPECT_EQ(stats.peak_activation_bytes, stats.activation_lower_bound_bytes);
}

INSTANTIATE_TEST_SUITE_P(Zoo, ZooActivationArena,
                         ::testing::Values("resnet50", "mobilenet_v2", "resnet18", "vgg11", "bert_tiny", "gpt2_tiny"));
