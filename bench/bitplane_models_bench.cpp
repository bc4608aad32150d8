// Post-training bit-plane quantization of the trained Fashion-MNIST models (lenet5, resnet14) at
// several (weight, activation) bit widths: test accuracy (set up once, printed) and latency beside f32.
//
// Accuracy uses the full 10k test split from /usr/share/datasets/fashion-mnist when it is there,
// else the committed first 1000 test images; calibration uses the first 256 training images (or,
// without the training split, the last 64 committed test images, which is then said).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compression/bitplane_quantize.h"
#include "tessera/npy.h"
#include "tessera/onnx.h"
#include "tessera/session.h"
#include "fashion_mnist_data.h"

using namespace tessera;
using namespace tessera::compression;
using namespace tessera::bench_data;

namespace {

const char* kModels[] = {"lenet5", "resnet14"};
// {weight bits, activation bits}; {0, 0} is the f32 model.
const std::vector<std::pair<int, int>> kSettings = {{0, 0}, {8, 8}, {4, 8}, {4, 4}, {3, 3},
                                                    {2, 4}, {2, 2}, {1, 4}, {1, 2}, {1, 1}};

std::string setting_name(int setting) {
  const auto [weight_bits, activation_bits] = kSettings[size_t(setting)];
  if (!weight_bits) return "f32";
  char name[16];
  std::snprintf(name, sizeof name, "w%da%d", weight_bits, activation_bits);
  return name;
}

struct Prepared {
  std::unique_ptr<Session> session;
  double accuracy = 0;
  int64_t weight_bytes = 0;
};

Prepared& prepared(int model, int setting) {
  static std::map<std::pair<int, int>, Prepared> cache;
  auto it = cache.find({model, setting});
  if (it != cache.end()) return it->second;
  Graph graph = load_onnx_model(kModelDir + kModels[model] + ".onnx");
  const auto [weight_bits, activation_bits] = kSettings[size_t(setting)];
  std::string layers = "all f32";
  if (weight_bits) {
    BitplaneOptions options;
    options.weight_bits = weight_bits;
    options.activation_bits = activation_bits;
    options.calibration_inputs["input"] = data().calibration;
    const BitplaneReport report = apply_bitplane_quantization(graph, options);
    layers = std::to_string(report.quantized_layers.size()) + " layers quantized, " +
             std::to_string(report.kept_f32_layers.size()) + " f32 (first/last); weights " +
             std::to_string(report.float_weight_bytes) + " -> " + std::to_string(report.packed_weight_bytes) + " bytes";
  }
  Prepared p;
  p.session = std::make_unique<Session>(graph, SessionOptions{2});
  const int64_t count = data().test_images.dim(0), correct = count_correct(*p.session);
  p.accuracy = double(correct) / double(count);
  p.weight_bytes = int64_t(p.session->plan_stats().weight_bytes);
  std::printf("%-8s %-5s accuracy %.2f%% (%lld / %lld); %s\n", kModels[model], setting_name(setting).c_str(),
              100.0 * p.accuracy, (long long)correct, (long long)count, layers.c_str());
  return cache.emplace(std::pair{model, setting}, std::move(p)).first->second;
}

// Args: model, setting, batch. Latency of one run of `batch` test images on 2 threads.
void BM_BitplaneModel(benchmark::State& state) {
  const int model = int(state.range(0)), setting = int(state.range(1));
  const int64_t batch = state.range(2);
  Prepared& p = prepared(model, setting);
  const Tensor input = rows(data().test_images, 0, batch);
  p.session->run({{"input", input}});  // plan for this batch size outside the timing
  for (auto _ : state) benchmark::DoNotOptimize(p.session->run({{"input", input}}));
  state.counters["accuracy_%"] = 100.0 * p.accuracy;
  state.counters["images/s"] = benchmark::Counter(double(batch), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(kModels[model]) + " " + setting_name(setting));
}

void model_args(benchmark::internal::Benchmark* b) {
  for (int model = 0; model < 2; ++model)
    for (int setting = 0; setting < int(kSettings.size()); ++setting)
      for (int64_t batch : {1, 128}) b->Args({model, setting, batch});
}

}  // namespace

BENCHMARK(BM_BitplaneModel)->Apply(model_args)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(0.5);
