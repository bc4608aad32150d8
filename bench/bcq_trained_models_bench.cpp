// Accuracy and latency of the trained Fashion-MNIST models (models/trained: mlp, lenet5) with their
// MatMul/Gemm layers in BCQ (apply_bcq_quantization, q = 2, 3, 4, groups of 32, 64, 128) beside f32.
// Accuracy runs through the LUT-GEMM path (batches of 16) on the whole 10k test split when
// $TESSERA_FASHION_T10K names a folder with t10k_images.npy / t10k_labels.npy
// (scripts/train_fashion_mnist_mlp.py --full-test DIR), else on the committed 1000-image subset;
// the timed loop is one image per run (batch 1, one thread). Counters: accuracy, weight bytes.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "compression/bcq_quantize.h"
#include "tessera/npy.h"
#include "tessera/onnx.h"
#include "tessera/session.h"

namespace {

using namespace tessera;

std::string trained(const std::string& file) { return "models/trained/" + file; }

struct TestSet {
  Tensor images, labels;
  std::string name;
};

const TestSet& test_set() {
  static const TestSet set = [] {
    TestSet s;
    if (const char* dir = std::getenv("TESSERA_FASHION_T10K")) {
      s.images = read_npy(std::string(dir) + "/t10k_images.npy");
      s.labels = read_npy(std::string(dir) + "/t10k_labels.npy");
      s.name = "10k test split";
    } else {
      s.images = read_npy(trained("test_images.npy"));
      s.labels = read_npy(trained("test_labels.npy"));
      s.name = "first 1000 test images";
    }
    return s;
  }();
  return set;
}

Tensor rows(const Tensor& t, int64_t begin, int64_t end) {
  Shape shape = t.shape();
  const size_t row_bytes = t.nbytes() / size_t(shape[0]);
  shape[0] = end - begin;
  Tensor out(t.dtype(), shape);
  std::memcpy(out.raw_data(), static_cast<const char*>(t.raw_data()) + size_t(begin) * row_bytes, out.nbytes());
  return out;
}

double accuracy(Session& session) {
  const TestSet& set = test_set();
  const int64_t count = set.images.dim(0);
  int64_t correct = 0;
  for (int64_t begin = 0; begin < count; begin += 16) {
    const int64_t end = std::min(count, begin + 16);
    const Tensor logits = session.run({{"input", rows(set.images, begin, end)}}).at("logits");
    for (int64_t i = 0; i < end - begin; ++i) {
      const float* l = logits.data<float>() + i * 10;
      correct += (std::max_element(l, l + 10) - l) == set.labels.data<int64_t>()[begin + i];
    }
  }
  return double(correct) / double(count);
}

struct Prepared {
  std::unique_ptr<Session> session;
  double accuracy = 0;
  double weight_bytes = 0;  // of the MatMul/Gemm weights (f32 or BCQ)
};

const Prepared& prepare(const std::string& model, int bits, int64_t group) {
  static std::map<std::string, Prepared> cache;
  const std::string key = model + "/" + std::to_string(bits) + "/" + std::to_string(group);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  Graph graph = load_onnx_model(trained(model + ".onnx"));
  Prepared p;
  if (bits == 0) {
    Graph copy = graph;
    compression::BcqQuantizeOptions probe;  // only to measure the f32 weight bytes
    p.weight_bytes = double(compression::apply_bcq_quantization(copy, probe).f32_weight_bytes);
  } else {
    compression::BcqQuantizeOptions options;
    options.bcq = compression::BcqOptions{bits, group, 20};
    p.weight_bytes = double(compression::apply_bcq_quantization(graph, options).bcq_weight_bytes);
  }
  p.session = std::make_unique<Session>(std::move(graph), SessionOptions{1});
  p.accuracy = accuracy(*p.session);
  std::fprintf(stderr, "%s %s: accuracy %.4f on the %s, MatMul/Gemm weights %.1f KB\n", model.c_str(),
               bits ? ("bcq" + std::to_string(bits) + " g" + std::to_string(group)).c_str() : "f32", p.accuracy,
               test_set().name.c_str(), p.weight_bytes / 1e3);
  return cache.emplace(key, std::move(p)).first->second;
}

void run_model(benchmark::State& state, const std::string& model, int bits, int64_t group) {
  const Prepared& p = prepare(model, bits, group);
  const Tensor image = rows(test_set().images, 0, 1);
  for (auto _ : state) benchmark::DoNotOptimize(p.session->run({{"input", image}}));
  state.counters["accuracy"] = p.accuracy;
  state.counters["weight_KB"] = p.weight_bytes / 1e3;
}

const bool registered = [] {
  for (const char* model : {"mlp", "lenet5"}) {
    benchmark::RegisterBenchmark((std::string(model) + "/f32").c_str(), [model](benchmark::State& s) {
      run_model(s, model, 0, 0);
    })->Unit(benchmark::kMicrosecond);
    for (int bits : {4, 3, 2})
      for (int64_t group : {128, 64, 32}) {
        const std::string name =
            std::string(model) + "/bcq" + std::to_string(bits) + "_g" + std::to_string(group);
        benchmark::RegisterBenchmark(name.c_str(), [model, bits, group](benchmark::State& s) {
          run_model(s, model, bits, group);
        })->Unit(benchmark::kMicrosecond);
      }
  }
  return true;
}();

}  // namespace
