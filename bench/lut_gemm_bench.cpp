// LUT-GEMV / small-batch LUT-GEMM on BCQ weights (q = 2, 3, 4) beside Tessera's f32 products in
// the same run: the GEMM primitive with one activation row and the GPT-2 decode panel GEMV.
// Two regimes: "hot" reuses one weight matrix (it stays in L2/L3), "cold" cycles over copies
// whose total is twice the L3 size, so every product reads its weights from memory.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "compression/bcq.h"
#include "compression/lut_gemm.h"
#include "llm/panel_gemv.h"
#include "primitives/primitives.h"
#include "tessera/thread_pool.h"

namespace prim = tessera::primitives;
namespace comp = tessera::compression;

namespace {

std::vector<float> normal_values(size_t n, unsigned seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

int64_t l3_bytes() {
  const long size = sysconf(_SC_LEVEL3_CACHE_SIZE);
  return size > 0 ? int64_t(size) : int64_t(260) << 20;
}

tessera::ThreadPool& pool_of(int threads) {
  static tessera::ThreadPool one(1), two(2);
  return threads <= 1 ? one : two;
}

enum class Method { f32_gemm, f32_panel_gemv, lut };

struct Problem {
  int64_t in = 0, out = 0;
  Method method = Method::lut;
  int bits = 3;
  int64_t group = 128;
  bool cold = false;
  bool operator==(const Problem&) const = default;
};

// The weight copies of the problem last asked for (one problem's copies alive at a time).
struct Prepared {
  Problem problem;
  std::vector<prim::PackedB> f32;
  std::vector<comp::PackedBcq> bcq;
  int64_t bytes_per_copy = 0;
};

Prepared& prepare(const Problem& p) {
  static std::unique_ptr<Prepared> prepared;
  if (prepared && prepared->problem == p) return *prepared;
  prepared.reset();
  auto made = std::make_unique<Prepared>();
  made->problem = p;
  // GPT-2-like weight scale; W stored [out, in] for BCQ, [in, out] (x W) for the f32 packing.
  const std::vector<float> w = normal_values(size_t(p.in * p.out), 42, 0.02f);
  if (p.method == Method::lut) {
    const comp::BcqMatrix fit =
        comp::bcq_fit(w.data(), p.out, p.in, p.in, comp::BcqOptions{p.bits, p.group, 2}, &pool_of(2));
    made->bcq.emplace_back(fit);
    made->bytes_per_copy = made->bcq[0].bytes();
  } else {
    made->f32.emplace_back(p.in, p.out, w.data(), p.in, true);
    made->bytes_per_copy = p.in * p.out * int64_t(sizeof(float));
  }
  if (p.cold) {
    const int64_t copies = std::max<int64_t>(2, 2 * l3_bytes() / made->bytes_per_copy + 1);
    for (int64_t c = 1; c < copies; ++c) {
      if (p.method == Method::lut)
        made->bcq.push_back(comp::PackedBcq(made->bcq[0]));  // its own memory
      else
        made->f32.emplace_back(p.in, p.out, w.data(), p.in, true);  // a new packing, not a shared view
    }
  }
  prepared = std::move(made);
  return *prepared;
}

void run_panel_gemv(const prim::PackedB& weight, int64_t rows, const float* x, float* y, tessera::ThreadPool& pool) {
  const tessera::llm::detail::PanelGemvFn gemv = tessera::llm::detail::panel_gemv(prim::active_isa());
  const int64_t panels = weight.panel_count();
  const int64_t chunks = pool.size() <= 1 ? 1 : std::min<int64_t>(panels, 4 * pool.size());
  auto chunk = [&](int c) {
    gemv(rows, x, weight.K(), weight, panels * c / chunks, panels * (c + 1) / chunks, nullptr, false, y, weight.N());
  };
  if (chunks == 1)
    chunk(0);
  else
    pool.run_tasks(int(chunks), chunk);
}

void bench_product(benchmark::State& state, Problem problem, int64_t batch, int threads) {
  Prepared& prepared = prepare(problem);
  tessera::ThreadPool& pool = pool_of(threads);
  const std::vector<float> x = normal_values(size_t(batch * problem.in), 7, 1.f);
  std::vector<float> y(size_t(batch * problem.out));
  const size_t copies = problem.method == Method::lut ? prepared.bcq.size() : prepared.f32.size();
  size_t next = 0;
  for (auto _ : state) {
    switch (problem.method) {
      case Method::lut:
        comp::lut_gemm(prepared.bcq[next], batch, x.data(), problem.in, nullptr, false, y.data(), problem.out, &pool);
        break;
      case Method::f32_gemm: {
        prim::GemmEpilogue none;
        prim::gemm_packed_f32(batch, x.data(), problem.in, prepared.f32[next], y.data(), problem.out, none, &pool);
        break;
      }
      case Method::f32_panel_gemv:
        run_panel_gemv(prepared.f32[next], batch, x.data(), y.data(), pool);
        break;
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    next = next + 1 == copies ? 0 : next + 1;
  }
  state.counters["weight_MB"] = double(prepared.bytes_per_copy) / 1e6;
  state.counters["copies"] = double(copies);
  state.counters["weight_GB/s"] = benchmark::Counter(double(prepared.bytes_per_copy) * 1e-9,
                                                     benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s_equiv"] = benchmark::Counter(2.0 * double(batch * problem.in * problem.out) * 1e-9,
                                                       benchmark::Counter::kIsIterationInvariantRate);
}

std::string method_name(const Problem& p) {
  switch (p.method) {
    case Method::f32_gemm: return "f32_gemm";
    case Method::f32_panel_gemv: return "f32_panel_gemv";
    default: return "lut_q" + std::to_string(p.bits) + "_g" + std::to_string(p.group);
  }
}

void add(Problem p, int64_t batch, int threads) {
  const std::string name = "in" + std::to_string(p.in) + "_out" + std::to_string(p.out) + "/" + method_name(p) +
                           "/batch:" + std::to_string(batch) + "/threads:" + std::to_string(threads) + "/" +
                           (p.cold ? "cold" : "hot");
  benchmark::RegisterBenchmark(name.c_str(), [p, batch, threads](benchmark::State& s) {
    bench_product(s, p, batch, threads);
  })->Unit(benchmark::kMicrosecond)->UseRealTime();
}

// Every method of one shape and regime, grouped so each problem's weights are made once.
void add_shape(int64_t in, int64_t out, bool cold, const std::vector<int64_t>& batches) {
  std::vector<Problem> problems = {{in, out, Method::f32_gemm}, {in, out, Method::f32_panel_gemv}};
  for (int bits : {2, 3, 4}) problems.push_back({in, out, Method::lut, bits, 128});
  for (Problem p : problems) {
    p.cold = cold;
    for (int64_t batch : batches)
      for (int threads : {1, 2}) add(p, batch, threads);
  }
}

const bool registered = [] {
  for (bool cold : {false, true}) add_shape(4096, 4096, cold, {1, 4, 16});
  for (bool cold : {false, true}) {
    add_shape(768, 768, cold, {1});
    add_shape(768, 3072, cold, {1});
    add_shape(3072, 768, cold, {1});
  }
  // Group size at 3 bits (the alphas' share of the bytes grows as groups shrink).
  for (int64_t group : {32, 64})
    for (bool cold : {false, true}) {
      Problem p{4096, 4096, Method::lut, 3, group, cold};
      add(p, 1, 1);
      add(p, 1, 2);
    }
  return true;
}();

}  // namespace
