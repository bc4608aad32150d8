// Tensor: a typed n-dimensional view (shape, strides in elements, offset) over
// 64-byte aligned storage that may be owned or borrowed (e.g. from the planner's arena).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tessera/dtype.h"
#include "tessera/error.h"

namespace tessera {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
std::string shape_to_string(const Shape& shape);
Shape contiguous_strides(const Shape& shape);

constexpr size_t kTensorAlignment = 64;
// No single tensor may exceed this: larger sizes come from corrupt models or inputs.
constexpr int64_t kMaxTensorBytes = int64_t(64) << 30;

// Aligned byte storage. Owned storage frees itself; borrowed storage does not.
class Storage {
 public:
  static std::shared_ptr<Storage> allocate(size_t bytes);  // zero-filled
  // Not filled: its pages are committed only when first written (the activation arena, whose
  // every tensor is written by its producing step before anything reads it).
  static std::shared_ptr<Storage> allocate_uninitialized(size_t bytes);
  static std::shared_ptr<Storage> borrow(void* data, size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  Storage(void* data, size_t bytes, bool owned) : data_(data), bytes_(bytes), owned_(owned) {}
  void* data_;
  size_t bytes_;
  bool owned_;
};

class Tensor {
 public:
  Tensor() = default;
  // A new zero-filled contiguous tensor. Throws for negative dims or absurd sizes.
  Tensor(DType dtype, Shape shape);
  // A contiguous view over existing storage at a byte offset.
  Tensor(DType dtype, Shape shape, std::shared_ptr<Storage> storage, size_t byte_offset = 0);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t dim(int i) const { return shape_[size_t(i < 0 ? i + rank() : i)]; }
  int rank() const { return int(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  bool defined() const { return storage_ != nullptr; }
  bool is_contiguous() const;

  void* raw_data() const { return static_cast<char*>(storage_->data()) + byte_offset_; }
  template <typename T>
  T* data() const { return static_cast<T*>(raw_data()); }

  // Same storage, new shape (must be contiguous and hold the same element count).
  Tensor reshaped(Shape shape) const;
  // A strided view with the given shape and strides (elements) at an element offset.
  Tensor strided_view(Shape shape, Shape strides, int64_t element_offset = 0) const;
  // A contiguous deep copy.
  Tensor clone() const;
  // Copy of this tensor's elements converted to another dtype.
  Tensor cast(DType to) const;

  // Reads element i (flat, contiguous order) as double; for tests and shape math.
  double value_as_double(int64_t flat_index) const;
  // Reads all elements of an integer tensor as int64 (for shape-like inputs).
  std::vector<int64_t> to_int64_vector() const;
  static Tensor from_int64(const std::vector<int64_t>& values, Shape shape = {});

 private:
  DType dtype_ = DType::f32;
  Shape shape_;
  Shape strides_;
  std::shared_ptr<Storage> storage_;
  size_t byte_offset_ = 0;
};

}  // namespace tessera
