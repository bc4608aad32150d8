// Attention as PyTorch exports it (tests/attention_graph.h), fused (the fuse_attention pass and
// the tiled online-softmax kernel) against the unfused graph (MatMul, Mul, Add/Where, Softmax,
// MatMul, Transposes), same threads, lengths 128 to 4096; counters: the planned activation bytes.
//   build/bench/attention_bench --benchmark_enable_random_interleaving=true --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include "attention_graph.h"
#include "tessera/session.h"

namespace {

void BM_Attention(benchmark::State& state) {
  const int64_t length = state.range(0), heads = 12, head_size = 64;
  const bool fused = state.range(1) != 0, causal = state.range(2) != 0;
  const tessera::Graph g = tessera::testing::attention_graph(length, heads, head_size, causal, 1);
  const auto inputs = tessera::testing::attention_graph_inputs(length, heads * head_size, causal);
  tessera::Session session(g, tessera::SessionOptions{int(state.range(3)), fused});
  session.run(inputs);
  for (auto _ : state) benchmark::DoNotOptimize(session.run(inputs));
  state.counters["activation_MB"] = double(session.plan_stats().peak_activation_bytes) / 1e6;
  state.SetLabel(std::string(fused ? "fused" : "unfused") + (causal ? " causal" : " padding"));
}

}  // namespace

BENCHMARK(BM_Attention)
    ->ArgNames({"length", "fused", "causal", "threads"})
    ->ArgsProduct({{128, 512, 1024, 4096}, {0, 1}, {0, 1}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
