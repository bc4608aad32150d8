// Latency of the trained Fashion-MNIST models (models/trained) dense and after apply_sparsity,
// in the same run: batch 1 on one thread and batch 128 on two. Configurations: global magnitude
// pruning at 75/90/95% and N:M 2:4 / 1:4 with sparse kernels on every layer, and 90% with the
// automatic per-layer choice.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>
#include <string>

#include "compression/sparse_compress.h"
#include "tessera/onnx.h"
#include "tessera/session.h"

using namespace tessera;

namespace {

const char* kModels[] = {"lenet5", "resnet14"};

// The trained models' folder: $TESSERA_TRAINED_MODELS, else models/trained under the working
// directory (run from the repository root).
std::string model_path(const std::string& model) {
  const char* folder = std::getenv("TESSERA_TRAINED_MODELS");
  return std::string(folder ? folder : "models/trained") + "/" + model + ".onnx";
}

Tensor random_images(int64_t batch) {
  Tensor t(DType::f32, {batch, 1, 28, 28});
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.f, 1.f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

struct Config {
  const char* name;
  bool dense;
  SparsityOptions options;
};

SparsityOptions global(double sparsity, SparsityOptions::Kernels kernels = SparsityOptions::Kernels::always) {
  SparsityOptions o;
  o.method = SparsityOptions::Method::global_magnitude;
  o.sparsity = sparsity;
  o.kernels = kernels;
  return o;
}
SparsityOptions n_of_m(int n, int m) {
  SparsityOptions o;
  o.method = SparsityOptions::Method::n_of_m;
  o.n = n;
  o.m = m;
  o.kernels = SparsityOptions::Kernels::always;
  return o;
}
const Config kConfigs[] = {{"dense", true, {}},
                           {"global75_sparse", false, global(0.75)},
                           {"global90_sparse", false, global(0.9)},
                           {"global95_sparse", false, global(0.95)},
                           {"2:4_sparse", false, n_of_m(2, 4)},
                           {"1:4_sparse", false, n_of_m(1, 4)},
                           {"global90_auto", false, global(0.9, SparsityOptions::Kernels::automatic)}};

// args: model index, config index, batch, threads.
void BM_Model(benchmark::State& state) {
  const std::string model = kModels[state.range(0)];
  const Config& config = kConfigs[state.range(1)];
  const int64_t batch = state.range(2);
  Graph graph = load_onnx_model(model_path(model));
  int sparse_layers = 0;
  if (!config.dense) {
    for (const SparseLayerReport& layer : apply_sparsity(graph, config.options).layers)
      sparse_layers += layer.kernel != "dense";
  }
  Session session(std::move(graph), SessionOptions{int(state.range(3))});
  const std::map<std::string, Tensor> inputs = {
      {"input", random_images(batch)}};
  session.run(inputs);
  for (auto _ : state) benchmark::DoNotOptimize(session.run(inputs));
  state.SetLabel(model + " " + config.name + " (" + std::to_string(sparse_layers) + " sparse layers)");
  state.counters["images/s"] = benchmark::Counter(double(batch), benchmark::Counter::kIsIterationInvariantRate);
}

void arguments(benchmark::internal::Benchmark* b) {
  b->ArgNames({"model", "config", "batch", "threads"});
  for (int model = 0; model < 2; ++model)
    for (int config = 0; config < int(std::size(kConfigs)); ++config) {
      b->Args({model, config, 1, 1});
      b->Args({model, config, 128, 2});
    }
}
BENCHMARK(BM_Model)->Apply(arguments)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
