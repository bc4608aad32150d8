// Parsing of NAME=VALUE command-line arguments into tensors and shapes.
#include <cmath>
#include <random>

#include "runtime/specialize.h"
#include "tessera/commands.h"
#include "tessera/error.h"
#include "tessera/npy.h"

namespace tessera::cli {

namespace {
std::pair<std::string, std::string> split_pair(const std::string& text, const char* what) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw Error(std::string("expected NAME=") + what + " but got '" + text + "'");
  return {text.substr(0, eq), text.substr(eq + 1)};
}
}  // namespace

std::map<std::string, Tensor> read_named_inputs(const std::vector<std::string>& pairs) {
  std::map<std::string, Tensor> inputs;
  for (const auto& p : pairs) {
    auto [name, path] = split_pair(p, "FILE.npy");
    try {
      inputs[name] = read_npy(path);
    } catch (const Error& e) {
      throw Error("input '" + name + "': " + e.what());
    }
  }
  return inputs;
}

std::map<std::string, Shape> parse_named_shapes(const std::vector<std::string>& pairs) {
  std::map<std::string, Shape> shapes;
  for (const auto& p : pairs) {
    auto [name, text] = split_pair(p, "DIMS (e.g. 1x3x224x224)");
    Shape shape;
    size_t start = 0;
    while (start <= text.size()) {
      size_t end = text.find_first_of("x,", start);
      std::string part = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
      if (part.empty() || part.find_first_not_of("0123456789") != std::string::npos || part.size() > 12)
        throw Error("bad shape '" + text + "' for '" + name + "'");
      shape.push_back(std::stoll(part));
      if (end == std::string::npos) break;
      start = end + 1;
    }
    shapes[name] = shape;
  }
  return shapes;
}

std::pair<std::map<std::string, Tensor>, std::map<std::string, Shape>> timing_inputs(
    const Graph& graph, const std::vector<std::string>& input_pairs,
    const std::vector<std::string>& shape_pairs) {
  auto inputs = read_named_inputs(input_pairs);
  std::map<std::string, Shape> given = parse_named_shapes(shape_pairs);
  for (const auto& [name, t] : inputs) given[name] = t.shape();
  auto shapes = default_input_shapes(graph, given);
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> uniform(0.f, 1.f);
  for (int id : graph.inputs) {
    const Value& v = graph.values[size_t(id)];
    if (inputs.count(v.name)) continue;
    Tensor t(DType::f32, shapes[v.name]);
    float* data = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) data[i] = uniform(rng);
    if (!dtype_is_float(v.dtype))
      for (int64_t i = 0; i < t.numel(); ++i) data[i] = std::floor(data[i] * 2);
    inputs[v.name] = t.cast(v.dtype);
  }
  return {inputs, shapes};
}

}  // namespace tessera::cli
