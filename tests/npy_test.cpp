// Tests of the .npy reader/writer: round trips, interoperability with NumPy itself (via
// /usr/bin/python3, skipped when absent) and a table of malformed files that must throw.
#include "tessera/npy.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace tessera {
namespace {

namespace fs = std::filesystem;

const DType kNumpyDTypes[] = {DType::f32,     DType::f16, DType::i32, DType::i64,
                              DType::boolean, DType::u8,  DType::i8};

// The value at flat index i of the test pattern, the same formula as in the Python snippets.
double pattern_value(DType dtype, int64_t i) {
  switch (dtype) {
    case DType::f32:
      return double(i) * 0.5 - 3.0;
    case DType::f16:
      return double(i % 64) * 0.25 - 4.0;
    case DType::i32:
      return double(i * 7919 - 100000);
    case DType::i64:
      return double(i * 1000003 - 5000000000LL);
    case DType::boolean:
      return i % 3 == 0 ? 1.0 : 0.0;
    case DType::u8:
      return double((i * 37) % 256);
    case DType::i8:
      return double((i * 37) % 256 - 128);
    case DType::bf16:
      break;
  }
  return 0;
}

Tensor pattern_tensor(DType dtype, const Shape& shape) {
  Tensor t(dtype, shape);
  for (int64_t i = 0; i < t.numel(); ++i) {
    double v = pattern_value(dtype, i);
    switch (dtype) {
      case DType::f32:
        t.data<float>()[i] = float(v);
        break;
      case DType::f16:
        t.data<uint16_t>()[i] = f32_to_f16(float(v));
        break;
      case DType::i32:
        t.data<int32_t>()[i] = int32_t(v);
        break;
      case DType::i64:
        t.data<int64_t>()[i] = int64_t(v);
        break;
      case DType::boolean:
        t.data<uint8_t>()[i] = uint8_t(v);
        break;
      case DType::u8:
        t.data<uint8_t>()[i] = uint8_t(v);
        break;
      case DType::i8:
        t.data<int8_t>()[i] = int8_t(v);
        break;
      case DType::bf16:
        break;
    }
  }
  return t;
}

void expect_same(const Tensor& actual, const Tensor& expected) {
  ASSERT_EQ(actual.dtype(), expected.dtype());
  ASSERT_EQ(actual.shape(), expected.shape());
  ASSERT_EQ(0, std::memcmp(actual.raw_data(), expected.raw_data(), expected.nbytes()))
      << dtype_name(expected.dtype()) << " " << shape_to_string(expected.shape());
}

const std::vector<Shape> kShapes = {{}, {0}, {1}, {7}, {2, 3}, {2, 0, 3}, {2, 3, 4, 5}, {1, 1, 1, 1, 1, 9}};

TEST(Npy, RoundTripInMemoryEveryDTypeAndShape) {
  for (DType dtype : kNumpyDTypes) {
    for (const Shape& shape : kShapes) {
      Tensor t = pattern_tensor(dtype, shape);
      std::string bytes = encode_npy(t);
      EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
      size_t header_length = uint8_t(bytes[8]) | size_t(uint8_t(bytes[9])) << 8;
      EXPECT_EQ((10 + header_length) % 64, 0u) << "data must start 64-byte aligned";
      EXPECT_EQ(bytes[10 + header_length - 1], '\n');
      expect_same(parse_npy(bytes.data(), bytes.size()), t);
    }
  }
}

class NpyFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = fs::temp_directory_path() / ("tessera_npy_test_" + std::to_string(::getpid()));
    fs::create_directories(directory_);
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(directory_, ignored);
  }
  std::string path(const std::string& name) const { return (directory_ / name).string(); }

  // Runs a Python snippet with /usr/bin/python3 (written to a file: no shell quoting).
  int run_python(const std::string& code) {
    std::string script = path("script.py");
    std::ofstream(script) << code;
    std::string command =
        "/usr/bin/python3 " + script + " " + directory_.string() + " >" + path("python.log") + " 2>&1";
    return std::system(command.c_str());
  }
  bool have_numpy() {
    if (!fs::exists("/usr/bin/python3")) return false;
    return std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0;
  }
  std::string python_log() {
    std::ifstream in(path("python.log"));
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  fs::path directory_;
};

TEST_F(NpyFiles, RoundTripThroughFiles) {
  for (DType dtype : kNumpyDTypes) {
    for (const Shape& shape : kShapes) {
      Tensor t = pattern_tensor(dtype, shape);
      write_npy(path("t.npy"), t);
      expect_same(read_npy(path("t.npy")), t);
    }
  }
}

TEST_F(NpyFiles, NonContiguousTensorIsWrittenInLogicalOrder) {
  Tensor t = pattern_tensor(DType::f32, {3, 4});
  Tensor transposed = t.strided_view({4, 3}, {1, 4});
  write_npy(path("t.npy"), transposed);
  Tensor back = read_npy(path("t.npy"));
  ASSERT_EQ(back.shape(), (Shape{4, 3}));
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(back.data<float>()[r * 3 + c], t.data<float>()[c * 4 + r]);
}

TEST_F(NpyFiles, VeryLongShapeUsesVersion2) {
  Shape shape(30000, 1);
  shape[5] = 3;
  Tensor t = pattern_tensor(DType::f32, shape);
  std::string bytes = encode_npy(t);
  EXPECT_EQ(bytes[6], 2);
  expect_same(parse_npy(bytes.data(), bytes.size()), t);
}

TEST(Npy, Bf16HasNoNumpyType) { EXPECT_THROW(encode_npy(Tensor(DType::bf16, {2})), Error); }

TEST(Npy, MissingFileThrows) {
  EXPECT_THROW(read_npy("/nonexistent/dir/x.npy"), Error);
  EXPECT_THROW(write_npy("/nonexistent/dir/x.npy", Tensor(DType::f32, {1})), Error);
}

TEST(Npy, BooleansAreNormalizedToZeroOrOne) {
  Tensor t(DType::u8, {3});
  t.data<uint8_t>()[0] = 0;
  t.data<uint8_t>()[1] = 1;
  t.data<uint8_t>()[2] = 7;
  std::string bytes = encode_npy(t);
  bytes.replace(bytes.find("|u1"), 3, "|b1");
  Tensor back = parse_npy(bytes.data(), bytes.size());
  ASSERT_EQ(back.dtype(), DType::boolean);
  EXPECT_EQ(back.data<uint8_t>()[2], 1);
}

// Python side of the interop tests: the same pattern formulas, dtypes by numpy name.
const char* kPythonPattern = R"(
import sys, os
import numpy as np
out = sys.argv[1]
def pattern(name, n):
    i = np.arange(n, dtype=np.int64)
    if name == 'f4': return (i * 0.5 - 3.0).astype('<f4')
    if name == 'f2': return ((i % 64) * 0.25 - 4.0).astype('<f2')
    if name == 'i4': return (i * 7919 - 100000).astype('<i4')
    if name == 'i8': return (i * 1000003 - 5000000000).astype('<i8')
    if name == 'b1': return (i % 3 == 0)
    if name == 'u1': return ((i * 37) % 256).astype(np.uint8)
    if name == 'i1': return ((i * 37) % 256 - 128).astype(np.int8)
shapes = [(), (0,), (1,), (7,), (2, 3), (2, 0, 3), (2, 3, 4, 5), (1, 1, 1, 1, 1, 9)]
names = ['f4', 'f2', 'i4', 'i8', 'b1', 'u1', 'i1']
)";

const char* numpy_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "f4";
    case DType::f16:
      return "f2";
    case DType::i32:
      return "i4";
    case DType::i64:
      return "i8";
    case DType::boolean:
      return "b1";
    case DType::u8:
      return "u1";
    case DType::i8:
      return "i1";
    case DType::bf16:
      break;
  }
  return "?";
}

TEST_F(NpyFiles, ReadsFilesWrittenByNumpy) {
  if (!have_numpy()) GTEST_SKIP() << "/usr/bin/python3 with numpy is not available";
  std::string code = std::string(kPythonPattern) + R"(
for name in names:
    for k, shape in enumerate(shapes):
        a = pattern(name, int(np.prod(shape))).reshape(shape)
        np.save(os.path.join(out, f'{name}_{k}.npy'), a)
        for version in [(1, 0), (2, 0), (3, 0)]:
            with open(os.path.join(out, f'{name}_{k}_v{version[0]}.npy'), 'wb') as f:
                np.lib.format.write_array(f, a, version=version)
# A non-contiguous array that numpy saves in C order.
np.save(os.path.join(out, 'sliced.npy'), np.arange(24, dtype='<f4').reshape(4, 6)[:, ::2])
)";
  ASSERT_EQ(run_python(code), 0) << python_log();
  for (DType dtype : kNumpyDTypes) {
    for (size_t k = 0; k < kShapes.size(); ++k) {
      Tensor expected = pattern_tensor(dtype, kShapes[k]);
      std::string stem = std::string(numpy_name(dtype)) + "_" + std::to_string(k);
      expect_same(read_npy(path(stem + ".npy")), expected);
      for (int version = 1; version <= 3; ++version)
        expect_same(read_npy(path(stem + "_v" + std::to_string(version) + ".npy")), expected);
    }
  }
  Tensor sliced = read_npy(path("sliced.npy"));
  ASSERT_EQ(sliced.shape(), (Shape{4, 3}));
  EXPECT_EQ(sliced.data<float>()[4], 8.f);  // row 1, column 1 -> element (1, 2) = 8
}

TEST_F(NpyFiles, NumpyReadsWhatWeWrite) {
  if (!have_numpy()) GTEST_SKIP() << "/usr/bin/python3 with numpy is not available";
  for (DType dtype : kNumpyDTypes)
    for (size_t k = 0; k < kShapes.size(); ++k)
      write_npy(path(std::string(numpy_name(dtype)) + "_" + std::to_string(k) + ".npy"),
                pattern_tensor(dtype, kShapes[k]));
  std::string code = std::string(kPythonPattern) + R"(
bad = 0
for name in names:
    for k, shape in enumerate(shapes):
        a = np.load(os.path.join(out, f'{name}_{k}.npy'), allow_pickle=False)
        want = pattern(name, int(np.prod(shape))).reshape(shape)
        if a.dtype != want.dtype or a.shape != want.shape or not np.array_equal(a, want):
            print('mismatch', name, shape, a.dtype, a.shape); bad += 1
sys.exit(1 if bad else 0)
)";
  EXPECT_EQ(run_python(code), 0) << python_log();
}

TEST_F(NpyFiles, NumpyFortranAndBigEndianFilesAreRejected) {
  if (!have_numpy()) GTEST_SKIP() << "/usr/bin/python3 with numpy is not available";
  std::string code = R"(
import sys, os
import numpy as np
out = sys.argv[1]
np.save(os.path.join(out, 'fortran.npy'), np.asfortranarray(np.ones((2, 3), dtype='<f4')))
np.save(os.path.join(out, 'big.npy'), np.ones((2, 3), dtype='>f4'))
np.save(os.path.join(out, 'f8.npy'), np.ones((2, 3)))
)";
  ASSERT_EQ(run_python(code), 0) << python_log();
  for (const char* name : {"fortran.npy", "big.npy", "f8.npy"})
    EXPECT_THROW(read_npy(path(name)), Error) << name;
}

// A version `major` file with the given header dict (padded as numpy pads) and data bytes.
std::string make_npy(const std::string& dict, size_t data_bytes, int major = 1) {
  size_t preamble = major == 1 ? 10 : 12;
  size_t padded = (preamble + dict.size() + 1 + 63) / 64 * 64 - preamble;
  std::string header = dict + std::string(padded - dict.size() - 1, ' ') + "\n";
  std::string out("\x93NUMPY", 6);
  out += char(major);
  out += char(0);
  for (size_t i = 0; i < preamble - 8; ++i) out += char((header.size() >> (8 * i)) & 0xff);
  return out + header + std::string(data_bytes, '\x01');
}

std::string dict_with(const std::string& descr, const std::string& order, const std::string& shape) {
  return "{'descr': " + descr + ", 'fortran_order': " + order + ", 'shape': " + shape + ", }";
}

struct MalformedCase {
  const char* name;
  std::string bytes;
};

std::vector<MalformedCase> malformed_cases() {
  std::string good = make_npy(dict_with("'<f4'", "False", "(2, 3)"), 24);
  std::string header_length_huge_v2 = make_npy(dict_with("'<f4'", "False", "(1,)"), 4, 2);
  header_length_huge_v2[8] = header_length_huge_v2[9] = header_length_huge_v2[10] =
      header_length_huge_v2[11] = char(0xff);
  std::string header_length_past_end = good.substr(0, 10) + good.substr(10, 20);
  std::string with_nul = good;
  with_nul[20] = '\0';
  std::string bad_version = good;
  bad_version[6] = 4;
  std::string minor_version = good;
  minor_version[7] = 1;
  return {
      {"empty", ""},
      {"magic only", std::string("\x93NUM", 4)},
      {"bad magic", "\x93NUMPX" + good.substr(6)},
      {"text file", "hello world, this is not an array at all......"},
      {"no header length", good.substr(0, 9)},
      {"version 4.0", bad_version},
      {"version 1.1", minor_version},
      {"header cut off", good.substr(0, 40)},
      {"header length past end", header_length_past_end},
      {"header length 4 GiB", header_length_huge_v2},
      {"NUL in header", with_nul},
      {"not a dict", make_npy("['<f4', False, (2, 3)]", 24)},
      {"unclosed dict", make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ", 24)},
      {"text after dict", make_npy(dict_with("'<f4'", "False", "(2, 3)") + " x", 24)},
      {"missing shape", make_npy("{'descr': '<f4', 'fortran_order': False}", 24)},
      {"missing descr", make_npy("{'fortran_order': False, 'shape': (6,)}", 24)},
      {"unknown key", make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': 1}", 24)},
      {"duplicate key",
       make_npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", 24)},
      {"no colon", make_npy("{'descr' '<f4', 'fortran_order': False, 'shape': (6,)}", 24)},
      {"unterminated string", make_npy("{'descr': '<f4, 'fortran_order': False, 'shape': (6,)}", 24)},
      {"unquoted key", make_npy("{descr: '<f4', 'fortran_order': False, 'shape': (6,)}", 24)},
      {"escape in string", make_npy(dict_with("'<f\\x34'", "False", "(6,)"), 24)},
      {"structured dtype", make_npy(dict_with("[('a', '<f4')]", "False", "(6,)"), 24)},
      {"big-endian f4", make_npy(dict_with("'>f4'", "False", "(2, 3)"), 24)},
      {"big-endian i8", make_npy(dict_with("'>i8'", "False", "(3,)"), 24)},
      {"no byte order f4", make_npy(dict_with("'|f4'", "False", "(2, 3)"), 24)},
      {"float64", make_npy(dict_with("'<f8'", "False", "(3,)"), 24)},
      {"unicode dtype", make_npy(dict_with("'<U4'", "False", "(6,)"), 96)},
      {"object dtype", make_npy(dict_with("'|O'", "False", "(3,)"), 24)},
      {"empty descr", make_npy(dict_with("''", "False", "(3,)"), 24)},
      {"fortran order", make_npy(dict_with("'<f4'", "True", "(2, 3)"), 24)},
      {"fortran order not bool", make_npy(dict_with("'<f4'", "0", "(2, 3)"), 24)},
      {"too little data", make_npy(dict_with("'<f4'", "False", "(2, 3)"), 23)},
      {"too much data", make_npy(dict_with("'<f4'", "False", "(2, 3)"), 28)},
      {"no data", make_npy(dict_with("'<f4'", "False", "(2, 3)"), 0)},
      {"scalar without data", make_npy(dict_with("'<i8'", "False", "()"), 0)},
      {"negative dim", make_npy(dict_with("'<f4'", "False", "(-1, 6)"), 24)},
      {"huge dims overflowing", make_npy(dict_with("'<f4'", "False", "(4611686018427387904, 4)"), 24)},
      {"huge product", make_npy(dict_with("'<f4'", "False", "(3037000500, 3037000500)"), 24)},
      {"huge single dim", make_npy(dict_with("'<f4'", "False", "(1000000000000,)"), 24)},
      {"huge bytes", make_npy(dict_with("'<i8'", "False", "(2305843009213693952,)"), 24)},
      {"dim past int64", make_npy(dict_with("'<f4'", "False", "(99999999999999999999,)"), 24)},
      {"float dim", make_npy(dict_with("'<f4'", "False", "(3.5,)"), 24)},
      {"string dim", make_npy(dict_with("'<f4'", "False", "('a',)"), 24)},
      {"empty dim", make_npy(dict_with("'<f4'", "False", "(2, , 3)"), 24)},
      {"nested tuple", make_npy(dict_with("'<f4'", "False", "((2, 3),)"), 24)},
      {"shape is a list", make_npy(dict_with("'<f4'", "False", "[2, 3]"), 24)},
      {"shape is an int", make_npy(dict_with("'<f4'", "False", "6"), 24)},
      {"shape parenthesized int", make_npy(dict_with("'<f4'", "False", "(6)"), 24)},
      {"unclosed shape", make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3", 24)},
  };
}

TEST(Npy, MalformedInputsThrowError) {
  for (const MalformedCase& c : malformed_cases()) {
    try {
      parse_npy(c.bytes.data(), c.bytes.size());
      ADD_FAILURE() << c.name << ": no error";
    } catch (const Error& e) {
      EXPECT_FALSE(std::string(e.what()).empty()) << c.name;
    } catch (const std::exception& e) {
      ADD_FAILURE() << c.name << ": threw a non-tessera exception: " << e.what();
    }
  }
}

TEST_F(NpyFiles, MalformedFilesThrowError) {
  for (const MalformedCase& c : malformed_cases()) {
    std::ofstream(path("bad.npy"), std::ios::binary) << c.bytes;
    EXPECT_THROW(read_npy(path("bad.npy")), Error) << c.name;
  }
}

TEST(Npy, ErrorMessagesNameTheProblem) {
  auto message = [](const std::string& bytes) {
    try {
      parse_npy(bytes.data(), bytes.size());
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(make_npy(dict_with("'>f4'", "False", "(1,)"), 4)).find("big-endian"), std::string::npos);
  EXPECT_NE(message(make_npy(dict_with("'<f4'", "True", "(1,)"), 4)).find("fortran_order"),
            std::string::npos);
  EXPECT_NE(message(make_npy(dict_with("'<f4'", "False", "(2,)"), 4)).find("truncated data"),
            std::string::npos);
  EXPECT_NE(message(make_npy(dict_with("'<f4'", "False", "(-2,)"), 8)).find("negative"), std::string::npos);
}

TEST(Npy, ValidHeaderVariantsAreAccepted) {
  // Double quotes, no trailing comma, no spaces, keys in another order, Python 2 long dims.
  const std::string dicts[] = {
      "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 3)}",
      "{'shape':(2,3),'fortran_order':False,'descr':'<f4'}",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }",
      "{'descr': '=f4', 'fortran_order': False, 'shape': ( 2 , 3 , ) }",
  };
  for (const std::string& dict : dicts) {
    std::string bytes = make_npy(dict, 24);
    Tensor t = parse_npy(bytes.data(), bytes.size());
    EXPECT_EQ(t.shape(), (Shape{2, 3})) << dict;
    EXPECT_EQ(t.dtype(), DType::f32) << dict;
  }
  for (const char* descr : {"'|u1'", "'<u1'", "'|i1'", "'|b1'"}) {
    std::string bytes = make_npy(dict_with(descr, "False", "(4,)"), 4);
    EXPECT_NO_THROW(parse_npy(bytes.data(), bytes.size())) << descr;
  }
}

// Every prefix of a valid file, and random byte mutations of it, either parse or throw Error.
TEST(Npy, TruncationsAndMutationsNeverCrash) {
  std::string good = encode_npy(pattern_tensor(DType::i32, {3, 5}));
  for (size_t n = 0; n < good.size(); ++n) {
    std::string prefix = good.substr(0, n);
    EXPECT_THROW(parse_npy(prefix.data(), prefix.size()), Error) << "prefix of " << n << " bytes";
  }
  std::mt19937 random(1234);
  const std::string interesting = "0123456789(),:'\" -{}TrueFals<>|fiub\x00\xff";
  for (int trial = 0; trial < 20000; ++trial) {
    std::string bytes = good;
    int edits = 1 + int(random() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t where = random() % bytes.size();
      switch (random() % 3) {
        case 0:
          bytes[where] = char(random());
          break;
        case 1:
          bytes[where] = interesting[random() % interesting.size()];
          break;
        case 2:
          bytes.erase(where, 1 + random() % 3);
          break;
      }
      if (bytes.empty()) break;
    }
    try {
      Tensor t = parse_npy(bytes.data(), bytes.size());
      EXPECT_LE(t.nbytes(), bytes.size());
    } catch (const Error&) {
    }
  }
}

}  // namespace
}  // namespace tessera
