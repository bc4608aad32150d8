// NumPy .npy files: read, parse (from memory) and write Tessera tensors.
// Used for reference inputs/outputs (models/zoo, models/ocr) and by the CLI to load inputs.
#pragma once
#include <cstddef>
#include <string>

#include "tessera/tensor.h"

namespace tessera {

// Supported: format versions 1.0, 2.0 and 3.0; little-endian (or byte-order free) dtypes
// <f4, <f2, <i4, <i8, |b1, |u1, |i1; C order only. Anything else, and every malformed,
// truncated or inconsistent file, throws tessera::Error naming the problem.
Tensor read_npy(const std::string& path);

// Same as read_npy over bytes in memory (the whole file). Never reads outside [data, data+size)
// and allocates only after checking that the data length matches the header's shape.
Tensor parse_npy(const void* data, size_t size);

// The complete .npy file for a tensor: version 1.0, or 2.0 when the header needs more than
// 65535 bytes. Non-contiguous tensors are written in logical (C) order. bf16 has no NumPy
// type and throws.
std::string encode_npy(const Tensor& tensor);
void write_npy(const std::string& path, const Tensor& tensor);

}  // namespace tessera
