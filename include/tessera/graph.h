// The graph IR: values (named, typed, possibly symbolic shapes, possibly constant) and nodes
// (ONNX-style op type + attributes) in topological order. Frontends build it; passes rewrite it.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tessera/tensor.h"

namespace tessera {

struct Attribute {
  enum class Kind { integer, floating, string, tensor, integers, floats, strings, graph };
  Kind kind = Kind::integer;
  int64_t i = 0;
  float f = 0.f;
  std::string s;
  Tensor t;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  std::vector<std::string> strings;
};

class Attributes {
 public:
  bool has(const std::string& name) const { return map_.count(name) != 0; }
  void set(const std::string& name, Attribute a) { map_[name] = std::move(a); }
  void set_int(const std::string& name, int64_t v);
  void set_float(const std::string& name, float v);
  void set_string(const std::string& name, std::string v);
  void set_ints(const std::string& name, std::vector<int64_t> v);
  void erase(const std::string& name) { map_.erase(name); }
  int64_t get_int(const std::string& name, int64_t fallback) const;
  float get_float(const std::string& name, float fallback) const;
  std::string get_string(const std::string& name, const std::string& fallback) const;
  std::vector<int64_t> get_ints(const std::string& name, std::vector<int64_t> fallback = {}) const;
  std::vector<float> get_floats(const std::string& name, std::vector<float> fallback = {}) const;
  std::vector<std::string> get_strings(const std::string& name) const;
  const Tensor* get_tensor(const std::string& name) const;
  const std::map<std::string, Attribute>& all() const { return map_; }

 private:
  std::map<std::string, Attribute> map_;
};

// A dimension: known (value >= 0) or symbolic (value < 0, optional symbol name).
struct Dim {
  int64_t value = -1;
  std::string symbol;
  bool known() const { return value >= 0; }
};

struct Value {
  std::string name;
  DType dtype = DType::f32;
  bool has_type = false;   // dtype is meaningful
  bool has_shape = false;  // dims is meaningful (rank known)
  std::vector<Dim> dims;
  Tensor constant;  // defined for initializers and folded constants
  bool is_constant() const { return constant.defined(); }
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;  // "" for the default ONNX domain
  std::vector<int> inputs;   // value ids; -1 marks an absent optional input
  std::vector<int> outputs;  // value ids; -1 marks an absent optional output
  Attributes attributes;
};

class Graph {
 public:
  std::string name;
  int64_t opset = 13;
  std::vector<Value> values;
  std::vector<Node> nodes;
  std::vector<int> inputs;   // graph inputs that are not initializers
  std::vector<int> outputs;
  // The model's metadata_props (key -> value), as exporters leave notes for loaders: e.g.
  // scripts/export_gpt2_onnx.py stores GPT-2's config.json under "tessera.gpt2.config".
  std::map<std::string, std::string> metadata;

  int add_value(const std::string& name);
  int find_value(const std::string& name) const;  // -1 when absent
  int add_constant(const std::string& name, Tensor value);
  // Ids of the nodes that read each value.
  std::vector<std::vector<int>> consumers() const;
  // Index of the node producing each value, -1 for graph inputs / constants.
  std::vector<int> producers() const;
  // Reorders nodes topologically; throws on a cycle or a value read before it exists.
  void topological_sort();
  // Drops nodes whose outputs nobody reads (and that are not graph outputs).
  void remove_dead_nodes();
  // Renames every read of value `from` to value `to` (graph outputs included).
  void replace_uses(int from, int to);
  std::string unique_name(const std::string& base);

 private:
  std::map<std::string, int> index_;
};

}  // namespace tessera
