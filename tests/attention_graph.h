// The attention block PyTorch exports (projections, head split, scaled scores, padding mask or
// causal Where, softmax, head merge), built by hand: shared by tests/attention_test.cpp and
// bench/attention_bench.cpp.
#pragma once
#include <cmath>
#include <map>
#include <random>
#include <string>

#include "graph/graph_builder.h"

namespace tessera::testing {

inline Tensor random_floats_tensor(Shape shape, uint32_t seed, float low = -1.f, float high = 1.f) {
  Tensor t(DType::f32, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(low, high);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

inline Attributes perm(std::vector<int64_t> p) {
  Attributes a;
  a.set_ints("perm", std::move(p));
  return a;
}

// x [1, S, H*D] -> Q, K, V projections -> split heads -> attention -> merge heads -> [1, S, H*D],
// exactly as PyTorch exports BERT's (additive padding mask) or GPT-2's (causal Where) attention.
inline Graph attention_graph(int64_t length, int64_t heads, int64_t head_size, bool causal, uint32_t seed) {
  GraphBuilder b;
  const int64_t hidden = heads * head_size;
  int x = b.input("x", {1, length, hidden});
  auto project = [&](uint32_t s) {
    int y = b.node("MatMul", {x, b.constant("w" + std::to_string(s), random_floats_tensor({hidden, hidden}, s, -0.3f, 0.3f))});
    int split = b.node("Reshape", {y, b.constant("shape" + std::to_string(s), Tensor::from_int64({1, length, heads, head_size}, {4}))});
    return split;
  };
  int q = b.node("Transpose", {project(seed)}, perm({0, 2, 1, 3}));
  int kt = b.node("Transpose", {project(seed + 1)}, perm({0, 2, 3, 1}));
  int v = b.node("Transpose", {project(seed + 2)}, perm({0, 2, 1, 3}));
  int scores = b.node("MatMul", {q, kt});
  Tensor scale(DType::f32, {});
  scale.data<float>()[0] = 1.f / std::sqrt(float(head_size));
  int scaled = b.node("Mul", {scores, b.constant("scale", scale)});
  int masked;
  if (causal) {
    // masked_fill(~tril, -1e9): Where(not-keep, fill, scores) with a constant condition.
    Tensor upper(DType::boolean, {1, 1, length, length});
    for (int64_t i = 0; i < length; ++i)
      for (int64_t j = 0; j < length; ++j) upper.data<uint8_t>()[i * length + j] = j > i;
    Tensor fill(DType::f32, {});
    fill.data<float>()[0] = -1e9f;
    masked = b.node("Where", {b.constant("upper", upper), b.constant("fill", fill), scaled});
  } else {
    int mask = b.input("mask", {1, 1, 1, length});
    masked = b.node("Add", {scaled, mask});
  }
  Attributes axis;
  axis.set_int("axis", -1);
  int probs = b.node("Softmax", {masked}, axis);
  int context = b.node("MatMul", {probs, v});
  int merged = b.node("Transpose", {context}, perm({0, 2, 1, 3}));
  int out = b.node("Reshape", {merged, b.constant("merge", Tensor::from_int64({1, length, hidden}, {3}))});
  b.g.outputs = {out};
  return b.g;
}

// Its inputs: x [1, length, hidden], and a padding mask (every 4th key masked) unless causal.
inline std::map<std::string, Tensor> attention_graph_inputs(int64_t length, int64_t hidden, bool causal) {
  std::map<std::string, Tensor> inputs = {{"x", random_floats_tensor({1, length, hidden}, 7)}};
  if (!causal) {
    Tensor mask(DType::f32, {1, 1, 1, length});
    for (int64_t j = 0; j < length; ++j) mask.data<float>()[j] = j % 4 == 3 ? -10000.f : 0.f;
    inputs["mask"] = mask;
  }
  return inputs;
}

}  // namespace tessera::testing
