// Conformance runner over the ONNX backend node tests (Debian's libonnx-testdata): runs every
// test whose ops Tessera registers, compares with the expected outputs the ONNX project ships,
// and prints pass/fail/skip counts. Exit code 1 when a test fails that is not listed as expected.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "ops/operator.h"
#include "tessera/onnx.h"
#include "tessera/session.h"

namespace fs = std::filesystem;
using namespace tessera;

namespace {

struct Outcome {
  std::string status;  // passed, failed, skipped
  std::string detail;
};

// numpy.testing.assert_allclose with the ONNX backend test defaults (rtol 1e-3, atol 1e-7).
bool close_enough(const Tensor& actual, const Tensor& expected, std::string* why) {
  if (actual.shape() != expected.shape()) {
    *why = "shape " + shape_to_string(actual.shape()) + " != expected " + shape_to_string(expected.shape());
    return false;
  }
  if (actual.dtype() != expected.dtype()) {
    *why = std::string("dtype ") + dtype_name(actual.dtype()) + " != expected " + dtype_name(expected.dtype());
    return false;
  }
  bool is_float = dtype_is_float(expected.dtype());
  double rtol = expected.dtype() == DType::f32 ? 1e-3 : 1e-2, atol = expected.dtype() == DType::f32 ? 1e-7 : 1e-3;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    double a = actual.value_as_double(i), e = expected.value_as_double(i);
    if (is_float) {
      if (std::isnan(e) && std::isnan(a)) continue;
      if (std::isinf(e) && a == e) continue;
      if (!(std::fabs(a - e) <= atol + rtol * std::fabs(e))) {
        *why = "element " + std::to_string(i) + ": " + std::to_string(a) + " != expected " + std::to_string(e);
        return false;
      }
    } else if (a != e) {
      *why = "element " + std::to_string(i) + ": " + std::to_string(a) + " != expected " + std::to_string(e);
      return false;
    }
  }
  return true;
}

Outcome run_test(const fs::path& dir) {
  Graph graph;
  try {
    graph = load_onnx_model((dir / "model.onnx").string());
  } catch (const std::exception& e) {
    std::string msg = e.what();
    // Types Tessera does not hold (double, strings, ...) make the test out of scope.
    if (msg.find("unsupported tensor element type") != std::string::npos ||
        msg.find("is not a tensor") != std::string::npos || msg.find("opset") != std::string::npos ||
        msg.find("default operator set") != std::string::npos)
      return {"skipped", msg};
    return {"failed", "load: " + msg};
  }
  for (const Node& n : graph.nodes)
    if (!OperatorRegistry::instance().supports(n.op_type, n.domain))
      return {"skipped", "op " + n.op_type + " not supported"};
  std::vector<fs::path> sets;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_directory() && entry.path().filename().string().rfind("test_data_set_", 0) == 0)
      sets.push_back(entry.path());
  std::sort(sets.begin(), sets.end());
  try {
    Session session(graph, SessionOptions{1});
    for (const auto& set : sets) {
      std::map<std::string, Tensor> inputs;
      for (size_t i = 0; i < graph.inputs.size(); ++i) {
        fs::path file = set / ("input_" + std::to_string(i) + ".pb");
        if (!fs::exists(file)) continue;  // optional inputs left out
        inputs[graph.values[size_t(graph.inputs[i])].name] = load_onnx_tensor(file.string());
      }
      auto outputs = session.run(inputs);
      for (size_t o = 0; o < graph.outputs.size(); ++o) {
        fs::path file = set / ("output_" + std::to_string(o) + ".pb");
        if (!fs::exists(file)) continue;
        Tensor expected = load_onnx_tensor(file.string());
        const std::string& name = graph.values[size_t(graph.outputs[o])].name;
        std::string why;
        if (!close_enough(outputs.at(name), expected, &why))
          return {"failed", set.filename().string() + " output '" + name + "': " + why};
      }
    }
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (msg.find("unsupported tensor element type") != std::string::npos) return {"skipped", msg};
    return {"failed", msg};
  }
  return {"passed", ""};
}

std::set<std::string> read_expected_failures(const std::string& path) {
  std::set<std::string> names;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto hash = line.find('#');
    std::string name = line.substr(0, hash);
    name.erase(std::remove_if(name.begin(), name.end(), ::isspace), name.end());
    if (!name.empty()) names.insert(name);
  }
  return names;
}

}  // namespace

int main(int argc, char** argv) {
  std::string data_dir = "/usr/share/libonnx-testdata/data/node";
  std::string expected_path, json_path, filter;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--data" && i + 1 < argc) data_dir = argv[++i];
    else if (a == "--expected-failures" && i + 1 < argc) expected_path = argv[++i];
    else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (a == "--filter" && i + 1 < argc) filter = argv[++i];
    else if (a == "-v" || a == "--verbose") verbose = true;
    else {
      std::cerr << "usage: onnx_node_conformance [--data DIR] [--expected-failures FILE] [--json FILE] [--filter SUBSTRING] [-v]\n";
      return 2;
    }
  }
  if (!fs::is_directory(data_dir)) {
    std::cerr << "error: ONNX node test data not found at " << data_dir << " (install libonnx-testdata)\n";
    return 1;
  }
  std::set<std::string> expected_failures = expected_path.empty() ? std::set<std::string>{} : read_expected_failures(expected_path);
  std::vector<fs::path> tests;
  for (const auto& entry : fs::directory_iterator(data_dir))
    if (entry.is_directory() && entry.path().filename().string().find(filter) != std::string::npos) tests.push_back(entry.path());
  std::sort(tests.begin(), tests.end());
  int passed = 0, failed = 0, skipped = 0, unexpected = 0, fixed = 0;
  std::ofstream json;
  if (!json_path.empty()) json.open(json_path), json << "{\"tests\":[\n";
  bool first = true;
  for (const auto& t : tests) {
    std::string name = t.filename().string();
    Outcome o = run_test(t);
    bool expected_fail = expected_failures.count(name) != 0;
    if (o.status == "passed") {
      ++passed;
      if (expected_fail) ++fixed, std::cout << "FIXED (listed as expected failure) " << name << "\n";
    } else if (o.status == "failed") {
      ++failed;
      if (!expected_fail) ++unexpected;
      std::cout << (expected_fail ? "xfail " : "FAIL  ") << name << ": " << o.detail << "\n";
    } else {
      ++skipped;
      if (verbose) std::cout << "skip  " << name << ": " << o.detail << "\n";
    }
    if (json.is_open()) {
      std::string detail;
      for (char c : o.detail) detail += (c == '"' || c == '\\') ? ' ' : (static_cast<unsigned char>(c) < 0x20 ? ' ' : c);
      json << (first ? "" : ",\n") << "{\"name\":\"" << name << "\",\"status\":\"" << o.status << "\",\"detail\":\"" << detail << "\"}";
      first = false;
    }
  }
  if (json.is_open()) json << "\n],\"passed\":" << passed << ",\"failed\":" << failed << ",\"skipped\":" << skipped << "}\n";
  std::cout << "ONNX node conformance: " << tests.size() << " tests, " << passed << " passed, " << failed
            << " failed (" << unexpected << " unexpected), " << skipped << " skipped (unsupported op or type)\n";
  return unexpected == 0 ? 0 : 1;
}
