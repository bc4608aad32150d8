// libFuzzer target: arbitrary bytes as a .npy file must parse or raise tessera::Error, never crash.
#include <cstddef>
#include <cstdint>

#include "tessera/error.h"
#include "tessera/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    tessera::Tensor t = tessera::parse_npy(data, size);
    (void)t;
  } catch (const tessera::Error&) {
  }
  return 0;
}
