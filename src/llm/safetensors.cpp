// Reads safetensors files: maps the file, checks the JSON header whole (so a damaged file fails
// here with one message, never later with a crash) and converts F32, F16 and BF16 tensors to f32.
#include "tessera/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "nlohmann/json.hpp"
#include "tessera/error.h"

namespace tessera {

struct SafetensorsFile::Bytes {
  const unsigned char* data = nullptr;
  size_t size = 0;
  void* mapping = nullptr;  // munmap'd when set
  std::vector<unsigned char> copy;
  ~Bytes() {
    if (mapping) munmap(mapping, size);
  }
};

namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& name, const std::string& problem) {
  throw Error(name + ": " + problem);
}

// Bytes per element of the dtypes the format defines; 0 for names it does not.
size_t dtype_bytes(const std::string& dtype) {
  static const std::map<std::string, size_t, std::less<>> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},  {"I32", 4},     {"I16", 2},    {"I8", 1},
      {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},   {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  auto found = sizes.find(dtype);
  return found == sizes.end() ? 0 : found->second;
}

// nlohmann's parser recurses per nesting level; a header is three levels deep, so anything far
// deeper is refused before parsing rather than risking the stack on a hostile file.
void check_nesting(std::string_view text, const std::string& name) {
  constexpr int kMaxDepth = 32;
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth) fail(name, "header JSON is nested more than 32 levels deep");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

uint64_t read_u64_le(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A non-negative JSON integer, or nullopt.
std::optional<uint64_t> as_unsigned(const json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0) return uint64_t(value.get<int64_t>());
  return std::nullopt;
}

SafetensorsEntry parse_entry(const std::string& file, const std::string& tensor, const json& info,
                             uint64_t data_size) {
  const std::string where = "tensor '" + tensor + "'";
  if (tensor.empty()) fail(file, "a tensor has an empty name");
  if (!info.is_object()) fail(file, where + ": its header entry is not a JSON object");
  SafetensorsEntry entry;
  entry.name = tensor;
  auto dtype = info.find("dtype");
  if (dtype == info.end() || !dtype->is_string()) fail(file, where + ": no \"dtype\" string");
  entry.dtype = dtype->get<std::string>();
  const size_t element_bytes = dtype_bytes(entry.dtype);
  if (element_bytes == 0) fail(file, where + ": unknown dtype \"" + entry.dtype + "\"");

  auto shape = info.find("shape");
  if (shape == info.end() || !shape->is_array()) fail(file, where + ": no \"shape\" array");
  if (shape->size() > 16) fail(file, where + ": more than 16 dimensions");
  // The element count may not overflow and the bytes must fit the data (checked below), so no
  // dimension product is ever formed beyond 2^62.
  uint64_t elements = 1;
  bool has_zero = false;
  for (const json& dim : *shape) {
    std::optional<uint64_t> extent = as_unsigned(dim);
    if (!extent) fail(file, where + ": shape entries must be non-negative integers");
    if (*extent > (uint64_t(1) << 62))
      fail(file, where + ": a dimension of " + std::to_string(*extent) + " is absurd");
    entry.shape.push_back(int64_t(*extent));
    if (*extent == 0)
      has_zero = true;
    else if (!has_zero && elements > (uint64_t(1) << 62) / *extent)
      fail(file, where + ": shape " + shape_to_string(entry.shape) + " has too many elements");
    else if (!has_zero)
      elements *= *extent;
  }
  if (has_zero) elements = 0;

  auto offsets = info.find("data_offsets");
  if (offsets == info.end() || !offsets->is_array() || offsets->size() != 2)
    fail(file, where + ": no \"data_offsets\" pair [begin, end]");
  std::optional<uint64_t> begin = as_unsigned((*offsets)[0]), end = as_unsigned((*offsets)[1]);
  if (!begin || !end) fail(file, where + ": data offsets must be non-negative integers");
  if (*begin > *end)
    fail(file, where + ": data offsets [" + std::to_string(*begin) + ", " + std::to_string(*end) +
                   "] are reversed");
  if (*end > data_size)
    fail(file, where + ": data offsets end at byte " + std::to_string(*end) + " but the data holds only " +
                   std::to_string(data_size) + " bytes (truncated file?)");
  // elements <= 2^62 and element_bytes <= 8: compare without overflow.
  if (elements > (*end - *begin) / element_bytes || elements * element_bytes != *end - *begin)
    fail(file, where + ": " + entry.dtype + " " + shape_to_string(entry.shape) + " needs " +
                   (elements > data_size ? std::string("more bytes than the file has")
                                         : std::to_string(elements * element_bytes) + " bytes") +
                   " but its data offsets span " + std::to_string(*end - *begin));
  entry.begin = *begin;
  entry.end = *end;
  return entry;
}

}  // namespace

SafetensorsFile::SafetensorsFile(std::string name, std::shared_ptr<const Bytes> bytes)
    : name_(std::move(name)), bytes_(std::move(bytes)) {
  const unsigned char* file = bytes_->data;
  const uint64_t size = bytes_->size;
  if (size < 8) fail(name_, "too short for a safetensors file (" + std::to_string(size) + " bytes)");
  const uint64_t header_bytes = read_u64_le(file);
  if (header_bytes > kMaxHeaderBytes)
    fail(name_, "header length " + std::to_string(header_bytes) +
                    " exceeds the 100 MiB limit (not a safetensors file?)");
  if (header_bytes > size - 8)
    fail(name_, "header length " + std::to_string(header_bytes) + " runs past the end of the file (" +
                    std::to_string(size) + " bytes)");
  std::string_view header(reinterpret_cast<const char*>(file + 8), header_bytes);
  if (header.empty() || header.front() != '{') fail(name_, "header does not start with '{'");
  check_nesting(header, name_);

  // Duplicate tensor names are refused: JSON parsers disagree on which one wins.
  std::set<std::string> names;
  std::string duplicate;
  auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && !names.insert(parsed.get<std::string>()).second)
      duplicate = parsed.get<std::string>();
    return true;
  };
  json root;
  try {
    root = json::parse(header, on_event);
  } catch (const json::exception& e) {
    fail(name_, std::string("header is not valid JSON: ") + e.what());
  }
  if (!duplicate.empty()) fail(name_, "tensor '" + duplicate + "' appears twice in the header");
  if (!root.is_object()) fail(name_, "header is not a JSON object");

  const uint64_t data_size = size - 8 - header_bytes;
  data_ = file + 8 + header_bytes;
  for (auto item = root.begin(); item != root.end(); ++item) {
    if (item.key() == "__metadata__") {
      if (!item->is_object()) fail(name_, "__metadata__ is not a JSON object");
      for (auto field = item->begin(); field != item->end(); ++field) {
        if (!field->is_string()) fail(name_, "__metadata__ value '" + field.key() + "' is not a string");
        metadata_[field.key()] = field->get<std::string>();
      }
      continue;
    }
    entries_.push_back(parse_entry(name_, item.key(), *item, data_size));
  }
  // The data must be covered exactly: no two tensors share bytes and no byte is unaccounted for.
  std::sort(entries_.begin(), entries_.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  for (size_t i = 0; i < entries_.size(); ++i) {
    const SafetensorsEntry& e = entries_[i];
    if (e.begin < covered)
      fail(name_, "tensors '" + entries_[i - 1].name + "' and '" + e.name + "' overlap in the data");
    if (e.begin > covered)
      fail(name_, "bytes " + std::to_string(covered) + " to " + std::to_string(e.begin) +
                      " of the data belong to no tensor");
    covered = e.end;
  }
  if (covered != data_size)
    fail(name_, "the data has " + std::to_string(data_size - covered) + " bytes after the last tensor");
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;
SafetensorsFile::~SafetensorsFile() = default;

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open (") + std::strerror(errno) + ")");
  struct stat info {};
  if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  auto bytes = std::make_shared<Bytes>();
  bytes->size = size_t(info.st_size);
  if (bytes->size > 0) {
    void* mapping = mmap(nullptr, bytes->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapping == MAP_FAILED) {
      int error = errno;
      ::close(fd);
      fail(path, std::string("cannot map (") + std::strerror(error) + ")");
    }
    bytes->mapping = mapping;
    bytes->data = static_cast<const unsigned char*>(mapping);
  }
  ::close(fd);
  return SafetensorsFile(path, std::move(bytes));
}

SafetensorsFile SafetensorsFile::parse(const void* data, size_t size, const std::string& name) {
  auto bytes = std::make_shared<Bytes>();
  const auto* begin = static_cast<const unsigned char*>(data);
  bytes->copy.assign(begin, begin + size);
  bytes->data = bytes->copy.data();
  bytes->size = size;
  return SafetensorsFile(name, std::move(bytes));
}

const SafetensorsEntry* SafetensorsFile::find(std::string_view tensor_name) const {
  for (const SafetensorsEntry& e : entries_)
    if (e.name == tensor_name) return &e;
  return nullptr;
}

Tensor SafetensorsFile::read_f32(std::string_view tensor_name) const {
  const SafetensorsEntry* entry = find(tensor_name);
  if (!entry) fail(name_, "no tensor '" + std::string(tensor_name) + "'");
  return read_f32(*entry);
}

Tensor SafetensorsFile::read_f32(const SafetensorsEntry& entry) const {
  Tensor out(DType::f32, entry.shape);
  float* dst = out.data<float>();
  const unsigned char* src = data_ + entry.begin;
  const int64_t n = out.numel();
  // The data is not aligned in general: every element goes through memcpy.
  if (entry.dtype == "F32") {
    std::memcpy(dst, src, size_t(n) * 4);
  } else if (entry.dtype == "F16" || entry.dtype == "BF16") {
    const bool is_bf16 = entry.dtype == "BF16";
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      dst[i] = is_bf16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
  } else {
    fail(name_, "tensor '" + entry.name + "' has dtype " + entry.dtype +
                    "; only F32, F16 and BF16 can be read as floats");
  }
  return out;
}

}  // namespace tessera
