// Graph rewrite for int8 Winograd: eligible Conv nodes (3x3, stride 1, dilation 1, one group,
// constant weights) of a float graph become tessera.WinogradInt8Conv with calibrated scales.
//
// The node (domain "tessera"; docs/COMPRESSION_WINOGRAD_INT8.md has the full format):
//   WinogradInt8Conv(X, weight_codes, weight_scales, activation_scales, bias?)
// weight_codes int8 [taps, C_in, C_out] (taps = (tile + 2)^2, row-major over the alpha x alpha
// transform domain), weight_scales f32 [taps, C_out], activation_scales f32 [taps] (static, from
// calibration), bias f32 [C_out]. Attributes: tile (2 | 4), pads (4), activation ("" | "Relu"),
// tap_wise and power_of_two (how the scales were chosen; the operator only reads the scales).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "compression/winograd_int8.h"
#include "tessera/graph.h"
#include "tessera/tensor.h"

namespace tessera {
class OperatorRegistry;
// Registers tessera.WinogradInt8Conv (defined in winograd_int8_operators.cpp). Registering twice
// is harmless (the second call does nothing).
void register_winograd_int8_operators(OperatorRegistry& registry);
}  // namespace tessera

namespace tessera::compression {

struct WinogradInt8Options {
  WinogradInt8Scheme scheme;
  // Model inputs run through the float graph to record each layer's per-tap max |B^T d B|
  // (static activation scales). Required: the operator has no dynamic mode.
  std::map<std::string, Tensor> calibration_inputs;
  std::vector<std::string> exclude_layers;  // node names kept f32
  // max: scales cover each tap's calibrated max |V|; mse: the candidate scale at or below that
  // with the least estimated squared error (clips rare outliers), from per-tap histograms.
  enum class Calibration { max, mse };
  Calibration calibration = Calibration::max;
};

struct WinogradInt8Report {
  std::vector<std::string> quantized_layers;
  std::vector<std::string> kept_f32_layers;  // eligible but excluded
  // Per quantized layer, max over taps / min over taps of the calibrated activation range: how
  // much one scale for all taps costs the small taps.
  std::vector<float> activation_range_spread;
};

// Rewrites `graph` in place (BatchNormalization folded first, a Relu that alone reads a rewritten
// node's output fused). Throws tessera::Error on a bad scheme, missing calibration data or names
// that match no node.
WinogradInt8Report apply_winograd_int8(Graph& graph, const WinogradInt8Options& options);

}  // namespace tessera::compression
