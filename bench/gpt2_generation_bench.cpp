// GPT-2 speed (docs/PERFORMANCE.md): prefill of a prompt (GFLOP/s of the useful work: causal
// attention counted once, logits of the last position only) and decode steps at batch 1 (weight
// GB/s streamed), on the checkpoint at $TESSERA_GPT2_MODEL (default models/gpt2/124m, from
// scripts/build_gpt2_checkpoints.py --sizes 124m). bench/compare_gpt2_with_pytorch.py runs it
// beside PyTorch. Arguments: {prompt tokens, threads} for prefill; {context, threads} for decode.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>

#include "tessera/gpt2.h"

namespace {

using tessera::ThreadPool;
using namespace tessera::llm;

const Gpt2Model& model() {
  static const Gpt2Model loaded = [] {
    const char* path = std::getenv("TESSERA_GPT2_MODEL");
    return Gpt2Model::load(path ? path : "models/gpt2/124m");
  }();
  return loaded;
}

std::vector<int32_t> random_tokens(int64_t count, int64_t vocabulary) {
  std::mt19937 random(7);
  std::vector<int32_t> ids(static_cast<size_t>(count));
  for (int32_t& id : ids) id = int32_t(random() % uint32_t(vocabulary));
  return ids;
}

// FLOPs a prefill of `tokens` must do: the projections and MLP of every token, causal attention
// (query i against i + 1 keys, scores and values) and the LM head of the last position.
double prefill_flops(const Gpt2Config& c, int64_t tokens) {
  const double C = double(c.n_embd), T = double(tokens);
  const double per_layer = 2 * T * (4 * C * C + 2 * C * double(c.n_inner)) + 2 * C * T * (T + 1);
  return double(c.n_layer) * per_layer + 2 * C * double(c.vocab_size);
}

void BM_Gpt2Prefill(benchmark::State& state) {
  const Gpt2Model& m = model();
  const int64_t tokens = state.range(0);
  ThreadPool pool(int(state.range(1)));
  Gpt2State cache(m, 1, tokens);
  const std::vector<int32_t> ids = random_tokens(tokens, m.config().vocab_size);
  const Gpt2Input input{0, ids};
  for (auto _ : state) {
    cache.clear(0);
    benchmark::DoNotOptimize(m.forward(cache, std::span(&input, 1), LogitRows::last, &pool));
  }
  state.counters["tokens/s"] =
      benchmark::Counter(double(tokens), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["FLOP/s"] =
      benchmark::Counter(prefill_flops(m.config(), tokens), benchmark::Counter::kIsIterationInvariantRate);
}

// One decode step per iteration, after a prompt of `context` tokens; every 64 steps the cache
// is refilled (untimed), so the context stays between context and context + 64.
void BM_Gpt2Decode(benchmark::State& state) {
  const Gpt2Model& m = model();
  const int64_t context = state.range(0);
  constexpr int64_t kSteps = 64;
  ThreadPool pool(int(state.range(1)));
  Gpt2State cache(m, 1, context + kSteps);
  const std::vector<int32_t> prompt = random_tokens(context, m.config().vocab_size);
  const std::vector<int32_t> steps = random_tokens(kSteps, m.config().vocab_size);
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
  state.counters["weight B/s"] =
      benchmark::Counter(double(m.decode_weight_bytes()), benchmark::Counter::kIsIterationInvariantRate);
}

const int kAllThreads = ThreadPool::hardware_threads();

BENCHMARK(BM_Gpt2Prefill)
    ->Args({512, kAllThreads})
    ->Args({512, 1})
    ->Args({128, kAllThreads})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);
BENCHMARK(BM_Gpt2Decode)
    ->Args({8, kAllThreads})
    ->Args({8, 1})
    ->Args({512, kAllThreads})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);

}  // namespace
