// Tensor storage (aligned, owned or borrowed), views, copies and casts.
#include "tessera/tensor.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include <unistd.h>

namespace tessera {


int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    TESSERA_CHECK(d >= 0, "negative dimension in shape " + shape_to_string(shape));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      throw Error("shape " + shape_to_string(shape) + " has too many elements");
    n *= d;
  }
  return n;
}

std::string shape_to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    // A zero-size tensor may have other dims whose product overflows; its strides are never
    // used to address memory, so saturate instead of overflowing.
    if (__builtin_mul_overflow(stride, shape[i] > 0 ? shape[i] : 1, &stride))
      stride = std::numeric_limits<int64_t>::max();
  }
  return strides;
}

namespace {
size_t physical_memory_bytes() {
  long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
  return pages > 0 && page_size > 0 ? size_t(pages) * size_t(page_size) : size_t(kMaxTensorBytes);
}
}  // namespace

std::shared_ptr<Storage> Storage::allocate_uninitialized(size_t bytes) {
  // A request above the machine's memory comes from a corrupt model or input: refuse it with a
  // message instead of letting the kernel's OOM killer end the process.
  static const size_t memory_limit = physical_memory_bytes();
  if (bytes > memory_limit)
    throw Error("cannot allocate " + std::to_string(bytes / (1 << 20)) + " MiB: more than this machine's memory");
  size_t rounded = (bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
  if (rounded == 0) rounded = kTensorAlignment;
  void* p = std::aligned_alloc(kTensorAlignment, rounded);
  if (!p) throw Error("out of memory allocating " + std::to_string(bytes) + " bytes");
  return std::shared_ptr<Storage>(new Storage(p, bytes, true));
}

std::shared_ptr<Storage> Storage::allocate(size_t bytes) {
  std::shared_ptr<Storage> storage = allocate_uninitialized(bytes);
  size_t rounded = (bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
  std::memset(storage->data(), 0, rounded == 0 ? kTensorAlignment : rounded);
  return storage;
}

std::shared_ptr<Storage> Storage::borrow(void* data, size_t bytes) {
  return std::shared_ptr<Storage>(new Storage(data, bytes, false));
}

Storage::~Storage() {
  if (owned_) std::free(data_);
}

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  int64_t n = shape_numel(shape_);
  if (n > kMaxTensorBytes / int64_t(dtype_size(dtype_)))
    throw Error("tensor of shape " + shape_to_string(shape_) + " is too large");
  strides_ = contiguous_strides(shape_);
  storage_ = Storage::allocate(size_t(n) * dtype_size(dtype_));
}

Tensor::Tensor(DType dtype, Shape shape, std::shared_ptr<Storage> storage, size_t byte_offset)
    : dtype_(dtype), shape_(std::move(shape)), storage_(std::move(storage)), byte_offset_(byte_offset) {
  strides_ = contiguous_strides(shape_);
  if (shape_numel(shape_) > kMaxTensorBytes / int64_t(dtype_size(dtype_)))
    throw Error("tensor of shape " + shape_to_string(shape_) + " is too large");
  TESSERA_CHECK(storage_ && byte_offset_ + nbytes() <= storage_->bytes(),
                "tensor view of shape " + shape_to_string(shape_) + " exceeds its storage");
}

bool Tensor::is_contiguous() const { return strides_ == contiguous_strides(shape_); }

Tensor Tensor::reshaped(Shape shape) const {
  TESSERA_CHECK(is_contiguous(), "reshape of a non-contiguous tensor");
  TESSERA_CHECK(shape_numel(shape) == numel(), "cannot reshape " + shape_to_string(shape_) +
                                                   " to " + shape_to_string(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  t.strides_ = contiguous_strides(t.shape_);
  return t;
}

Tensor Tensor::strided_view(Shape shape, Shape strides, int64_t element_offset) const {
  Tensor t = *this;
  t.shape_ = std::move(shape);
  t.strides_ = std::move(strides);
  t.byte_offset_ = byte_offset_ + size_t(element_offset) * dtype_size(dtype_);
  return t;
}

Tensor Tensor::clone() const {
  Tensor out(dtype_, shape_);
  size_t es = dtype_size(dtype_);
  if (is_contiguous()) {
    std::memcpy(out.raw_data(), raw_data(), nbytes());
    return out;
  }
  int64_t n = numel();
  int r = rank();
  std::vector<int64_t> index(size_t(r), 0);
  const char* src = static_cast<const char*>(raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  for (int64_t i = 0; i < n; ++i) {
    int64_t offset = 0;
    for (int d = 0; d < r; ++d) offset += index[size_t(d)] * strides_[size_t(d)];
    std::memcpy(dst + size_t(i) * es, src + offset * int64_t(es), es);
    for (int d = r - 1; d >= 0; --d) {
      if (++index[size_t(d)] < shape_[size_t(d)]) break;
      index[size_t(d)] = 0;
    }
  }
  return out;
}

double Tensor::value_as_double(int64_t i) const {
  const void* p = static_cast<const char*>(raw_data()) + size_t(i) * dtype_size(dtype_);
  switch (dtype_) {
    case DType::f32: return *static_cast<const float*>(p);
    case DType::f16: return f16_to_f32(*static_cast<const uint16_t*>(p));
    case DType::bf16: return bf16_to_f32(*static_cast<const uint16_t*>(p));
    case DType::i8: return *static_cast<const int8_t*>(p);
    case DType::u8: return *static_cast<const uint8_t*>(p);
    case DType::i32: return *static_cast<const int32_t*>(p);
    case DType::i64: return double(*static_cast<const int64_t*>(p));
    case DType::boolean: return *static_cast<const uint8_t*>(p) ? 1.0 : 0.0;
  }
  return 0;
}

namespace {
// Float to integer without undefined behaviour: NaN becomes 0, out-of-range values saturate.
template <typename To>
To saturate_to(double v) {
  if (std::isnan(v)) return To(0);
  if (v <= double(std::numeric_limits<To>::lowest())) return std::numeric_limits<To>::lowest();
  if (v >= double(std::numeric_limits<To>::max())) return std::numeric_limits<To>::max();
  return To(v);
}

template <typename To>
void convert_all(const Tensor& from, To* to) {
  int64_t n = from.numel();
  for (int64_t i = 0; i < n; ++i) to[i] = saturate_to<To>(from.value_as_double(i));
}
}  // namespace

Tensor Tensor::cast(DType to) const {
  Tensor src = is_contiguous() ? *this : clone();
  Tensor out(to, shape_);
  int64_t n = numel();
  if (to == dtype_) {
    std::memcpy(out.raw_data(), src.raw_data(), nbytes());
    return out;
  }
  switch (to) {
    case DType::f32:
      if (dtype_ == DType::i64) {  // exact path for large integers
        const int64_t* s = src.data<int64_t>();
        for (int64_t i = 0; i < n; ++i) out.data<float>()[i] = float(s[i]);
      } else {
        convert_all(src, out.data<float>());
      }
      break;
    case DType::f16:
      for (int64_t i = 0; i < n; ++i) out.data<uint16_t>()[i] = f32_to_f16(float(src.value_as_double(i)));
      break;
    case DType::bf16:
      for (int64_t i = 0; i < n; ++i) out.data<uint16_t>()[i] = f32_to_bf16(float(src.value_as_double(i)));
      break;
    case DType::i8: convert_all(src, out.data<int8_t>()); break;
    case DType::u8: convert_all(src, out.data<uint8_t>()); break;
    case DType::i32: convert_all(src, out.data<int32_t>()); break;
    case DType::i64:
      if (dtype_ == DType::i32) {
        for (int64_t i = 0; i < n; ++i) out.data<int64_t>()[i] = src.data<int32_t>()[i];
      } else if (dtype_ == DType::f32) {
        for (int64_t i = 0; i < n; ++i) out.data<int64_t>()[i] = saturate_to<int64_t>(src.data<float>()[i]);
      } else {
        convert_all(src, out.data<int64_t>());
      }
      break;
    case DType::boolean:
      for (int64_t i = 0; i < n; ++i) out.data<uint8_t>()[i] = src.value_as_double(i) != 0.0;
      break;
  }
  return out;
}

std::vector<int64_t> Tensor::to_int64_vector() const {
  Tensor src = is_contiguous() ? *this : clone();
  std::vector<int64_t> v(static_cast<size_t>(numel()));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype_ == DType::i64)
      v[i] = src.data<int64_t>()[i];
    else if (dtype_ == DType::i32)
      v[i] = src.data<int32_t>()[i];
    else
      v[i] = saturate_to<int64_t>(src.value_as_double(int64_t(i)));
  }
  return v;
}

Tensor Tensor::from_int64(const std::vector<int64_t>& values, Shape shape) {
  if (shape.empty() && values.size() != 1) shape = {int64_t(values.size())};
  Tensor t(DType::i64, shape);
  TESSERA_CHECK(t.numel() == int64_t(values.size()), "from_int64: size mismatch");
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * 8);
  return t;
}

}  // namespace tessera
