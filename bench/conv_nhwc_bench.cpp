// The direct NHWC convolution (primitives/conv_nhwc.h) and, for the 3x3 stride-1 shapes, Winograd
// on NHWC activations, beside Tessera's NCHW Conv operator (a one-node graph: pointwise GEMM
// packing its input, Winograd, im2col or the stem kernel, as the plan picks) on ResNet-50's layer
// shapes, with bias and ReLU fused in all; same threads.
//   build/bench/conv_nhwc_bench --benchmark_enable_random_interleaving=true --benchmark_repetitions=3
#include <benchmark/benchmark.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "graph/graph_builder.h"
#include "ops/winograd.h"
#include "primitives/conv_nhwc.h"
#include "tessera/session.h"
#include "tessera/thread_pool.h"

namespace {

namespace prim = tessera::primitives;

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

tessera::Tensor random_tensor(tessera::Shape shape, uint32_t seed) {
  tessera::Tensor t(tessera::DType::f32, shape);
  const std::vector<float> v = random_floats(size_t(t.numel()), seed);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

// in_hw, in_channels, out_channels, kernel, stride (pad kernel / 2): ResNet-50's distinct shapes.
const int64_t kShapes[][5] = {
    {56, 64, 64, 1, 1},   {56, 256, 64, 1, 1},   {56, 64, 256, 1, 1},   {56, 64, 64, 3, 1},
    {56, 256, 128, 1, 1}, {56, 128, 128, 3, 2},  {28, 128, 512, 1, 1},  {28, 512, 128, 1, 1},
    {28, 128, 128, 3, 1}, {14, 256, 1024, 1, 1}, {14, 1024, 256, 1, 1}, {14, 256, 256, 3, 1},
    {7, 512, 2048, 1, 1}, {7, 2048, 512, 1, 1},  {7, 512, 512, 3, 1},   {224, 3, 64, 7, 2},
};

prim::ConvNhwcShape shape_of(int64_t index) {
  const int64_t* s = kShapes[index];
  prim::ConvNhwcShape shape;
  shape.in_h = shape.in_w = s[0];
  shape.in_channels = s[1];
  shape.out_channels = s[2];
  shape.kernel_h = shape.kernel_w = s[3];
  shape.stride_h = shape.stride_w = s[4];
  shape.pad_top = shape.pad_left = s[3] / 2;
  shape.out_h = shape.out_w = (s[0] + 2 * (s[3] / 2) - s[3]) / s[4] + 1;
  return shape;
}

std::string label(const prim::ConvNhwcShape& s) {
  return std::to_string(s.in_h) + "x" + std::to_string(s.in_w) + " " + std::to_string(s.in_channels) + "->" +
         std::to_string(s.out_channels) + " k" + std::to_string(s.kernel_h) + " s" +
         std::to_string(s.stride_h);
}

double flops(const prim::ConvNhwcShape& s) {
  return 2.0 * double(s.output_pixels()) * double(s.out_channels) * double(s.in_channels) * double(s.taps());
}

void BM_ConvNhwc(benchmark::State& state) {
  const prim::ConvNhwcShape s = shape_of(state.range(0));
  const int threads = int(state.range(1));
  const std::vector<float> x = random_floats(size_t(s.in_h * s.in_w * s.in_channels), 1);
  const std::vector<float> w = random_floats(size_t(s.out_channels * s.in_channels * s.taps()), 2);
  const std::vector<float> bias = random_floats(size_t(s.out_channels), 3);
  std::vector<float> y(size_t(s.output_pixels() * s.out_channels));
  const prim::ConvNhwcWeights packed(s, w.data());
  prim::GemmEpilogue epilogue;
  epilogue.bias_per_column = bias.data();
  epilogue.activation.kind = prim::UnaryKind::relu;
  tessera::ThreadPool pool(threads);
  for (auto _ : state) {
    prim::conv_nhwc_f32(s, packed, x.data(), &epilogue, y.data(), &pool);
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(flops(s), benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
  state.SetLabel(label(s));
}

// The 3x3 stride-1 shapes on channels-last Winograd (variant 2: F(2x2), 4: F(4x4)).
void BM_WinogradNhwc(benchmark::State& state) {
  const prim::ConvNhwcShape s = shape_of(state.range(0));
  const int threads = int(state.range(1));
  const auto variant = tessera::WinogradVariant(state.range(2));
  const std::vector<float> x = random_floats(size_t(s.in_h * s.in_w * s.in_channels), 1);
  const std::vector<float> w = random_floats(size_t(s.out_channels * s.in_channels * s.taps()), 2);
  const std::vector<float> bias = random_floats(size_t(s.out_channels), 3);
  std::vector<float> y(size_t(s.output_pixels() * s.out_channels));
  const tessera::WinogradProblem problem = tessera::channels_last_winograd_problem(s);
  const tessera::WinogradConvolution conv(problem, variant, w.data(), threads);
  tessera::ThreadPool pool(threads);
  for (auto _ : state) {
    conv.run(x.data(), bias.data(), nullptr, prim::UnaryParams{prim::UnaryKind::relu}, y.data(), pool);
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(flops(s), benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
  state.SetLabel(label(s) + " F" + std::to_string(int(variant)));
}

void BM_ConvNchwOperator(benchmark::State& state) {
  const prim::ConvNhwcShape s = shape_of(state.range(0));
  const int threads = int(state.range(1));
  tessera::GraphBuilder b;
  const int x = b.input("x", {1, s.in_channels, s.in_h, s.in_w});
  const int w = b.constant("w", random_tensor({s.out_channels, s.in_channels, s.kernel_h, s.kernel_w}, 2));
  const int bias = b.constant("b", random_tensor({s.out_channels}, 3));
  tessera::Attributes attributes;
  attributes.set_ints("kernel_shape", {s.kernel_h, s.kernel_w});
  attributes.set_ints("strides", {s.stride_h, s.stride_w});
  attributes.set_ints("pads", {s.pad_top, s.pad_left, s.pad_top, s.pad_left});
  const int conv = b.node("Conv", {x, w, bias}, attributes);
  b.g.outputs.push_back(b.node("Relu", {conv}));
  tessera::Session session(std::move(b.g), tessera::SessionOptions{threads, true});
  const std::map<std::string, tessera::Tensor> inputs{
      {"x", random_tensor({1, s.in_channels, s.in_h, s.in_w}, 1)}};
  session.run(inputs);
  for (auto _ : state) benchmark::DoNotOptimize(session.run(inputs));
  state.counters["GFLOP/s"] = benchmark::Counter(flops(s), benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
  state.SetLabel(label(s));
}

void shapes_and_threads(benchmark::internal::Benchmark* b) {
  for (int64_t threads : {1, 2})
    for (int64_t i = 0; i < int64_t(sizeof(kShapes) / sizeof(kShapes[0])); ++i) b->Args({i, threads});
}

void winograd_shapes(benchmark::internal::Benchmark* b) {
  for (int64_t threads : {1, 2})
    for (int64_t i = 0; i < int64_t(sizeof(kShapes) / sizeof(kShapes[0])); ++i)
      if (kShapes[i][3] == 3 && kShapes[i][4] == 1)
        for (int64_t variant : {2, 4}) b->Args({i, threads, variant});
}

}  // namespace

BENCHMARK(BM_WinogradNhwc)
    ->Apply(winograd_shapes)
    ->ArgNames({"shape", "threads", "F"})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_ConvNhwc)
    ->Apply(shapes_and_threads)
    ->ArgNames({"shape", "threads"})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_ConvNchwOperator)
    ->Apply(shapes_and_threads)
    ->ArgNames({"shape", "threads"})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
