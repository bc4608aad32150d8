// Post-training int8 quantization into standard ONNX QDQ form: weights of Conv, Gemm and MatMul
// quantized to s8 (per output channel or per tensor, symmetric), activations around Conv, Add,
// MaxPool, GlobalAveragePool and the matrix products quantized with ranges calibrated on data (u8 asymmetric or s8
// symmetric), biases to int32. Tessera lowers the result to its int8 kernels; any ONNX runtime
// can run it too. Layers can be left in f32, by name or to meet an accuracy target.
#pragma once
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "compression/int8_calibration.h"
#include "tessera/graph.h"
#include "tessera/tensor.h"

namespace tessera::compression {

struct Int8QuantizeOptions {
  CalibrationMethod calibration = CalibrationMethod::min_max;
  double percentile = 99.99;
  bool per_channel = true;             // weight scales per output channel (else per tensor)
  bool symmetric_activations = false;  // s8 with zero point 0 (else u8 with a zero point)
  std::set<std::string> keep_float;    // layer (node) names left in f32
};

// One calibration batch: the graph's inputs by name.
using Feeds = std::map<std::string, Tensor>;

struct Int8QuantizeReport {
  int convolutions_quantized = 0, matmuls_quantized = 0, layers_kept_float = 0, activations_quantized = 0;
  std::vector<std::string> quantized_layers, float_layers;
};

// Nodes that quantize_int8 would quantize (Conv with group 1 and Gemm / MatMul, with constant
// f32 weights), in graph order, after the same standard rewrites (Identity removal,
// BatchNormalization folding).
std::vector<std::string> quantizable_layers(const Graph& float_graph);

// The QDQ graph. Calibration runs the float graph (after the rewrites) on every batch.
Graph quantize_int8(const Graph& float_graph, const std::vector<Feeds>& calibration,
                    const Int8QuantizeOptions& options, Int8QuantizeReport* report = nullptr);

// Accuracy-targeted fallback: quantizes everything, and while `evaluate(graph)` (higher is
// better, e.g. top-1 accuracy in percent) is more than max_drop below the float graph's, returns
// the most sensitive remaining layer to f32 (sensitivity: the gain from keeping only that layer
// in f32, measured once per layer). Returns the options used (keep_float filled in).
Int8QuantizeOptions choose_float_layers(const Graph& float_graph, const std::vector<Feeds>& calibration,
                                        Int8QuantizeOptions options,
                                        const std::function<double(const Graph&)>& evaluate, double max_drop,
                                        std::string* log = nullptr);

}  // namespace tessera::compression
