// SGEMM throughput on one thread (square and the tall-skinny shapes of CNN layers), next to a
// peak-FMA loop so the GFLOP/s counters can be read as a fraction of what the core can do.
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <random>
#include <array>
#include <string>
#include <vector>

#include "primitives/gemm_int8.h"
#include "primitives/kernels.h"
#include "primitives/primitives.h"
#include "tessera/thread_pool.h"

namespace prim = tessera::primitives;

namespace {

std::vector<float> random_values(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

void set_gflops(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iteration * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// 24 independent accumulators: more than FMA latency x ports (4 x 2), so the loop is bound by
// FMA throughput alone. Compiled for the ISA by attribute and only run when CPUID has it.
__attribute__((target("avx512f,fma"), noipa)) float fma_loop_avx512(int64_t rounds, float seed) {
  __m512 acc[24];
  for (int i = 0; i < 24; ++i) acc[i] = _mm512_set1_ps(seed + float(i));
  const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
  for (int64_t r = 0; r < rounds; ++r) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i) acc[i] = _mm512_fmadd_ps(acc[i], m, a);
  }
  __m512 sum = acc[0];
  for (int i = 1; i < 24; ++i) sum = _mm512_add_ps(sum, acc[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, sum);
  return lanes[0] + lanes[15];
}

__attribute__((target("avx2,fma"), noipa)) float fma_loop_avx2(int64_t rounds, float seed) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(seed + float(i));
  const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
  for (int64_t r = 0; r < rounds; ++r) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], m, a);
  }
  __m256 sum = acc[0];
  for (int i = 1; i < 12; ++i) sum = _mm256_add_ps(sum, acc[i]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  return lanes[0] + lanes[7];
}

void BM_PeakFma(benchmark::State& state) {
  const bool avx512 = prim::detected_isa() == prim::Isa::avx512;
  if (!avx512 && prim::detected_isa() != prim::Isa::avx2) {
    state.SkipWithError("no AVX2/AVX-512 on this CPU");
    return;
  }
  int64_t rounds = 1 << 16;
  float seed = 1.f;
  for (auto _ : state) {
    // Opaque inputs, so the loop cannot be hoisted out of the timing loop.
    benchmark::DoNotOptimize(rounds);
    benchmark::DoNotOptimize(seed);
    benchmark::DoNotOptimize(avx512 ? fma_loop_avx512(rounds, seed) : fma_loop_avx2(rounds, seed));
  }
  // Flops per round: accumulators x lanes x 2 (multiply and add).
  set_gflops(state, double(rounds) * (avx512 ? 24 * 16 * 2 : 12 * 8 * 2));
  state.SetLabel(avx512 ? "avx512 zmm FMA" : "avx2 ymm FMA");
}
BENCHMARK(BM_PeakFma);

// The register-tile kernel alone, its operands in L1 (A micro-panel mr x 256, B 256 x nr, C one
// tile, added to on every call as in a K block after the first): the most the GEMM driver can
// reach with K blocks of 256, with no cache misses, packing or blocking costs. Read beside
// BM_PeakFma; docs/PERFORMANCE.md has the figures (2026-12-07: 80% of the FMA peak).
void BM_TileInL1(benchmark::State& state) {
  const prim::detail::GemmKernel& kernel = prim::detail::gemm_kernel(prim::active_isa());
  constexpr int64_t kDepth = 256;
  const int64_t mr = kernel.mr, nr = kernel.nr;
  const auto A = random_values(size_t(mr * kDepth), 1), B = random_values(size_t(kDepth * nr), 2);
  std::vector<float> packed_a(size_t(mr * kDepth)), C(size_t(mr * nr), 0.f);
  kernel.pack_a(A.data(), kDepth, false, mr, kDepth, 1.f, packed_a.data());
  const float* a_pointer = packed_a.data();
  const float* b_pointer = B.data();
  prim::detail::GemmTileArgs args;
  args.k = kDepth;
  args.rows = int(mr);
  args.cols = int(nr);
  args.a_packed = true;
  args.a_batch = &a_pointer;
  args.b_padded = true;
  args.b_batch = &b_pointer;
  args.b_row_stride = nr;
  args.b_vector_offset = kernel.vector_floats;
  args.c = C.data();
  args.ldc = nr;
  args.beta = 1.f;
  constexpr int kCalls = 64;
  for (auto _ : state) {
    for (int i = 0; i < kCalls; ++i) kernel.tile(args);
    benchmark::ClobberMemory();
  }
  set_gflops(state, 2.0 * double(kCalls) * double(mr * nr * kDepth));
  state.SetLabel(std::string(prim::isa_name(prim::active_isa())) + " " + std::to_string(mr) + " x " +
                 std::to_string(nr) + " tile");
}
BENCHMARK(BM_TileInL1);

// C = A * B with B packed once beforehand, as the inference path runs it.
void BM_GemmPacked(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const auto A = random_values(size_t(M * K), 1), B = random_values(size_t(K * N), 2);
  std::vector<float> C(size_t(M * N));
  const prim::PackedB packed(K, N, B.data(), N, false);
  for (auto _ : state) {
    prim::gemm_packed_f32(M, A.data(), K, packed, C.data(), N, {}, nullptr);
    benchmark::ClobberMemory();
  }
  set_gflops(state, 2.0 * double(M) * double(N) * double(K));
  state.SetLabel(prim::isa_name(prim::active_isa()));
}

// As BM_GemmPacked, with the weights out of cache as in a model bigger than the L3 (BERT-base's
// 340 MB): each call uses the next of enough packed copies of B to fill 512 MB.
// range(3): threads (1 runs on the caller alone).
void BM_GemmPackedColdB(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const int threads = int(state.range(3));
  tessera::ThreadPool pool(threads);
  const auto A = random_values(size_t(M * K), 1), B = random_values(size_t(K * N), 2);
  std::vector<float> C(size_t(M * N));
  const size_t copies = state.range(4) ? std::max<size_t>(2, (size_t(512) << 20) / size_t(K * N * 4)) : 1;
  std::vector<prim::PackedB> packed;
  for (size_t i = 0; i < copies; ++i) packed.emplace_back(K, N, B.data(), N, false);
  size_t next = 0;
  for (auto _ : state) {
    prim::gemm_packed_f32(M, A.data(), K, packed[next], C.data(), N, {}, threads > 1 ? &pool : nullptr);
    next = (next + 1) % copies;
    benchmark::ClobberMemory();
  }
  set_gflops(state, 2.0 * double(M) * double(N) * double(K));
}

// The general entry point, which packs B on every call.
void BM_GemmGeneral(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const auto A = random_values(size_t(M * K), 1), B = random_values(size_t(K * N), 2);
  std::vector<float> C(size_t(M * N));
  for (auto _ : state) {
    prim::gemm_f32(false, false, M, N, K, 1.f, A.data(), K, B.data(), N, 0.f, C.data(), N, nullptr);
    benchmark::ClobberMemory();
  }
  set_gflops(state, 2.0 * double(M) * double(N) * double(K));
}

// Bias + ReLU fused into the store: should cost next to nothing over the plain product.
void BM_GemmPackedBiasRelu(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const auto A = random_values(size_t(M * K), 1), B = random_values(size_t(K * N), 2);
  const auto bias = random_values(size_t(N), 3);
  std::vector<float> C(size_t(M * N));
  const prim::PackedB packed(K, N, B.data(), N, false);
  prim::GemmEpilogue epilogue;
  epilogue.bias_per_column = bias.data();
  epilogue.activation.kind = prim::UnaryKind::relu;
  for (auto _ : state) {
    prim::gemm_packed_f32(M, A.data(), K, packed, C.data(), N, epilogue, nullptr);
    benchmark::ClobberMemory();
  }
  set_gflops(state, 2.0 * double(M) * double(N) * double(K));
}

// Batch-reduce GEMM as a direct 3x3 convolution uses it: 9 (A_b, B_b) pairs, one per kernel
// tap, summed into one C tile (M output pixels x N output channels, K input channels).
void BM_Brgemm(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2), batch = 9;
  std::vector<std::vector<float>> As, Bs;
  std::vector<const float*> a_ptrs, b_ptrs;
  for (int64_t b = 0; b < batch; ++b) {
    As.push_back(random_values(size_t(M * K), unsigned(b)));
    Bs.push_back(random_values(size_t(K * N), unsigned(b + 100)));
  }
  for (int64_t b = 0; b < batch; ++b) a_ptrs.push_back(As[b].data()), b_ptrs.push_back(Bs[b].data());
  std::vector<float> C(size_t(M * N));
  for (auto _ : state) {
    prim::brgemm_f32(M, N, K, batch, a_ptrs.data(), K, b_ptrs.data(), N, C.data(), N, false);
    benchmark::ClobberMemory();
  }
  set_gflops(state, 2.0 * double(M) * double(N) * double(K) * double(batch));
}

// ABFT cost: the general entry point (B packed per call, as weight-major convolutions run)
// and the packed one (plan-time B, as pixel-major convolutions, Winograd and MatMul run), with
// no check, the global check and the thread-level check (range(3): 0, 1, 2).
void BM_GemmChecked(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const int scheme = int(state.range(3));
  const bool plan_time_b = state.range(4) != 0;
  const auto A = random_values(size_t(M * K), 1), B = random_values(size_t(K * N), 2);
  std::vector<float> C(size_t(M * N));
  const prim::PackedB packed(K, N, B.data(), N, false);
  prim::GemmCheckCounters counters;
  prim::GemmCheck check;
  check.scheme = scheme == 2 ? prim::GemmCheckScheme::thread : prim::GemmCheckScheme::global;
  check.counters = &counters;
  prim::GemmEpilogue epilogue;
  if (scheme) epilogue.check = &check;
  for (auto _ : state) {
    if (plan_time_b)
      prim::gemm_packed_f32(M, A.data(), K, packed, C.data(), N, epilogue, nullptr);
    else
      prim::gemm_f32(false, false, M, N, K, 1.f, A.data(), K, B.data(), N, 0.f, C.data(), N, nullptr, &epilogue);
    benchmark::ClobberMemory();
  }
  set_gflops(state, 2.0 * double(M) * double(N) * double(K));
  state.SetLabel(scheme == 0 ? "off" : scheme == 1 ? "global" : "thread");
}

void checked_shapes(benchmark::internal::Benchmark* b) {
  for (int plan_time_b : {0, 1})
    for (auto shape : {std::array<int64_t, 3>{64, 3136, 256}, {256, 784, 128}, {256, 196, 1024},
                       {49, 512, 4608}, {512, 512, 512}})
      for (int scheme : {0, 1, 2}) b->Args({shape[0], shape[1], shape[2], scheme, plan_time_b});
}

void square_shapes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {256, 512, 1024, 2048}) b->Args({n, n, n});
}

// Tall-skinny shapes from CNNs: ResNet stem im2col (12544 x 64, K=147), a late 1x1/FC layer
// (49 x 2048, K=512) and a 3x3 conv on 56x56 (3136 x 64, K=576).
void skinny_shapes(benchmark::internal::Benchmark* b) {
  b->Args({12544, 64, 147});
  b->Args({49, 2048, 512});
  b->Args({3136, 64, 576});
}

// 1x1 convolutions of ResNet-50 in their weight-major GEMM form: M = output channels,
// N = output pixels, K = input channels (the activations are B, packed per call).
void pointwise_conv_shapes(benchmark::internal::Benchmark* b) {
  b->Args({64, 3136, 64});
  b->Args({64, 3136, 256});
  b->Args({256, 3136, 64});
  b->Args({128, 784, 512});
  b->Args({512, 784, 128});
  b->Args({256, 196, 1024});
  b->Args({1024, 196, 256});
}

// BERT-base's products at sequence 128: merged QKV, attention output, FFN in and out.
void bert_base_shapes(benchmark::internal::Benchmark* b) {
  b->Args({128, 2304, 768});
  b->Args({128, 768, 768});
  b->Args({128, 3072, 768});
  b->Args({128, 768, 3072});
}

BENCHMARK(BM_GemmPacked)
    ->Apply(square_shapes)
    ->Apply(skinny_shapes)
    ->Apply(bert_base_shapes)
    ->ArgNames({"M", "N", "K"})
    ->Unit(benchmark::kMillisecond);
void bert_base_shapes_threads(benchmark::internal::Benchmark* b) {
  for (int64_t cold : {0, 1})
    for (int64_t threads : {1, 2}) {
      b->Args({128, 2304, 768, threads, cold});
      b->Args({128, 768, 768, threads, cold});
      b->Args({128, 3072, 768, threads, cold});
      b->Args({128, 768, 3072, threads, cold});
      b->Args({128, 1024, 1024, threads, cold});
      b->Args({128, 4096, 1024, threads, cold});
      b->Args({128, 1024, 4096, threads, cold});
      // GPT-2 124M's prefill of 512 tokens.
      b->Args({512, 2304, 768, threads, cold});
      b->Args({512, 768, 768, threads, cold});
      b->Args({512, 3072, 768, threads, cold});
      b->Args({512, 768, 3072, threads, cold});
    }
}
BENCHMARK(BM_GemmPackedColdB)
    ->Apply(bert_base_shapes_threads)
    ->ArgNames({"M", "N", "K", "threads", "cold"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_GemmGeneral)
    ->Apply(square_shapes)
    ->Apply(skinny_shapes)
    ->Apply(pointwise_conv_shapes)
    ->ArgNames({"M", "N", "K"})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Brgemm)
    ->Args({56, 64, 64})
    ->Args({28, 128, 128})
    ->Args({196, 64, 64})
    ->ArgNames({"M", "N", "K"});
BENCHMARK(BM_GemmChecked)
    ->Apply(checked_shapes)
    ->ArgNames({"M", "N", "K", "check", "planB"})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GemmPackedBiasRelu)
    ->Args({1024, 1024, 1024})
    ->Apply(skinny_shapes)
    ->ArgNames({"M", "N", "K"})
    ->Unit(benchmark::kMillisecond);

// The int8 GEMM (u8 activations x s8 weights, requantized to u8 with ReLU: a quantized
// convolution's GEMM in NHWC form, M = output pixels, N = output channels) beside the f32 packed
// GEMM on the same shapes; "GFLOP/s" counts one int8 multiply-add as 2 operations.
void BM_GemmInt8(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  std::vector<uint8_t> A(size_t(M * K));
  std::vector<int8_t> B(size_t(K * N));
  for (size_t i = 0; i < A.size(); ++i) A[i] = uint8_t((i * 37) & 255);
  for (size_t i = 0; i < B.size(); ++i) B[i] = int8_t(int((i * 91) & 255) - 128);
  std::vector<float> scale(size_t(N), 1e-4f), bias(size_t(N), 0.1f);
  std::vector<uint8_t> C(size_t(M * N));
  const prim::PackedInt8B packed(K, N, B.data(), N, false);
  prim::Int8Epilogue epilogue;
  epilogue.output = prim::Int8Epilogue::Output::u8;
  epilogue.scale = scale.data();
  epilogue.bias = bias.data();
  epilogue.a_zero_point = 3;
  epilogue.relu = true;
  epilogue.output_scale = 0.05f;
  std::vector<uint8_t> residual(size_t(M * N), 100);
  if (state.range(3)) {  // a skip connection added in the epilogue, as in ResNet's last 1x1 convolutions
    epilogue.residual = residual.data();
    epilogue.ld_residual = N;
    epilogue.residual_scale = 0.03f;
    epilogue.residual_zero_point = 10;
    epilogue.sum_scale = 0.07f;
    epilogue.relu_after_residual = true;
  }
  for (auto _ : state) {
    prim::gemm_u8s8_packed(M, A.data(), K, packed, C.data(), N, epilogue, nullptr);
    benchmark::ClobberMemory();
  }
  set_gflops(state, 2.0 * double(M) * double(N) * double(K));
  state.SetLabel(prim::active_extensions().avx512_vnni ? "vnni" : prim::isa_name(prim::active_isa()));
}

// ResNet-50's convolutions as NHWC GEMMs (pixels x output channels x reduction).
void int8_conv_shapes(benchmark::internal::Benchmark* b) {
  for (auto shape : {std::array<int64_t, 3>{3136, 64, 64}, {3136, 256, 64}, {3136, 64, 576},
                     {784, 128, 1152}, {784, 512, 128}, {196, 256, 2304}, {196, 1024, 256},
                     {49, 512, 4608}, {1024, 1024, 1024}})
    b->Args({shape[0], shape[1], shape[2]});
}

void int8_conv_shapes_with_residual(benchmark::internal::Benchmark* b) {
  for (int residual : {0, 1})
    for (auto shape : {std::array<int64_t, 3>{3136, 64, 64}, {3136, 256, 64}, {3136, 64, 576},
                       {784, 128, 1152}, {784, 512, 128}, {196, 256, 2304}, {196, 1024, 256},
                       {49, 512, 4608}, {49, 2048, 512}, {1024, 1024, 1024}})
      b->Args({shape[0], shape[1], shape[2], residual});
}

BENCHMARK(BM_GemmInt8)
    ->Apply(int8_conv_shapes_with_residual)
    ->ArgNames({"M", "N", "K", "residual"})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GemmPacked)->Apply(int8_conv_shapes)->ArgNames({"M", "N", "K"})->Unit(benchmark::kMillisecond);

}  // namespace
