// Compile-time dispatch over Tessera's element types for operators with generic (non-f32) paths:
// 16-bit floats are stored as bits and computed in f32, like numpy does for float16 arithmetic.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include "tessera/dtype.h"
#include "tessera/error.h"

namespace tessera {

struct Half {  // IEEE binary16 bits
  uint16_t bits;
};
struct BFloat {  // bfloat16 bits
  uint16_t bits;
};

// Storage type -> the type arithmetic is done in, with load/store between them.
template <typename T>
struct Element {
  using Compute = T;
  static Compute load(T v) { return v; }
  static T store(Compute v) { return v; }
};
template <>
struct Element<Half> {
  using Compute = float;
  static float load(Half v) { return f16_to_f32(v.bits); }
  static Half store(float v) { return Half{f32_to_f16(v)}; }
};
template <>
struct Element<BFloat> {
  using Compute = float;
  static float load(BFloat v) { return bf16_to_f32(v.bits); }
  static BFloat store(float v) { return BFloat{f32_to_bf16(v)}; }
};
template <typename T>
using ComputeOf = typename Element<T>::Compute;

template <typename T>
constexpr bool is_floating_storage = std::is_same_v<T, float> || std::is_same_v<T, Half> ||
                                     std::is_same_v<T, BFloat>;

template <typename T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return DType::f32;
  else if constexpr (std::is_same_v<T, Half>) return DType::f16;
  else if constexpr (std::is_same_v<T, BFloat>) return DType::bf16;
  else if constexpr (std::is_same_v<T, int8_t>) return DType::i8;
  else if constexpr (std::is_same_v<T, uint8_t>) return DType::u8;
  else if constexpr (std::is_same_v<T, int32_t>) return DType::i32;
  else if constexpr (std::is_same_v<T, int64_t>) return DType::i64;
  else return DType::boolean;
}

// Calls fn(T{}) with T the storage type of `dtype` (bool for boolean).
template <typename Fn>
decltype(auto) visit_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::f32: return fn(float{});
    case DType::f16: return fn(Half{});
    case DType::bf16: return fn(BFloat{});
    case DType::i8: return fn(int8_t{});
    case DType::u8: return fn(uint8_t{});
    case DType::i32: return fn(int32_t{});
    case DType::i64: return fn(int64_t{});
    case DType::boolean: return fn(bool{});
  }
  throw Error("unknown dtype");
}

// Numeric types only (booleans rejected with a message naming `who`).
template <typename Fn>
decltype(auto) visit_numeric(DType dtype, const std::string& who, Fn&& fn) {
  switch (dtype) {
    case DType::f32: return fn(float{});
    case DType::f16: return fn(Half{});
    case DType::bf16: return fn(BFloat{});
    case DType::i8: return fn(int8_t{});
    case DType::u8: return fn(uint8_t{});
    case DType::i32: return fn(int32_t{});
    case DType::i64: return fn(int64_t{});
    case DType::boolean: break;
  }
  throw Error(who + ": " + dtype_name(dtype) + " inputs are not supported");
}

// Converts between any two storage types: floats to ints truncate toward zero and saturate
// (NaN becomes 0) so that no conversion is undefined behaviour; ints wrap like numpy.
template <typename To, typename From>
inline To convert_element(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<To, bool>) {
    return ComputeOf<From>(Element<From>::load(v)) != ComputeOf<From>(0);
  } else if constexpr (is_floating_storage<To>) {
    if constexpr (std::is_same_v<From, Half> || std::is_same_v<From, BFloat>)
      return Element<To>::store(Element<From>::load(v));
    else
      return Element<To>::store(float(v));
  } else if constexpr (is_floating_storage<From>) {
    float f = Element<From>::load(v);
    if (std::isnan(f)) return To(0);
    double d = std::trunc(double(f));
    if (d <= double(std::numeric_limits<To>::lowest())) return std::numeric_limits<To>::lowest();
    if (d >= double(std::numeric_limits<To>::max())) return std::numeric_limits<To>::max();
    return To(d);
  } else {
    return To(v);  // integer to integer (bool included): modular, as numpy's astype
  }
}

// Calls fn(tag) with a float / Half / BFloat tag value for the floating-point dtypes; other
// dtypes are refused with an error naming `who` (e.g. the node).
template <typename Fn>
void visit_float(DType dtype, const std::string& who, Fn&& fn) {
  switch (dtype) {
    case DType::f32:
      fn(float{});
      return;
    case DType::f16:
      fn(Half{});
      return;
    case DType::bf16:
      fn(BFloat{});
      return;
    default:
      throw Error(who + ": " + dtype_name(dtype) + " inputs are not supported (floating point only)");
  }
}

}  // namespace tessera
