// NumPy .npy reader and writer: a strict parser of the header's Python-literal dict that checks
// every length against the bytes present before allocating, and a version 1.0/2.0 writer.
#include "tessera/npy.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string_view>

namespace tessera {

static_assert(std::endian::native == std::endian::little, "the .npy reader copies little-endian data as is");

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicBytes = 6;
// numpy's own reader refuses headers above 10000 bytes by default; we allow more (long shapes)
// but bound it so a corrupt length cannot make us read or allocate gigabytes.
constexpr size_t kMaxHeaderBytes = size_t(1) << 20;

[[noreturn]] void fail(const std::string& source, const std::string& message) {
  throw Error(source + ": " + message);
}

struct Preamble {
  size_t header_start = 0;  // offset of the dict text
  size_t header_length = 0;
};

// The magic, version and header length. `available` is how many bytes `bytes` holds.
Preamble parse_preamble(const unsigned char* bytes, size_t available, const std::string& source) {
  size_t compared = std::min(available, kMagicBytes);
  if (compared > 0 && std::memcmp(bytes, kMagic, compared) != 0)
    fail(source, "not a .npy file (bad magic bytes)");
  if (available < kMagicBytes + 2)
    fail(source, "truncated .npy file (" + std::to_string(available) + " bytes, no complete preamble)");
  int major = bytes[6], minor = bytes[7];
  Preamble preamble;
  if (major == 1 && minor == 0) {
    preamble.header_start = 10;
  } else if ((major == 2 || major == 3) && minor == 0) {
    preamble.header_start = 12;
  } else {
    fail(source, "unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                     " (supported: 1.0, 2.0, 3.0)");
  }
  if (available < preamble.header_start) fail(source, "truncated .npy file (header length cut off)");
  if (major == 1) {
    preamble.header_length = size_t(bytes[8]) | size_t(bytes[9]) << 8;
  } else {
    preamble.header_length =
        size_t(bytes[8]) | size_t(bytes[9]) << 8 | size_t(bytes[10]) << 16 | size_t(bytes[11]) << 24;
  }
  if (preamble.header_length > kMaxHeaderBytes)
    fail(source, "header length " + std::to_string(preamble.header_length) +
                     " bytes is larger than the limit of " + std::to_string(kMaxHeaderBytes));
  return preamble;
}

struct Header {
  DType dtype = DType::f32;
  Shape shape;
};

DType dtype_from_descr(const std::string& descr, const std::string& source) {
  if (descr.size() != 3) fail(source, "unsupported dtype '" + descr + "'");
  char order = descr[0];
  std::string type = descr.substr(1);
  bool single_byte = type == "b1" || type == "u1" || type == "i1";
  if (order != '<' && order != '|' && order != '>' && order != '=')
    fail(source, "unsupported dtype '" + descr + "'");
  if (!single_byte) {
    if (order == '>')
      fail(source, "big-endian dtype '" + descr + "' is not supported; save it as '<" + type + "'");
    if (order == '|') fail(source, "dtype '" + descr + "' needs a byte order");
  }
  if (type == "f4") return DType::f32;
  if (type == "f2") return DType::f16;
  if (type == "i4") return DType::i32;
  if (type == "i8") return DType::i64;
  if (type == "b1") return DType::boolean;
  if (type == "u1") return DType::u8;
  if (type == "i1") return DType::i8;
  fail(source, "unsupported dtype '" + descr +
                   "' (supported: f4, f2, i4, i8, b1, u1, i1; cast float64 arrays to float32)");
}

// A recursive-descent reader for the only dict numpy writes:
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& source) : text_(text), source_(source) {}

  Header parse() {
    for (unsigned char c : text_) {
      if (c < 0x20 && c != '\n' && c != '\r' && c != '\t')
        error("header contains a control byte " + std::to_string(int(c)));
    }
    bool have_descr = false, have_order = false, have_shape = false, fortran_order = false;
    Header header;
    skip_space();
    expect('{', "header does not start with '{'");
    skip_space();
    while (!at('}')) {
      std::string key = parse_string("a dict key");
      skip_space();
      expect(':', "expected ':' after key '" + key + "'");
      skip_space();
      if (key == "descr") {
        if (have_descr) error("duplicate key 'descr'");
        have_descr = true;
        if (at('[')) error("structured dtypes are not supported");
        header.dtype = dtype_from_descr(parse_string("the 'descr' value"), source_);
      } else if (key == "fortran_order") {
        if (have_order) error("duplicate key 'fortran_order'");
        have_order = true;
        fortran_order = parse_bool();
      } else if (key == "shape") {
        if (have_shape) error("duplicate key 'shape'");
        have_shape = true;
        header.shape = parse_shape();
      } else {
        error("unexpected key '" + key + "' in header");
      }
      skip_space();
      if (at(',')) {
        ++position_;
        skip_space();
      } else if (!at('}')) {
        error("expected ',' or '}' in header dict");
      }
    }
    ++position_;  // '}'
    skip_space();
    if (position_ != text_.size()) error("unexpected text after the header dict");
    if (!have_descr || !have_order || !have_shape)
      fail(source_, "malformed header: it lacks one of the keys 'descr', 'fortran_order', 'shape'");
    if (fortran_order)
      fail(source_, "fortran_order=True arrays are not supported; save np.ascontiguousarray(a) instead");
    return header;
  }

 private:
  [[noreturn]] void error(const std::string& message) {
    fail(source_, "malformed header: " + message + " (at offset " + std::to_string(position_) + ")");
  }
  bool at(char c) const { return position_ < text_.size() && text_[position_] == c; }
  void expect(char c, const std::string& message) {
    if (!at(c)) error(message);
    ++position_;
  }
  void skip_space() {
    while (position_ < text_.size() && (text_[position_] == ' ' || text_[position_] == '\n' ||
                                        text_[position_] == '\r' || text_[position_] == '\t'))
      ++position_;
  }
  bool starts_with(std::string_view word) const { return text_.substr(position_).starts_with(word); }

  std::string parse_string(const std::string& what) {
    if (!at('\'') && !at('"')) error("expected a quoted string for " + what);
    char quote = text_[position_++];
    size_t start = position_;
    while (position_ < text_.size() && text_[position_] != quote) {
      if (text_[position_] == '\\') error("escapes in strings are not supported");
      ++position_;
    }
    if (position_ >= text_.size()) error("unterminated string");
    std::string value(text_.substr(start, position_ - start));
    ++position_;
    return value;
  }

  bool parse_bool() {
    if (starts_with("True")) {
      position_ += 4;
      return true;
    }
    if (starts_with("False")) {
      position_ += 5;
      return false;
    }
    error("expected True or False for 'fortran_order'");
  }

  int64_t parse_dimension() {
    if (at('-')) error("negative dimension in shape");
    if (position_ >= text_.size() || text_[position_] < '0' || text_[position_] > '9')
      error("shape entries must be non-negative integers");
    int64_t value = 0;
    while (position_ < text_.size() && text_[position_] >= '0' && text_[position_] <= '9') {
      int digit = text_[position_] - '0';
      if (value > (std::numeric_limits<int64_t>::max() - digit) / 10)
        error("dimension does not fit in 64 bits");
      value = value * 10 + digit;
      ++position_;
    }
    if (at('L')) ++position_;  // Python 2 long literal, written by old numpy versions
    return value;
  }

  Shape parse_shape() {
    expect('(', "'shape' must be a tuple");
    Shape shape;
    skip_space();
    bool trailing_comma = false;
    while (!at(')')) {
      shape.push_back(parse_dimension());
      skip_space();
      trailing_comma = false;
      if (at(',')) {
        ++position_;
        trailing_comma = true;
        skip_space();
      } else if (!at(')')) {
        error("expected ',' or ')' in shape");
      }
    }
    ++position_;
    // "(3)" is the integer 3 in Python, not a tuple.
    if (shape.size() == 1 && !trailing_comma)
      error("'shape' must be a tuple (one entry needs a trailing comma)");
    return shape;
  }

  std::string_view text_;
  const std::string& source_;
  size_t position_ = 0;
};

// The number of data bytes the header promises; throws unless exactly `available` bytes follow.
size_t checked_data_bytes(const Header& header, size_t available, const std::string& source) {
  int64_t count = 1;
  size_t element_bytes = dtype_size(header.dtype);
  for (int64_t d : header.shape) {
    if (d != 0 && count > std::numeric_limits<int64_t>::max() / d)
      fail(source, "shape " + shape_to_string(header.shape) + " has too many elements");
    count *= d;
  }
  if (uint64_t(count) > available / element_bytes)
    fail(source, "truncated data: shape " + shape_to_string(header.shape) + " of " +
                     dtype_name(header.dtype) + " needs more than the " + std::to_string(available) +
                     " bytes present");
  size_t bytes = size_t(count) * element_bytes;
  if (bytes != available)
    fail(source, "data length mismatch: shape " + shape_to_string(header.shape) + " of " +
                     dtype_name(header.dtype) + " needs " + std::to_string(bytes) + " bytes but " +
                     std::to_string(available) + " are present");
  return bytes;
}

Header parse_header(const unsigned char* bytes, const Preamble& preamble, const std::string& source) {
  std::string_view text(reinterpret_cast<const char*>(bytes) + preamble.header_start, preamble.header_length);
  return HeaderParser(text, source).parse();
}

void normalize_booleans(Tensor& tensor) {
  if (tensor.dtype() != DType::boolean) return;
  uint8_t* values = tensor.data<uint8_t>();
  for (int64_t i = 0; i < tensor.numel(); ++i) values[i] = values[i] != 0;
}

const char* numpy_descr(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "<f4";
    case DType::f16:
      return "<f2";
    case DType::i32:
      return "<i4";
    case DType::i64:
      return "<i8";
    case DType::boolean:
      return "|b1";
    case DType::u8:
      return "|u1";
    case DType::i8:
      return "|i1";
    case DType::bf16:
      break;
  }
  throw Error("bf16 tensors have no NumPy dtype; cast to f32 before writing .npy");
}

// Preamble plus padded header; the data starts at a multiple of 64 bytes as numpy does.
std::string encode_header(const Tensor& tensor) {
  std::string dict =
      std::string("{'descr': '") + numpy_descr(tensor.dtype()) + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < tensor.shape().size(); ++i)
    dict += (i ? ", " : "") + std::to_string(tensor.shape()[i]);
  dict += tensor.shape().size() == 1 ? ",), }" : "), }";
  auto padded = [&](size_t preamble_bytes) {
    size_t total = preamble_bytes + dict.size() + 1;
    return (total + 63) / 64 * 64 - preamble_bytes;
  };
  size_t header_length = padded(10);
  bool version2 = header_length > 0xffff;
  if (version2) header_length = padded(12);
  TESSERA_CHECK(header_length <= 0xffffffffu, "shape is too long for a .npy header");
  std::string out(kMagic, kMagicBytes);
  out += char(version2 ? 2 : 1);
  out += char(0);
  for (int i = 0; i < (version2 ? 4 : 2); ++i) out += char((header_length >> (8 * i)) & 0xff);
  out += dict;
  out.append(header_length - dict.size() - 1, ' ');
  out += '\n';
  return out;
}

}  // namespace

Tensor parse_npy(const void* data, size_t size) {
  const std::string source = "npy data";
  if (data == nullptr && size != 0) fail(source, "null buffer");
  const auto* bytes = static_cast<const unsigned char*>(data);
  Preamble preamble = parse_preamble(bytes, size, source);
  if (preamble.header_length > size - preamble.header_start)
    fail(source, "truncated header (" + std::to_string(preamble.header_length) + " bytes announced, " +
                     std::to_string(size - preamble.header_start) + " present)");
  Header header = parse_header(bytes, preamble, source);
  size_t data_start = preamble.header_start + preamble.header_length;
  size_t data_bytes = checked_data_bytes(header, size - data_start, source);
  Tensor tensor(header.dtype, header.shape);
  if (data_bytes) std::memcpy(tensor.raw_data(), bytes + data_start, data_bytes);
  normalize_booleans(tensor);
  return tensor;
}

Tensor read_npy(const std::string& path) {
  const std::string source = "npy file '" + path + "'";
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) fail(source, "is a directory");
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) fail(source, "cannot open for reading");
  std::streamoff end = file.tellg();
  if (end < 0) fail(source, "cannot determine the file size");
  size_t file_size = size_t(end);
  file.seekg(0);

  // Read the preamble and header first so that the data length is checked before allocating.
  unsigned char preamble_bytes[12] = {};
  size_t preamble_read = std::min<size_t>(file_size, sizeof(preamble_bytes));
  if (!file.read(reinterpret_cast<char*>(preamble_bytes), std::streamsize(preamble_read)))
    fail(source, "read error");
  Preamble preamble = parse_preamble(preamble_bytes, preamble_read, source);
  if (preamble.header_length > file_size - preamble.header_start)
    fail(source, "truncated header (" + std::to_string(preamble.header_length) + " bytes announced, " +
                     std::to_string(file_size - preamble.header_start) + " present)");
  std::string head(preamble.header_start + preamble.header_length, '\0');
  file.seekg(0);
  if (!file.read(head.data(), std::streamsize(head.size()))) fail(source, "read error in header");
  Header header = parse_header(reinterpret_cast<const unsigned char*>(head.data()), preamble, source);
  size_t data_bytes = checked_data_bytes(header, file_size - head.size(), source);

  Tensor tensor(header.dtype, header.shape);
  if (data_bytes && !file.read(static_cast<char*>(tensor.raw_data()), std::streamsize(data_bytes)))
    fail(source, "read error in data");
  normalize_booleans(tensor);
  return tensor;
}

std::string encode_npy(const Tensor& tensor) {
  TESSERA_CHECK(tensor.defined(), "cannot encode an undefined tensor as .npy");
  std::string out = encode_header(tensor);
  Tensor contiguous = tensor.is_contiguous() ? tensor : tensor.clone();
  out.append(static_cast<const char*>(contiguous.raw_data()), contiguous.nbytes());
  return out;
}

void write_npy(const std::string& path, const Tensor& tensor) {
  TESSERA_CHECK(tensor.defined(), "cannot write an undefined tensor to '" + path + "'");
  std::string header = encode_header(tensor);
  Tensor contiguous = tensor.is_contiguous() ? tensor : tensor.clone();
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) throw Error("npy file '" + path + "': cannot open for writing");
  file.write(header.data(), std::streamsize(header.size()));
  file.write(static_cast<const char*>(contiguous.raw_data()), std::streamsize(contiguous.nbytes()));
  file.close();
  if (!file) throw Error("npy file '" + path + "': write failed");
}

}  // namespace tessera
