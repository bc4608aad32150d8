// Shared helpers for tests: seeded random tensors and error metrics.
#pragma once
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "onnx/onnx.pb.h"
#include "primitives/primitives.h"
#include "graph/graph_builder.h"
#include "tessera/tensor.h"

namespace tessera::testing {

std::vector<float> random_floats(size_t n, uint32_t seed, float low = -1.f, float high = 1.f);
Tensor random_tensor(Shape shape, uint32_t seed, float low = -1.f, float high = 1.f);
// ||a - b||_2 / max(||b||_2, tiny); both converted to f32.
double relative_l2_error(const Tensor& actual, const Tensor& expected);
double max_abs_difference(const float* a, const float* b, size_t n);
std::string source_path(const std::string& relative);  // path inside the repository
// Runs `body` once per ISA the CPU supports (scalar, AVX2, AVX-512), with a gtest trace naming
// it, restoring the active ISA afterwards; stops at the first fatal failure.
void for_each_isa(const std::function<void(primitives::Isa)>& body);
using tessera::GraphBuilder;
// y = Relu(x + w): x is float32 [batch, 4] (batch symbolic), w an initializer of 4 floats.
onnx::ModelProto small_onnx_model();

}  // namespace tessera::testing
