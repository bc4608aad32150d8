// The safetensors reader: dtype conversion against hand-encoded values, and every malformed
// header or layout refused with a message naming the problem.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "tessera/safetensors.h"
#include "test_support.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

std::string with_length_prefix(const std::string& header, const std::string& data) {
  std::string file(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) file[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return file + header + data;
}

SafetensorsFile parse(const std::string& bytes) {
  return SafetensorsFile::parse(bytes.data(), bytes.size(), "test.safetensors");
}

std::string f32_bytes(std::initializer_list<float> values) {
  std::string out;
  for (float v : values) out.append(reinterpret_cast<const char*>(&v), 4);
  return out;
}

std::string u16_bytes(std::initializer_list<uint16_t> values) {
  std::string out;
  for (uint16_t v : values) out.append(reinterpret_cast<const char*>(&v), 2);
  return out;
}

// Parsing `bytes` must throw tessera::Error whose message contains `expected`.
void expect_refused(const std::string& bytes, const std::string& expected) {
  try {
    parse(bytes);
    ADD_FAILURE() << "accepted; expected an error containing: " << expected;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).rfind("test.safetensors: ", 0), 0u) << e.what();
  }
}

void expect_header_refused(const std::string& header, const std::string& data, const std::string& expected) {
  SCOPED_TRACE(header);
  expect_refused(with_length_prefix(header, data), expected);
}

TEST(Safetensors, ReadsF32F16Bf16AndMetadata) {
  // F16 1.5 = 0x3E00, -0.25 = 0xB400; BF16 -2 = 0xC000, 3.140625 = 0x4049.
  const std::string data =
      f32_bytes({1.f, -2.5f, 3.f, 0.125f}) + u16_bytes({0x3E00, 0xB400}) + u16_bytes({0xC000, 0x4049});
  const std::string header = R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                             R"("b":{"dtype":"F16","shape":[2],"data_offsets":[16,20]},)"
                             R"("c":{"dtype":"BF16","shape":[1,2],"data_offsets":[20,24]},)"
                             R"("__metadata__":{"format":"pt"}}   )";
  SafetensorsFile file = parse(with_length_prefix(header, data));
  ASSERT_EQ(file.entries().size(), 3u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  Tensor a = file.read_f32("a");
  EXPECT_EQ(a.shape(), (Shape{2, 2}));
  EXPECT_EQ(a.data<float>()[1], -2.5f);
  EXPECT_EQ(a.data<float>()[3], 0.125f);
  Tensor b = file.read_f32("b");
  EXPECT_EQ(b.data<float>()[0], 1.5f);
  EXPECT_EQ(b.data<float>()[1], -0.25f);
  Tensor c = file.read_f32("c");
  EXPECT_EQ(c.shape(), (Shape{1, 2}));
  EXPECT_EQ(c.data<float>()[0], -2.f);
  EXPECT_EQ(c.data<float>()[1], 3.140625f);
}

TEST(Safetensors, ScalarsEmptyTensorsAndOtherDtypes) {
  const std::string data = f32_bytes({7.f}) + std::string(8, '\x01');
  const std::string header = R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
                             R"("empty":{"dtype":"F16","shape":[0,5],"data_offsets":[4,4]},)"
                             R"("ids":{"dtype":"I64","shape":[1],"data_offsets":[4,12]}})";
  SafetensorsFile file = parse(with_length_prefix(header, data));
  EXPECT_EQ(file.read_f32("s").data<float>()[0], 7.f);
  EXPECT_EQ(file.read_f32("empty").numel(), 0);
  EXPECT_THROW(file.read_f32("ids"), Error);  // not a float type
  EXPECT_THROW(file.read_f32("absent"), Error);
  ASSERT_NE(file.find("ids"), nullptr);
  EXPECT_EQ(file.find("ids")->dtype, "I64");
}

TEST(Safetensors, RefusesBadFraming) {
  expect_refused("", "too short");
  expect_refused(std::string("\x05\0\0\0\0\0\0", 7), "too short");
  expect_refused(with_length_prefix("{}", "").substr(0, 9), "runs past the end");
  std::string huge(8, '\0');
  huge[5] = '\x10';  // 2^44 bytes of header
  expect_refused(huge + "{}", "exceeds the 100 MiB limit");
  expect_refused(with_length_prefix("", ""), "does not start with '{'");
  expect_refused(with_length_prefix("[1]", ""), "does not start with '{'");
}

TEST(Safetensors, RefusesBadHeaders) {
  const std::string four = f32_bytes({1.f});
  expect_header_refused(R"({"a":)", four, "not valid JSON");
  expect_header_refused(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}} x)", four,
                        "not valid JSON");
  expect_header_refused(R"({"a":[1]})", four, "not a JSON object");
  expect_header_refused(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", four, "no \"dtype\"");
  expect_header_refused(R"({"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", four,
                        "unknown dtype \"F33\"");
  expect_header_refused(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", four, "no \"shape\"");
  expect_header_refused(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", four,
                        "non-negative integers");
  expect_header_refused(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", four,
                        "non-negative integers");
  expect_header_refused(R"({"a":{"dtype":"F32","shape":[1]}})", four, "data_offsets");
  expect_header_refused(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", four, "data_offsets");
  expect_header_refused(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", four, "reversed");
  expect_header_refused(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}})", four, "truncated file");
  expect_header_refused(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", four, "needs 8 bytes");
  expect_header_refused(R"({"a":{"dtype":"F32","shape":[1048576,1048576],"data_offsets":[0,4]}})", four,
                        "more bytes than the file has");
  expect_header_refused(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}})", four,
                        "too many elements");
  expect_header_refused(R"({"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", four, "empty name");
  expect_header_refused(
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
      four, "'a' appears twice");
  expect_header_refused(R"({"__metadata__":{"n":1}})", "", "is not a string");
  expect_header_refused(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":)" +
                            std::string(100, '[') + std::string(100, ']') + "}}",
                        four, "nested more than 32 levels");
}

TEST(Safetensors, RefusesOverlapsHolesAndTrailingBytes) {
  const std::string eight = f32_bytes({1.f, 2.f});
  expect_header_refused(
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
      eight, "overlap");
  expect_header_refused(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight, "bytes 0 to 4");
  expect_header_refused(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", eight,
                        "4 bytes after the last tensor");
}

TEST(Safetensors, OpensFilesAndNamesThemInErrors) {
  const fs::path dir = fs::temp_directory_path() / "tessera_safetensors_test";
  fs::create_directories(dir);
  const std::string path = (dir / "w.safetensors").string();
  {
    std::ofstream f(path, std::ios::binary);
    f << with_length_prefix(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})",
                            f32_bytes({1.f, 2.f, 3.f}));
  }
  SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.read_f32("w").data<float>()[2], 3.f);
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << with_length_prefix(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})", f32_bytes({1.f}));
  }
  try {
    SafetensorsFile::open(path);
    ADD_FAILURE() << "a truncated file was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_THROW(SafetensorsFile::open((dir / "missing.safetensors").string()), Error);
  EXPECT_THROW(SafetensorsFile::open(dir.string()), Error);  // a folder
  std::ofstream(path, std::ios::trunc).close();
  EXPECT_THROW(SafetensorsFile::open(path), Error);  // empty
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tessera
