// Bit-plane GEMM throughput (operations per second, one multiply-add of the low-precision operands
// counted as 2 like f32) for w1a1 .. w8a8, beside Tessera's f32 and int8 GEMMs on the same shapes.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <random>
#include <vector>

#include "compression/bitplane_gemm.h"
#include "primitives/gemm_int8.h"
#include "primitives/primitives.h"

namespace prim = tessera::primitives;
using namespace tessera::compression;

namespace {

void set_gops(benchmark::State& state, double ops_per_iteration) {
  state.counters["Gop/s"] = benchmark::Counter(ops_per_iteration * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

tessera::ThreadPool* pool_for(int threads) {
  static tessera::ThreadPool two(2);
  return threads > 1 ? &two : nullptr;
}

std::vector<int32_t> random_codes(int64_t count, int bits, BitplaneEncoding encoding, unsigned seed) {
  std::mt19937 rng(seed);
  const int32_t low = encoding == BitplaneEncoding::signed_int ? -(1 << (bits - 1)) : 0;
  const int32_t high = encoding == BitplaneEncoding::signed_int ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
  std::uniform_int_distribution<int32_t> dist(low, high);
  std::vector<int32_t> v(static_cast<size_t>(count));
  for (auto& x : v) {
    x = dist(rng);
    if (encoding == BitplaneEncoding::binary) x = x ? 1 : -1;
  }
  return v;
}

// Args: M, N, K, weight bits, activation bits, threads, pack activations per call (0/1).
// Weights signed (binary at 1 bit), activations unsigned (binary at 1 bit when weights are too):
// the w1a1 case is the XNOR/XOR-popcount network; int32 results.
void BM_BitplaneGemm(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const int weight_bits = int(state.range(3)), activation_bits = int(state.range(4));
  const int threads = int(state.range(5));
  const bool pack_per_call = state.range(6) != 0;
  const bool binary = weight_bits == 1 && activation_bits == 1;
  const auto weight_encoding = binary || weight_bits == 1 ? BitplaneEncoding::binary : BitplaneEncoding::signed_int;
  const auto activation_encoding = binary ? BitplaneEncoding::binary : BitplaneEncoding::unsigned_int;
  const auto weights = random_codes(N * K, weight_bits, weight_encoding, 1);
  const auto activations = random_codes(M * K, activation_bits, activation_encoding, 2);
  const BitplaneMatrix packed_weights = pack_bitplanes(weights.data(), N, K, K, weight_bits, weight_encoding);
  BitplaneMatrix packed_activations =
      pack_bitplanes(activations.data(), M, K, K, activation_bits, activation_encoding);
  std::vector<uint8_t> codes(static_cast<size_t>(M * K));
  for (size_t i = 0; i < codes.size(); ++i)
    codes[i] = binary ? uint8_t(activations[i] > 0) : uint8_t(activations[i]);
  std::vector<int32_t> c(static_cast<size_t>(M * N));
  tessera::ThreadPool* pool = pool_for(threads);
  for (auto _ : state) {
    if (pack_per_call) pack_bitplane_codes(codes.data(), K, 0, M, packed_activations);
    bitplane_gemm_i32(packed_activations, packed_weights, c.data(), N, pool);
    benchmark::ClobberMemory();
  }
  set_gops(state, 2.0 * double(M) * double(N) * double(K));
  char label[64];
  std::snprintf(label, sizeof label, "w%da%d %s%s", weight_bits, activation_bits,
                bitplane_kernel_name(bitplane_kernel_in_use()), pack_per_call ? " +pack" : "");
  state.SetLabel(label);
}

// The f32 peer: weights packed once (plan time), as the inference path runs it.
void BM_F32Gemm(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const int threads = int(state.range(3));
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> a(static_cast<size_t>(M * K)), b(static_cast<size_t>(K * N)), c(static_cast<size_t>(M * N));
  for (float& x : a) x = dist(rng);
  for (float& x : b) x = dist(rng);
  const prim::PackedB packed(K, N, b.data(), N, false);
  tessera::ThreadPool* pool = pool_for(threads);
  for (auto _ : state) {
    prim::gemm_packed_f32(M, a.data(), K, packed, c.data(), N, {}, pool);
    benchmark::ClobberMemory();
  }
  set_gops(state, 2.0 * double(M) * double(N) * double(K));
  state.SetLabel(std::string("f32 ") + prim::isa_name(prim::active_isa()));
}

// The int8 peer (u8 activations x s8 weights, VNNI where present), raw int32 results like the
// bit-plane runs; weights packed once.
void BM_Int8Gemm(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const int threads = int(state.range(3));
  std::mt19937 rng(4);
  std::uniform_int_distribution<int> dist(-128, 127);
  std::vector<uint8_t> a(static_cast<size_t>(M * K));
  std::vector<int8_t> b(static_cast<size_t>(K * N));
  for (auto& x : a) x = uint8_t(dist(rng) + 128);
  for (auto& x : b) x = int8_t(dist(rng));
  std::vector<int32_t> c(static_cast<size_t>(M * N));
  const prim::PackedInt8B packed(K, N, b.data(), N, false);
  prim::Int8Epilogue epilogue;
  epilogue.output = prim::Int8Epilogue::Output::s32;
  tessera::ThreadPool* pool = pool_for(threads);
  for (auto _ : state) {
    prim::gemm_u8s8_packed(M, a.data(), K, packed, c.data(), N, epilogue, pool);
    benchmark::ClobberMemory();
  }
  set_gops(state, 2.0 * double(M) * double(N) * double(K));
  state.SetLabel(std::string("int8 ") + (prim::active_extensions().avx512_vnni ? "vnni" : prim::isa_name(prim::active_isa())));
}

// Large square, a batch of 16 and batch 1 (GEMV-like) against 4096 x 4096 weights.
const std::vector<std::vector<int64_t>> kShapes = {{2048, 2048, 2048}, {4096, 4096, 4096}, {16, 4096, 4096},
                                                   {1, 4096, 4096}};

void bitplane_args(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (const auto& s : kShapes)
      for (auto [w, a] : {std::pair{1, 1}, {1, 2}, {2, 2}, {3, 3}, {4, 4}, {8, 8}}) {
        if (s[0] == 4096 && w * a > 4) continue;  // seconds per call; the 2048 cube shows the trend
        b->Args({s[0], s[1], s[2], w, a, threads, 0});
      }
  // Activation packing per call (the operators pack once per run): w1a1 and w4a4, one thread.
  for (const auto& s : kShapes)
    for (int bits : {1, 4})
      if (s[0] != 4096 || bits == 1) b->Args({s[0], s[1], s[2], bits, bits, 1, 1});
}

void f32_args(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (const auto& s : kShapes) b->Args({s[0], s[1], s[2], threads});
}

}  // namespace

BENCHMARK(BM_F32Gemm)->Apply(f32_args)->UseRealTime()->MinTime(0.3);
BENCHMARK(BM_Int8Gemm)->Apply(f32_args)->UseRealTime()->MinTime(0.3);
BENCHMARK(BM_BitplaneGemm)->Apply(bitplane_args)->UseRealTime()->MinTime(0.3);
