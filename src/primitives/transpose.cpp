// transpose_2d: a cache-blocked out-of-place transpose for any element size, with typed loops
// for the sizes tensors use (1, 2, 8, 16 bytes) so the copies are plain loads and stores, and the
// ISA's register-block kernel for 4-byte elements (float activations, im2col and K^T copies).
#include <cstring>

#include "primitives/kernels.h"
#include "primitives/primitives.h"

namespace tessera::primitives {

namespace {

// Tiles small enough that a tile of source rows and one of destination rows both stay in L1.
constexpr int64_t kTile = 32;

template <typename T>
void transpose_typed(int64_t rows, int64_t cols, const T* src, int64_t ld_src, T* dst, int64_t ld_dst) {
  for (int64_t r0 = 0; r0 < rows; r0 += kTile) {
    const int64_t r1 = r0 + kTile < rows ? r0 + kTile : rows;
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      const int64_t c1 = c0 + kTile < cols ? c0 + kTile : cols;
      for (int64_t c = c0; c < c1; ++c) {
        T* out = dst + c * ld_dst;
        for (int64_t r = r0; r < r1; ++r) out[r] = src[r * ld_src + c];
      }
    }
  }
}

struct Bytes16 {
  uint64_t low, high;
};

}  // namespace

namespace detail {
void transpose_4byte_scalar(int64_t rows, int64_t cols, const uint32_t* src, int64_t ld_src, uint32_t* dst,
                            int64_t ld_dst) {
  transpose_typed(rows, cols, src, ld_src, dst, ld_dst);
}
}  // namespace detail

void transpose_2d(int64_t rows, int64_t cols, const void* src, int64_t ld_src, void* dst, int64_t ld_dst,
                  size_t element_size) {
  if (rows <= 0 || cols <= 0) return;
  switch (element_size) {
    case 1:
      return transpose_typed(rows, cols, static_cast<const uint8_t*>(src), ld_src, static_cast<uint8_t*>(dst),
                             ld_dst);
    case 2:
      return transpose_typed(rows, cols, static_cast<const uint16_t*>(src), ld_src,
                             static_cast<uint16_t*>(dst), ld_dst);
    case 4:
      return detail::eltwise_kernels(active_isa())
          .transpose_4byte(rows, cols, static_cast<const uint32_t*>(src), ld_src, static_cast<uint32_t*>(dst), ld_dst);
    case 8:
      return transpose_typed(rows, cols, static_cast<const uint64_t*>(src), ld_src,
                             static_cast<uint64_t*>(dst), ld_dst);
    case 16:
      return transpose_typed(rows, cols, static_cast<const Bytes16*>(src), ld_src, static_cast<Bytes16*>(dst),
                             ld_dst);
    default:
      break;
  }
  // Other sizes (strings of bytes, structs): one memcpy per element, still tiled.
  const auto* s = static_cast<const unsigned char*>(src);
  auto* d = static_cast<unsigned char*>(dst);
  for (int64_t r0 = 0; r0 < rows; r0 += kTile) {
    const int64_t r1 = r0 + kTile < rows ? r0 + kTile : rows;
    for (int64_t c = 0; c < cols; ++c) {
      for (int64_t r = r0; r < r1; ++r) {
        std::memcpy(d + (c * ld_dst + r) * element_size, s + (r * ld_src + c) * element_size, element_size);
      }
    }
  }
}

}  // namespace tessera::primitives
