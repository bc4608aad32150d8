// Post-training bit-plane quantization of a float graph: Conv / Gemm / MatMul nodes with constant
// weights become tessera.BitplaneConv / tessera.BitplaneMatMul with packed weight planes.
//
// The rewritten nodes (domain "tessera"; docs/COMPRESSION_BITPLANE.md has the full format):
//   BitplaneConv(X, planes, weight_scales, bias?, activation_scale?, activation_zero_point?)
//   BitplaneMatMul(X, planes, weight_scales, bias?, activation_scale?, activation_zero_point?)
// planes: uint8 [N, weight_bits, ceil(K / 8)], bit k of output channel n's plane b at byte k / 8,
// bit k % 8 (N output channels, K = C * kh * kw or the MatMul depth; Conv weights flattened in
// ONNX order). Weights are signed two's complement per output channel, w ~ scale[n] * code
// (binary {-1,+1} at one bit). Activations are unsigned, x ~ scale * (code - zero_point), per
// tensor: from calibration when the two optional inputs are given, else from each run's min/max.
// Attributes: weight_bits, activation_bits, weight_encoding ("signed" | "binary"), activation
// ("" | "Relu", fused), and for Conv kernel_shape, strides, pads, dilations.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tessera/graph.h"
#include "tessera/tensor.h"

namespace tessera::compression {

struct BitplaneOptions {
  int weight_bits = 4;      // 1..8 (1: binary {-1,+1} weights)
  int activation_bits = 4;  // 1..8, unsigned with a zero point
  // The first and last quantizable layers (in execution order) stay f32, as usual for low bits.
  bool keep_first_layer_f32 = true;
  bool keep_last_layer_f32 = true;
  std::vector<std::string> only_layers;     // node names; empty: every quantizable node
  std::vector<std::string> exclude_layers;  // node names kept f32
  // One batch of model inputs to set each layer's activation range (static scale and zero point,
  // stored as constants). Empty: every run quantizes with its own min/max (dynamic).
  std::map<std::string, Tensor> calibration_inputs;
};

struct BitplaneReport {
  std::vector<std::string> quantized_layers;  // node names, in graph order
  std::vector<std::string> kept_f32_layers;   // quantizable nodes left in f32
  int64_t float_weight_bytes = 0;             // the quantized layers' weights before
  int64_t packed_weight_bytes = 0;            // their planes + scales after
  bool calibrated = false;
};

// Rewrites `graph` in place. Folds inference BatchNormalization into the preceding Conv/Gemm first
// (so the folded weights are the ones quantized) and fuses a Relu that alone reads a rewritten
// node's output. Throws tessera::Error for options out of range or names that match no node.
BitplaneReport apply_bitplane_quantization(Graph& graph, const BitplaneOptions& options);

// The quantization rules, shared by the rewrite and the operators (tests re-derive them).
struct ActivationQuantization {
  float scale = 1.f;
  int32_t zero_point = 0;
};
// Unsigned `bits` codes over [min(lo, 0), max(hi, 0)]: scale = range / (2^bits - 1), zero point
// round(-low / scale); a zero range gives scale 1, zero point 0.
ActivationQuantization activation_quantization(float lo, float hi, int bits);
// code = clamp(round_half_even(x / scale) + zero_point, 0, 2^bits - 1).
uint8_t quantize_activation(float x, const ActivationQuantization& q, int bits);

// Per output channel (rows of `weights`, rows x depth): signed codes and scales. bits >= 2: the
// scale with the least squared error among 100 clipping ratios of max|w| (full two's complement
// range); bits == 1: binary codes sign(w) (0 -> +1) with scale mean|w|.
struct QuantizedWeights {
  std::vector<int32_t> codes;  // rows x depth
  std::vector<float> scales;   // rows
};
QuantizedWeights quantize_weights(const float* weights, int64_t rows, int64_t depth, int bits);

}  // namespace tessera::compression
