// GPT-2 decode with BCQ weights run by LUT-GEMM (Gpt2WeightOptions bcq2/3/4) beside the f32
// model in the same run: ms per token at batch 1, and the logits' error against f32 (relative L2
// over all positions of a 64-token prompt; share of positions whose top-1 token agrees), printed
// at start and kept as counters. Checkpoint: $TESSERA_GPT2_MODEL, default models/gpt2/124m
// (scripts/build_gpt2_checkpoints.py --sizes 124m; random weights, GPT-2 124M's shapes).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>

#include "tessera/gpt2.h"

namespace {

using tessera::ThreadPool;
using namespace tessera::llm;

std::string model_folder() {
  const char* path = std::getenv("TESSERA_GPT2_MODEL");
  return path ? path : "models/gpt2/124m";
}

std::vector<int32_t> random_tokens(int64_t count, int64_t vocabulary, unsigned seed) {
  std::mt19937 random(seed);
  std::vector<int32_t> ids(static_cast<size_t>(count));
  for (int32_t& id : ids) id = int32_t(random() % uint32_t(vocabulary));
  return ids;
}

struct Accuracy {
  double relative_l2 = 0, top1_agreement = 1;
};

tessera::Tensor prompt_logits(const Gpt2Model& m, ThreadPool& pool) {
  const std::vector<int32_t> prompt = random_tokens(64, m.config().vocab_size, 11);
  Gpt2State state(m, 1, 64);
  const Gpt2Input input{0, prompt};
  return m.forward(state, std::span(&input, 1), LogitRows::all, &pool);
}

struct Loaded {
  std::unique_ptr<Gpt2Model> model;
  Accuracy accuracy;
};

const Loaded& model(const std::string& spec) {
  static std::map<std::string, Loaded> models;
  auto found = models.find(spec);
  if (found != models.end()) return found->second;
  static ThreadPool pool(0);
  static const Gpt2Model reference = Gpt2Model::load(model_folder());
  static const tessera::Tensor reference_logits = prompt_logits(reference, pool);
  Loaded loaded;
  loaded.model = std::make_unique<Gpt2Model>(Gpt2Model::load(model_folder(), Gpt2WeightOptions::parse(spec), &pool));
  const tessera::Tensor logits = prompt_logits(*loaded.model, pool);
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  double diff = 0, norm = 0;
  int64_t agree = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = logits.data<float>() + r * vocab;
    const float* b = reference_logits.data<float>() + r * vocab;
    int64_t best_a = 0, best_b = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      diff += double(a[v] - b[v]) * double(a[v] - b[v]);
      norm += double(b[v]) * double(b[v]);
      if (a[v] > a[best_a]) best_a = v;
      if (b[v] > b[best_b]) best_b = v;
    }
    agree += best_a == best_b;
  }
  loaded.accuracy.relative_l2 = std::sqrt(diff / norm);
  loaded.accuracy.top1_agreement = double(agree) / double(rows);
  std::fprintf(stderr, "%s: decode weight bytes %.1f MB; logits vs f32 over 64 positions: relative L2 %.4f, top-1 agrees %.3f\n",
               spec.c_str(), double(loaded.model->decode_weight_bytes()) / 1e6, loaded.accuracy.relative_l2,
               loaded.accuracy.top1_agreement);
  return models.emplace(spec, std::move(loaded)).first->second;
}

// One decode step per iteration after an 8-token prompt; the cache is refilled (untimed) every 64 steps.
void decode(benchmark::State& state, const std::string& spec, int threads) {
  const Loaded& loaded = model(spec);
  const Gpt2Model& m = *loaded.model;
  constexpr int64_t kContext = 8, kSteps = 64;
  ThreadPool pool(threads);
  Gpt2State cache(m, 1, kContext + kSteps);
  const std::vector<int32_t> prompt = random_tokens(kContext, m.config().vocab_size, 7);
  const std::vector<int32_t> steps = random_tokens(kSteps, m.config().vocab_size, 8);
  int64_t step = kSteps;
  for (auto _ : state) {
    if (step == kSteps) {
      state.PauseTiming();
      cache.clear(0);
      const Gpt2Input input{0, prompt};
      m.forward(cache, std::span(&input, 1), LogitRows::last, &pool);
      step = 0;
      state.ResumeTiming();
    }
    const Gpt2Input input{0, std::span(&steps[size_t(step++)], 1)};
    benchmark::DoNotOptimize(m.forward(cache, std::span(&input, 1), LogitRows::last, &pool));
  }
  state.counters["weight_MB"] = double(m.decode_weight_bytes()) / 1e6;
  state.counters["logit_rel_l2"] = loaded.accuracy.relative_l2;
  state.counters["top1_agree"] = loaded.accuracy.top1_agreement;
}

const bool registered = [] {
  for (int threads : {2, 1})
    for (const char* spec : {"f32", "bcq4", "bcq3", "bcq2"}) {
      const std::string name = std::string("decode/") + spec + "/threads:" + std::to_string(threads);
      benchmark::RegisterBenchmark(name.c_str(), [spec = std::string(spec), threads](benchmark::State& s) {
        decode(s, spec, threads);
      })->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
    }
  return true;
}();

}  // namespace
