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

using namespace tessera;
using namespace tessera::compression;

namespace {

const char* kDatasetDir = "/usr/share/datasets/fashion-mnist/";
const std::string kModelDir = std::string(TESSERA_SOURCE_DIR) + "/models/trained/";

// An IDX file of unsigned bytes (gzipped), read through gzip -dc; empty when missing.
std::vector<uint8_t> read_idx_gz(const std::string& path, int header_bytes) {
  std::vector<uint8_t> bytes;
  if (FILE* probe = std::fopen(path.c_str(), "rb")) std::fclose(probe);
  else return bytes;
  FILE* pipe = popen(("gzip -dc '" + path + "'").c_str(), "r");
  if (!pipe) return bytes;
  uint8_t buffer[1 << 16];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) bytes.insert(bytes.end(), buffer, buffer + got);
  pclose(pipe);
  if (bytes.size() < size_t(header_bytes)) return {};
  return std::vector<uint8_t>(bytes.begin() + header_bytes, bytes.end());
}

Tensor normalized_images(const std::vector<uint8_t>& pixels, int64_t count, int64_t first = 0) {
  Tensor t(DType::f32, {count, 1, 28, 28});
  for (int64_t i = 0; i < count * 784; ++i)
    t.data<float>()[i] = (float(pixels[size_t(first * 784 + i)]) / 255.f - 0.2860f) / 0.3530f;
  return t;
}

Tensor rows(const Tensor& t, int64_t begin, int64_t end) {
  Shape shape = t.shape();
  const size_t row_bytes = t.nbytes() / size_t(shape[0]);
  shape[0] = end - begin;
  Tensor out(t.dtype(), shape);
  std::memcpy(out.raw_data(), static_cast<const char*>(t.raw_data()) + size_t(begin) * row_bytes, out.nbytes());
  return out;
}

struct Data {
  Tensor test_images, calibration;
  std::vector<int64_t> test_labels;
  std::string test_source, calibration_source;
};

const Data& data() {
  static const Data loaded = [] {
    Data d;
    const auto test_pixels = read_idx_gz(std::string(kDatasetDir) + "t10k-images-idx3-ubyte.gz", 16);
    const auto test_labels = read_idx_gz(std::string(kDatasetDir) + "t10k-labels-idx1-ubyte.gz", 8);
    const auto train_pixels = read_idx_gz(std::string(kDatasetDir) + "train-images-idx3-ubyte.gz", 16);
    if (test_pixels.size() == 10000 * 784 && test_labels.size() == 10000) {
      d.test_images = normalized_images(test_pixels, 10000);
      d.test_labels.assign(test_labels.begin(), test_labels.end());
      d.test_source = "Fashion-MNIST test split, 10000 images";
    } else {
      d.test_images = read_npy(kModelDir + "test_images.npy");
      const Tensor labels = read_npy(kModelDir + "test_labels.npy");
      d.test_labels.assign(labels.data<int64_t>(), labels.data<int64_t>() + labels.numel());
      d.test_source = "committed first 1000 test images";
    }
    if (train_pixels.size() >= 256 * 784) {
      d.calibration = normalized_images(train_pixels, 256);
      d.calibration_source = "first 256 training images";
    } else {
      d.calibration = rows(read_npy(kModelDir + "test_images.npy"), 1000 - 64, 1000);
      d.calibration_source = "last 64 committed test images (no training split found)";
    }
    std::printf("accuracy on: %s; calibration: %s\n", d.test_source.c_str(), d.calibration_source.c_str());
    return d;
  }();
  return loaded;
}

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
  const Data& d = data();
  const int64_t count = d.test_images.dim(0), batch = 250;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < count; begin += batch) {
    const int64_t end = std::min(count, begin + batch);
    const Tensor logits = p.session->run({{"input", rows(d.test_images, begin, end)}}).at("logits");
    for (int64_t i = 0; i < end - begin; ++i) {
      const float* l = logits.data<float>() + i * 10;
      correct += std::max_element(l, l + 10) - l == d.test_labels[size_t(begin + i)];
    }
  }
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
