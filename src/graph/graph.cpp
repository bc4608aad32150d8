// Graph IR helpers: value lookup, topological order, dead-node removal, attribute access.
#include "tessera/graph.h"

#include <algorithm>
#include <queue>

#include "tessera/error.h"

namespace tessera {

void Attributes::set_int(const std::string& name, int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::integer;
  a.i = v;
  map_[name] = a;
}
void Attributes::set_float(const std::string& name, float v) {
  Attribute a;
  a.kind = Attribute::Kind::floating;
  a.f = v;
  map_[name] = a;
}
void Attributes::set_string(const std::string& name, std::string v) {
  Attribute a;
  a.kind = Attribute::Kind::string;
  a.s = std::move(v);
  map_[name] = a;
}
void Attributes::set_ints(const std::string& name, std::vector<int64_t> v) {
  Attribute a;
  a.kind = Attribute::Kind::integers;
  a.ints = std::move(v);
  map_[name] = a;
}

int64_t Attributes::get_int(const std::string& name, int64_t fallback) const {
  auto it = map_.find(name);
  if (it == map_.end()) return fallback;
  if (it->second.kind == Attribute::Kind::floating) return int64_t(it->second.f);
  if (it->second.kind != Attribute::Kind::integer)
    throw Error("attribute '" + name + "' should be an integer but has another type");
  return it->second.i;
}
float Attributes::get_float(const std::string& name, float fallback) const {
  auto it = map_.find(name);
  if (it == map_.end()) return fallback;
  if (it->second.kind == Attribute::Kind::integer) return float(it->second.i);
  return it->second.f;
}
std::string Attributes::get_string(const std::string& name, const std::string& fallback) const {
  auto it = map_.find(name);
  return it == map_.end() ? fallback : it->second.s;
}
std::vector<int64_t> Attributes::get_ints(const std::string& name,
                                          std::vector<int64_t> fallback) const {
  auto it = map_.find(name);
  if (it == map_.end()) return fallback;
  if (it->second.kind == Attribute::Kind::integer) return {it->second.i};  // a lone int is a list of one
  if (it->second.kind != Attribute::Kind::integers)
    throw Error("attribute '" + name + "' should be a list of integers but has another type");
  return it->second.ints;
}
std::vector<float> Attributes::get_floats(const std::string& name,
                                          std::vector<float> fallback) const {
  auto it = map_.find(name);
  return it == map_.end() ? fallback : it->second.floats;
}
std::vector<std::string> Attributes::get_strings(const std::string& name) const {
  auto it = map_.find(name);
  return it == map_.end() ? std::vector<std::string>{} : it->second.strings;
}
const Tensor* Attributes::get_tensor(const std::string& name) const {
  auto it = map_.find(name);
  if (it == map_.end() || !it->second.t.defined()) return nullptr;
  return &it->second.t;
}

int Graph::add_value(const std::string& value_name) {
  auto it = index_.find(value_name);
  if (it != index_.end() && !value_name.empty()) return it->second;
  Value v;
  v.name = value_name;
  values.push_back(std::move(v));
  int id = int(values.size()) - 1;
  if (!value_name.empty()) index_[value_name] = id;
  return id;
}

int Graph::find_value(const std::string& value_name) const {
  auto it = index_.find(value_name);
  return it == index_.end() ? -1 : it->second;
}

int Graph::add_constant(const std::string& value_name, Tensor value) {
  int id = add_value(unique_name(value_name));
  Value& v = values[size_t(id)];
  v.dtype = value.dtype();
  v.has_type = true;
  v.has_shape = true;
  v.dims.clear();
  for (int64_t d : value.shape()) v.dims.push_back(Dim{d, ""});
  v.constant = std::move(value);
  return id;
}

std::string Graph::unique_name(const std::string& base) {
  if (index_.count(base) == 0) return base;
  for (int i = 1;; ++i) {
    std::string candidate = base + "_" + std::to_string(i);
    if (index_.count(candidate) == 0) return candidate;
  }
}

std::vector<std::vector<int>> Graph::consumers() const {
  std::vector<std::vector<int>> result(values.size());
  for (size_t n = 0; n < nodes.size(); ++n)
    for (int in : nodes[n].inputs)
      if (in >= 0) result[size_t(in)].push_back(int(n));
  return result;
}

std::vector<int> Graph::producers() const {
  std::vector<int> result(values.size(), -1);
  for (size_t n = 0; n < nodes.size(); ++n)
    for (int out : nodes[n].outputs)
      if (out >= 0) result[size_t(out)] = int(n);
  return result;
}

void Graph::topological_sort() {
  // Single assignment: each value has at most one producer, and no node overwrites a graph input
  // or a constant (the planner and the folding rely on it).
  std::vector<int> producer(values.size(), -1);
  for (size_t n = 0; n < nodes.size(); ++n) {
    for (int out : nodes[n].outputs) {
      if (out < 0) continue;
      const Value& v = values[size_t(out)];
      if (producer[size_t(out)] >= 0)
        throw Error("value '" + v.name + "' is produced by both node '" + nodes[size_t(producer[size_t(out)])].name +
                    "' and node '" + nodes[n].name + "'");
      if (v.is_constant() || std::find(inputs.begin(), inputs.end(), out) != inputs.end())
        throw Error("node '" + nodes[n].name + "' writes '" + v.name + "', which is a graph input or initializer");
      producer[size_t(out)] = int(n);
    }
  }
  for (int o : outputs) {
    if (producer[size_t(o)] < 0 && !values[size_t(o)].is_constant() &&
        std::find(inputs.begin(), inputs.end(), o) == inputs.end())
      throw Error("graph output '" + values[size_t(o)].name + "' is not produced by any node, input or initializer");
  }
  std::vector<int> pending(nodes.size(), 0);
  std::vector<std::vector<int>> dependents(nodes.size());
  for (size_t n = 0; n < nodes.size(); ++n) {
    for (int in : nodes[n].inputs) {
      if (in < 0) continue;
      int p = producer[size_t(in)];
      if (p >= 0) {
        pending[n]++;
        dependents[size_t(p)].push_back(int(n));
      } else if (!values[size_t(in)].is_constant() &&
                 std::find(inputs.begin(), inputs.end(), in) == inputs.end()) {
        throw Error("node '" + nodes[n].name + "' (" + nodes[n].op_type + ") reads value '" +
                    values[size_t(in)].name + "' that no node, input or initializer provides");
      }
    }
  }
  // Kahn's algorithm; a min-heap on the original index keeps the file's order where possible.
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
  for (size_t n = 0; n < nodes.size(); ++n)
    if (pending[n] == 0) ready.push(int(n));
  std::vector<Node> sorted;
  sorted.reserve(nodes.size());
  while (!ready.empty()) {
    int n = ready.top();
    ready.pop();
    sorted.push_back(std::move(nodes[size_t(n)]));
    for (int d : dependents[size_t(n)])
      if (--pending[size_t(d)] == 0) ready.push(d);
  }
  if (sorted.size() != nodes.size()) throw Error("the graph has a cycle");
  nodes = std::move(sorted);
}

void Graph::remove_dead_nodes() {
  // Worklist from the graph outputs back through producers, so node order does not matter
  // (passes may leave the list out of topological order until the next sort).
  std::vector<int> producer = producers();
  std::vector<bool> keep(nodes.size(), false);
  std::vector<int> work(outputs.begin(), outputs.end());
  std::vector<bool> seen(values.size(), false);
  while (!work.empty()) {
    int v = work.back();
    work.pop_back();
    if (v < 0 || seen[size_t(v)]) continue;
    seen[size_t(v)] = true;
    int p = producer[size_t(v)];
    if (p < 0 || keep[size_t(p)]) continue;
    keep[size_t(p)] = true;
    for (int in : nodes[size_t(p)].inputs) work.push_back(in);
  }
  std::vector<Node> kept;
  for (size_t n = 0; n < nodes.size(); ++n)
    if (keep[n]) kept.push_back(std::move(nodes[n]));
  nodes = std::move(kept);
}

void Graph::replace_uses(int from, int to) {
  for (auto& node : nodes)
    for (int& in : node.inputs)
      if (in == from) in = to;
  for (int& o : outputs)
    if (o == from) o = to;
}

}  // namespace tessera
