// Safetensors files (Hugging Face's weight format): an 8-byte little-endian header length, a JSON
// header {name: {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}, then the raw bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/tensor.h"

namespace tessera {

// One tensor as the header describes it; offsets are relative to the start of the data.
struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // as written: "F32", "F16", "BF16", "I64", ...
  Shape shape;
  uint64_t begin = 0, end = 0;
};

class SafetensorsFile {
 public:
  // The header may be at most this long (the reference implementation's limit too).
  static constexpr uint64_t kMaxHeaderBytes = uint64_t(100) << 20;

  // Maps the file read-only and checks the whole header: JSON syntax, every entry's dtype, shape
  // and offsets (in range, matching the shape's byte size, no overlaps, no holes, the data
  // exactly covered). Anything wrong throws tessera::Error naming the file and the problem.
  static SafetensorsFile open(const std::string& path);
  // The same checks over a whole file held in memory; the bytes are copied. `name` labels errors.
  static SafetensorsFile parse(const void* data, size_t size, const std::string& name = "safetensors");

  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile();

  const std::string& name() const { return name_; }
  // In the order of their data.
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const SafetensorsEntry* find(std::string_view tensor_name) const;

  // A tensor as f32 (converted from F16 or BF16; other dtypes throw tessera::Error).
  Tensor read_f32(const SafetensorsEntry& entry) const;
  Tensor read_f32(std::string_view tensor_name) const;  // throws when absent

  struct Bytes;  // the mapped or copied file

 private:
  SafetensorsFile(std::string name, std::shared_ptr<const Bytes> bytes);
  std::string name_;
  std::shared_ptr<const Bytes> bytes_;
  const unsigned char* data_ = nullptr;  // start of the tensor data
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace tessera
