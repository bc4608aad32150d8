// What the Conv operator exposes beyond the Kernel interface: which algorithm a planned Conv
// node runs (for profilers and reports), and the names used to force one.
#pragma once
#include <string>

#include "ops/operator.h"

namespace tessera {

// Node attribute that forces a Conv node's algorithm (same values as TESSERA_CONV_ALGO):
// "auto" (cost model, the default), "direct" (im2col/pointwise/depthwise), "winograd2"
// (F(2x2,3x3)) or "winograd4" (F(4x4,3x3)). A Winograd choice applies only to f32 3x3 stride-1
// dilation-1 group-1 2-D convolutions with weights known at plan time; others run direct.
inline constexpr const char* kConvAlgorithmAttribute = "tessera.conv_algorithm";

// The algorithm a Conv kernel was planned with: "pointwise", "depthwise", "im2col",
// "winograd_f2x2" or "winograd_f4x4"; empty when `kernel` is not a Conv kernel.
std::string conv_algorithm_name(const Kernel& kernel);

}  // namespace tessera
