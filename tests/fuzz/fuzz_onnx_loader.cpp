// libFuzzer target: arbitrary bytes as an ONNX model must load or raise tessera::Error, never crash.
#include <cstddef>
#include <cstdint>

#include "tessera/error.h"
#include "tessera/onnx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    tessera::Graph g = tessera::parse_onnx_model(data, size, "/nonexistent-fuzz-dir");
    (void)g;
  } catch (const tessera::Error&) {
  }
  return 0;
}
