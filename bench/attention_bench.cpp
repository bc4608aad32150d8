// Attention as PyTorch exports it (tests/attention_graph.h), fused (the fuse_attention pass and
// the tiled online-softmax kernel) against the unfused graph (MatMul, Mul, Add/Where, Softmax,
// MatMul, Transposes), same threads, lengths 128 to 4096; counters: the planned activation bytes.
//   build/bench/attention_bench --benchmark_enable_random_interleaving=true --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "attention_graph.h"
#include "primitives/attention.h"
#include "tessera/session.h"
#include "tessera/thread_pool.h"

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

// The kernel alone as BERT-base runs it: Q, K and V read in place from the merged projection's
// [sequence, 3 x 768] output, an additive padding mask per key, 12 heads of 64.
void BM_AttentionKernelBert(benchmark::State& state) {
  const int64_t length = state.range(0), heads = 12, head_size = 64, width = 3 * heads * head_size;
  const int threads = int(state.range(1));
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  // The output 64-byte aligned as the engine's tensors are: from a plain vector, every head's
  // 256-byte row segment would share a cache line with the next head's, written by the other thread.
  std::vector<float> qkv(size_t(length * width)), mask(size_t(length), 0.f),
      out_storage(size_t(length * heads * head_size + 16));
  float* out = out_storage.data() + (16 - (reinterpret_cast<uintptr_t>(out_storage.data()) / sizeof(float)) % 16) % 16;
  for (float& x : qkv) x = normal(rng);
  for (int64_t j = length * 3 / 4; j < length; ++j) mask[size_t(j)] = -10000.f;
  tessera::primitives::AttentionProblem p;
  p.heads = heads;
  p.query_length = p.key_length = length;
  p.head_size = p.value_size = head_size;
  const tessera::primitives::AttentionOperand base{qkv.data(), length * width, head_size, width, 1};
  p.q = p.k = p.v = base;
  p.k.data += heads * head_size;
  p.v.data += 2 * heads * head_size;
  p.out = out;
  p.out_batch_stride = length * heads * head_size;
  p.out_head_stride = head_size;
  p.out_row_stride = heads * head_size;
  p.scale = 0.125f;
  p.additive_mask = mask.data();
  p.mask_column_stride = 1;
  tessera::ThreadPool pool(threads);
  for (auto _ : state) {
    tessera::primitives::attention_f32(p, threads > 1 ? &pool : nullptr);
    benchmark::ClobberMemory();
  }
  const double flops = 4.0 * double(heads) * double(length) * double(length) * double(head_size);
  state.counters["GFLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

}  // namespace

BENCHMARK(BM_AttentionKernelBert)
    ->ArgNames({"length", "threads"})
    ->ArgsProduct({{128, 512}, {1, 2}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_Attention)
    ->ArgNames({"length", "fused", "causal", "threads"})
    ->ArgsProduct({{128, 512, 1024, 4096}, {0, 1}, {0, 1}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
