// Element types of tensors and the conversions between the 16-bit float formats and f32.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

namespace tessera {

enum class DType : uint8_t { f32, f16, bf16, i8, u8, i32, i64, boolean };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
bool dtype_is_float(DType dtype);

// ONNX TensorProto.DataType codes; throws for types Tessera does not hold.
DType dtype_from_onnx(int onnx_type);
int dtype_to_onnx(DType dtype);

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint16_t f32_to_bf16(float f) {  // round to nearest even, NaN kept NaN
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

}  // namespace tessera
