// Small helpers shared by the operators that read integer index tensors (losses, scatter/gather,
// TopK, OneHot): reading i32/i64 elements and wrapping negative indices with a clear error.
#pragma once
#include <cstdint>
#include <string>

#include "tessera/tensor.h"

namespace tessera {

inline bool is_index_dtype(DType dtype) { return dtype == DType::i32 || dtype == DType::i64; }

// Element i of an int32 or int64 tensor (callers check the dtype at plan time).
inline int64_t read_integer(const Tensor& t, int64_t i) {
  return t.dtype() == DType::i64 ? t.data<int64_t>()[i] : int64_t(t.data<int32_t>()[i]);
}

// Index into a dimension of `size`, negative values counting from the end; throws when out of range
// (run-time data, so the message names the operator and the offending value).
inline int64_t wrap_index(int64_t index, int64_t size, const std::string& who) {
  int64_t wrapped = index < 0 ? index + size : index;
  if (wrapped < 0 || wrapped >= size)
    throw Error(who + ": index " + std::to_string(index) + " is out of range for a dimension of size " +
                std::to_string(size));
  return wrapped;
}

}  // namespace tessera
