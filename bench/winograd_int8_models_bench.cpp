// ResNet-14 (Fashion-MNIST) with int8 Winograd convolutions: test accuracy and latency of f32 (cost
// model, forced F(2x2) and F(4x4) f32 Winograd) beside int8 F(2x2)/F(4x4), plain and tap-wise scales.
// Accuracy uses the full 10k test split from /usr/share/datasets/fashion-mnist when it is there,
// else the committed first 1000 test images; calibration on the first 256 training images.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compression/winograd_int8_quantize.h"
#include "ops/conv.h"
#include "ops/operator.h"
#include "tessera/npy.h"
#include "tessera/onnx.h"
#include "tessera/session.h"
#include "fashion_mnist_data.h"

using namespace tessera;
using namespace tessera::compression;
using namespace tessera::bench_data;

namespace {

struct Setting {
  const char* name;
  const char* f32_algorithm;  // non-null: f32 model with this conv algorithm on every Conv
  WinogradInt8Scheme scheme;
  bool mse = false;  // activation scales by least squared error instead of the max
  bool stem_f32 = false;  // the first conv (one input channel) kept f32
};
const Setting kSettings[] = {
    {"f32 (cost model)", "auto", {}},
    {"f32 Winograd F2", "winograd2", {}},
    {"f32 Winograd F4", "winograd4", {}},
    {"int8 F2 plain pow2", nullptr, {2, false, true}},
    {"int8 F2 tap-wise pow2", nullptr, {2, true, true}},
    {"int8 F4 plain pow2", nullptr, {4, false, true}},
    {"int8 F4 tap-wise pow2", nullptr, {4, true, true}},
    {"int8 F4 plain float", nullptr, {4, false, false}},
    {"int8 F4 tap-wise float", nullptr, {4, true, false}},
    {"int8 F2 plain pow2 mse", nullptr, {2, false, true}, true},
    {"int8 F2 tap-wise pow2 mse", nullptr, {2, true, true}, true},
    {"int8 F4 plain pow2 mse", nullptr, {4, false, true}, true},
    {"int8 F4 tap-wise pow2 mse", nullptr, {4, true, true}, true},
    {"int8 F4 plain float mse", nullptr, {4, false, false}, true},
    {"int8 F4 tap-wise float mse", nullptr, {4, true, false}, true},
    {"int8 F4 tap-wise pow2 mse, stem f32", nullptr, {4, true, true}, true, true},
    {"int8 F4 plain pow2 mse, stem f32", nullptr, {4, false, true}, true, true},
};
constexpr int kSettingCount = int(sizeof kSettings / sizeof kSettings[0]);

struct Prepared {
  std::unique_ptr<Session> session;
  double accuracy = 0;
};

Prepared& prepared(int setting) {
  static std::map<int, Prepared> cache;
  auto it = cache.find(setting);
  if (it != cache.end()) return it->second;
  register_winograd_int8_operators(OperatorRegistry::instance());  // until compression_operators.cpp calls it
  Graph graph = load_onnx_model(kModelDir + "resnet14.onnx");
  const Setting& s = kSettings[setting];
  std::string layers;
  if (s.f32_algorithm) {
    for (Node& node : graph.nodes)
      if (node.op_type == "Conv") node.attributes.set_string(kConvAlgorithmAttribute, s.f32_algorithm);
  } else {
    WinogradInt8Options options;
    options.scheme = s.scheme;
    if (s.mse) options.calibration = WinogradInt8Options::Calibration::mse;
    if (s.stem_f32) options.exclude_layers = {"/stem/stem.0/Conv"};
    options.calibration_inputs["input"] = data().calibration;
    const WinogradInt8Report report = apply_winograd_int8(graph, options);
    float spread = 0.f;
    for (float v : report.activation_range_spread) spread = std::max(spread, v);
    layers = "; " + std::to_string(report.quantized_layers.size()) +
             " convs int8, largest per-layer max/min tap range " + std::to_string(spread);
  }
  Prepared p;
  p.session = std::make_unique<Session>(graph, SessionOptions{2});
  const int64_t count = data().test_images.dim(0), correct = count_correct(*p.session);
  p.accuracy = double(correct) / double(count);
  std::printf("%-24s accuracy %.2f%% (%lld / %lld)%s\n", s.name, 100.0 * p.accuracy, (long long)correct,
              (long long)count, layers.c_str());
  std::fflush(stdout);
  return cache.emplace(setting, std::move(p)).first->second;
}

// Args: setting, batch. Latency of one run of `batch` test images on 2 threads.
void BM_WinogradInt8Model(benchmark::State& state) {
  const int setting = int(state.range(0));
  const int64_t batch = state.range(1);
  Prepared& p = prepared(setting);
  const Tensor input = rows(data().test_images, 0, batch);
  p.session->run({{"input", input}});  // plan for this batch size outside the timing
  for (auto _ : state) benchmark::DoNotOptimize(p.session->run({{"input", input}}));
  state.counters["accuracy_%"] = 100.0 * p.accuracy;
  state.counters["images/s"] = benchmark::Counter(double(batch), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(kSettings[setting].name);
}

void model_args(benchmark::internal::Benchmark* b) {
  for (int64_t batch : {1, 64})
    for (int setting = 0; setting < kSettingCount; ++setting) b->Args({setting, batch});
}

}  // namespace

BENCHMARK(BM_WinogradInt8Model)->Apply(model_args)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(0.5);
