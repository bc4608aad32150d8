// Sparse-weight kernels beside Tessera's dense f32 GEMM in the same run: conv-like (im2col) and
// GEMV-like shapes at 50-95% unstructured sparsity and 2:4 / 1:4, and complementary sparsity with
// k-WTA activations on an MLP layer. "dense_GFLOP/s" counts 2*M*N*K for every variant, so it reads
// as an effective rate: a sparse kernel wins where its figure exceeds the dense one.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "compression/sparse_gemm.h"
#include "compression/sparse_pruning.h"
#include "primitives/primitives.h"

namespace prim = tessera::primitives;
namespace sparse = tessera::sparse;

namespace {

std::vector<float> random_values(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

void set_rate(benchmark::State& state, double dense_flops) {
  state.counters["dense_GFLOP/s"] =
      benchmark::Counter(dense_flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

tessera::ThreadPool* pool_for(int threads) {
  static tessera::ThreadPool two(2);
  return threads > 1 ? &two : nullptr;
}

// args: M, K, N, threads. Y[M,N] = W[M,K] X[K,N] as the im2col convolution runs it (X packed per
// call), and as the pixel-major path does (Y^T = X^T W^T with W^T packed once).
void BM_Dense(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  const std::vector<float> w = random_values(size_t(M * K), 1), x = random_values(size_t(K * N), 2);
  std::vector<float> y(size_t(M * N));
  for (auto _ : state) {
    prim::gemm_f32(false, false, M, N, K, 1.f, w.data(), K, x.data(), N, 0.f, y.data(), N, pool_for(int(state.range(3))));
    benchmark::DoNotOptimize(y.data());
  }
  set_rate(state, 2.0 * M * N * K);
}

void BM_DensePackedWeights(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  const std::vector<float> w = random_values(size_t(M * K), 1), xt = random_values(size_t(N * K), 2);
  const prim::PackedB packed(K, M, w.data(), K, true);
  std::vector<float> yt(size_t(M * N));
  for (auto _ : state) {
    prim::gemm_packed_f32(N, xt.data(), K, packed, yt.data(), M, {}, pool_for(int(state.range(3))));
    benchmark::DoNotOptimize(yt.data());
  }
  set_rate(state, 2.0 * M * N * K);
}

// args: M, K, N, threads, sparsity in percent.
void BM_Csr(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  std::vector<float> w = random_values(size_t(M * K), 1);
  sparse::magnitude_prune(w.data(), M * K, double(state.range(4)) / 100.0);
  const sparse::CsrMatrix csr = sparse::CsrMatrix::from_dense(w.data(), M, K);
  const std::vector<float> x = random_values(size_t(K * N), 2);
  std::vector<float> y(size_t(M * N));
  for (auto _ : state) {
    sparse::csr_gemm(csr, N, x.data(), N, y.data(), N, {}, pool_for(int(state.range(3))));
    benchmark::DoNotOptimize(y.data());
  }
  set_rate(state, 2.0 * M * N * K);
}

// args: M, K, N, threads, n, m.
void BM_NOfM(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  std::vector<float> w = random_values(size_t(M * K), 1);
  sparse::prune_n_of_m(w.data(), M, K, int(state.range(4)), int(state.range(5)));
  const sparse::NOfMMatrix nm = sparse::NOfMMatrix::from_dense(w.data(), M, K, int(state.range(4)), int(state.range(5)));
  const std::vector<float> x = random_values(size_t(K * N), 2);
  std::vector<float> y(size_t(M * N));
  for (auto _ : state) {
    sparse::n_of_m_gemm(nm, N, x.data(), N, y.data(), N, {}, pool_for(int(state.range(3))));
    benchmark::DoNotOptimize(y.data());
  }
  set_rate(state, 2.0 * M * N * K);
}

void shapes_dense(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2}) {
    b->Args({256, 2304, 196, threads});
    b->Args({256, 2304, 3136, threads});
    b->Args({4096, 4096, 1, threads});
    b->Args({1024, 1024, 1, threads});
    b->Args({1024, 1024, 8, threads});
  }
}
void shapes_csr(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (int sparsity : {50, 75, 90, 95}) {
      b->Args({256, 2304, 196, threads, sparsity});
      b->Args({256, 2304, 3136, threads, sparsity});
      b->Args({4096, 4096, 1, threads, sparsity});
      b->Args({1024, 1024, 1, threads, sparsity});
      b->Args({1024, 1024, 8, threads, sparsity});
    }
}
void shapes_n_of_m(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (int n : {2, 1}) {
      b->Args({256, 2304, 196, threads, n, 4});
      b->Args({256, 2304, 3136, threads, n, 4});
      b->Args({4096, 4096, 1, threads, n, 4});
      b->Args({1024, 1024, 1, threads, n, 4});
      b->Args({1024, 1024, 8, threads, n, 4});
    }
}
BENCHMARK(BM_Dense)->Apply(shapes_dense)->ArgNames({"M", "K", "N", "threads"})->UseRealTime();
BENCHMARK(BM_DensePackedWeights)->Apply(shapes_dense)->ArgNames({"M", "K", "N", "threads"})->UseRealTime();
BENCHMARK(BM_Csr)->Apply(shapes_csr)->ArgNames({"M", "K", "N", "threads", "sparsity%"})->UseRealTime();
BENCHMARK(BM_NOfM)->Apply(shapes_n_of_m)->ArgNames({"M", "K", "N", "threads", "n", "m"})->UseRealTime();

// ---------------------------------------------------------------- complementary + k-WTA MLP layer
// y[batch, outputs] = W x over `inputs` features; W 1/G dense complementary (G = set size),
// x k-WTA sparse (k active of inputs). One thread. args: inputs, outputs, batch, set size, k.
struct MlpLayer {
  int64_t inputs, outputs, batch, set_size, k;
  std::vector<float> w, w_transposed, x, x_sparse, x_sparse_rows;
  std::vector<int32_t> indices;
  std::vector<float> values;
  explicit MlpLayer(const benchmark::State& state)
      : inputs(state.range(0)), outputs(state.range(1)), batch(state.range(2)), set_size(state.range(3)),
        k(state.range(4)) {
    w = random_values(size_t(outputs * inputs), 3);
    sparse::prune_complementary(w.data(), outputs, inputs, int(set_size));
    w_transposed.resize(w.size());
    for (int64_t r = 0; r < outputs; ++r)
      for (int64_t i = 0; i < inputs; ++i) w_transposed[size_t(i * outputs + r)] = w[size_t(r * inputs + i)];
    x = random_values(size_t(batch * inputs), 4);
    indices.resize(size_t(batch * k));
    values.resize(size_t(batch * k));
    sparse::k_winners_indices(x.data(), batch, inputs, k, indices.data(), values.data());
    x_sparse.resize(x.size());
    sparse::k_winners_take_all(x.data(), batch, inputs, k, x_sparse.data());
    x_sparse_rows.resize(x.size());  // [inputs, batch] for the weight-stationary kernels
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < inputs; ++i) x_sparse_rows[size_t(i * batch + b)] = x_sparse[size_t(b * inputs + i)];
  }
  double dense_flops() const { return 2.0 * double(batch * outputs * inputs); }
};

void mlp_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"in", "out", "batch", "G", "k"});
  for (int batch : {1, 16}) {
    b->Args({2048, 2048, batch, 10, 205});  // 90% sparse weights, 10% active inputs
    b->Args({2048, 2048, batch, 20, 102});  // 95% sparse weights, 5% active inputs
  }
}

// The dense layer on the dense activations: the baseline.
void BM_MlpDense(benchmark::State& state) {
  MlpLayer layer(state);
  const std::vector<float> dense_w = random_values(layer.w.size(), 3);
  const prim::PackedB packed(layer.inputs, layer.outputs, dense_w.data(), layer.inputs, true);
  std::vector<float> y(size_t(layer.batch * layer.outputs));
  for (auto _ : state) {
    prim::gemm_packed_f32(layer.batch, layer.x.data(), layer.inputs, packed, y.data(), layer.outputs, {}, nullptr);
    benchmark::DoNotOptimize(y.data());
  }
  set_rate(state, layer.dense_flops());
}
// Dense weights, only the k active inputs' weight rows (activation sparsity alone).
void BM_MlpDenseKwta(benchmark::State& state) {
  MlpLayer layer(state);
  std::vector<float> y(size_t(layer.batch * layer.outputs));
  for (auto _ : state) {
    sparse::dense_kwta_gemm(layer.w_transposed.data(), layer.outputs, layer.inputs, layer.batch, layer.k,
                            layer.indices.data(), layer.values.data(), y.data(), layer.outputs, nullptr);
    benchmark::DoNotOptimize(y.data());
  }
  set_rate(state, layer.dense_flops());
}
// Sparse weights (CSR) on dense-stored activations (weight sparsity alone).
void BM_MlpCsr(benchmark::State& state) {
  MlpLayer layer(state);
  const sparse::CsrMatrix csr = sparse::CsrMatrix::from_dense(layer.w.data(), layer.outputs, layer.inputs);
  std::vector<float> y(size_t(layer.batch * layer.outputs));
  for (auto _ : state) {
    sparse::csr_gemm(csr, layer.batch, layer.x_sparse_rows.data(), layer.batch, y.data(), layer.batch, {}, nullptr);
    benchmark::DoNotOptimize(y.data());
  }
  set_rate(state, layer.dense_flops());
}
// Both: complementary-packed weights, only the active inputs' packed rows.
void BM_MlpComplementaryKwta(benchmark::State& state) {
  MlpLayer layer(state);
  const sparse::ComplementaryMatrix packed =
      sparse::ComplementaryMatrix::pack(layer.w.data(), layer.outputs, layer.inputs, int(layer.set_size));
  std::vector<float> y(size_t(layer.batch * layer.outputs));
  for (auto _ : state) {
    sparse::complementary_kwta_gemm(packed, layer.batch, layer.k, layer.indices.data(), layer.values.data(),
                                    y.data(), layer.outputs, nullptr);
    benchmark::DoNotOptimize(y.data());
  }
  set_rate(state, layer.dense_flops());
}
// The k-WTA selection itself (done once per layer output, before the next layer).
void BM_KwtaSelect(benchmark::State& state) {
  MlpLayer layer(state);
  for (auto _ : state) {
    sparse::k_winners_indices(layer.x.data(), layer.batch, layer.inputs, layer.k, layer.indices.data(),
                              layer.values.data());
    benchmark::DoNotOptimize(layer.indices.data());
  }
}
BENCHMARK(BM_MlpDense)->Apply(mlp_shapes)->UseRealTime();
BENCHMARK(BM_MlpDenseKwta)->Apply(mlp_shapes)->UseRealTime();
BENCHMARK(BM_MlpCsr)->Apply(mlp_shapes)->UseRealTime();
BENCHMARK(BM_MlpComplementaryKwta)->Apply(mlp_shapes)->UseRealTime();
BENCHMARK(BM_KwtaSelect)->Apply(mlp_shapes)->UseRealTime();

}  // namespace
