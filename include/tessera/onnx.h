// ONNX frontend: reads a ModelProto (file or bytes) into a tessera::Graph, and single
// TensorProto files (.pb, as in the ONNX test data) into tensors; writes a Graph back.
#pragma once
#include <string>

#include "tessera/graph.h"

namespace tessera {

// Opsets of the default domain that Tessera accepts.
constexpr int64_t kMinOnnxOpset = 1;
constexpr int64_t kMaxOnnxOpset = 18;

Graph load_onnx_model(const std::string& path);
// model_dir is where external-data files are looked up (and may not be left).
Graph parse_onnx_model(const void* data, size_t size, const std::string& model_dir);
Tensor load_onnx_tensor(const std::string& path);
// Writes a graph as an ONNX model (constants as initializers; custom domains imported at
// version 1). Throws tessera::Error when the file cannot be written.
void save_onnx_model(const Graph& graph, const std::string& path);

}  // namespace tessera
