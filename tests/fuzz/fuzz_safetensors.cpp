// libFuzzer target: arbitrary bytes as a safetensors file must parse or raise tessera::Error,
// never crash; every float tensor of a file that parses must read back as f32.
#include <cstddef>
#include <cstdint>

#include "tessera/error.h"
#include "tessera/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    tessera::SafetensorsFile file = tessera::SafetensorsFile::parse(data, size, "fuzz");
    for (const tessera::SafetensorsEntry& entry : file.entries()) {
      if (entry.dtype != "F32" && entry.dtype != "F16" && entry.dtype != "BF16") continue;
      tessera::Tensor t = file.read_f32(entry);
      if (uint64_t(t.numel()) * (entry.dtype == "F32" ? 4 : 2) != entry.end - entry.begin) __builtin_trap();
    }
  } catch (const tessera::Error&) {
  }
  return 0;
}
