// ONNX writer: a tessera::Graph back to a ModelProto file (what `tessera compress` produces).
// Constants become initializers (raw data), values with a known type get value_info, nodes of
// the "tessera" domain import that domain, so Tessera reads the file back as it was.
#include <fstream>
#include <set>

#include "onnx/onnx.pb.h"
#include "tessera/error.h"
#include "tessera/onnx.h"

namespace tessera {
namespace {

void write_tensor(const std::string& name, const Tensor& t, onnx::TensorProto* proto) {
  proto->set_name(name);
  proto->set_data_type(dtype_to_onnx(t.dtype()));
  for (int64_t d : t.shape()) proto->add_dims(d);
  const Tensor dense = t.is_contiguous() ? t : t.clone();
  proto->set_raw_data(dense.raw_data(), size_t(dense.numel()) * dtype_size(dense.dtype()));
}

void write_value_info(const Value& v, onnx::ValueInfoProto* info) {
  info->set_name(v.name);
  if (!v.has_type) return;
  auto* tensor_type = info->mutable_type()->mutable_tensor_type();
  tensor_type->set_elem_type(dtype_to_onnx(v.dtype));
  if (!v.has_shape) return;
  auto* shape = tensor_type->mutable_shape();
  for (const Dim& d : v.dims) {
    auto* dim = shape->add_dim();
    if (d.known())
      dim->set_dim_value(d.value);
    else if (!d.symbol.empty())
      dim->set_dim_param(d.symbol);
  }
}

void write_attribute(const std::string& name, const Attribute& a, onnx::AttributeProto* proto) {
  using A = onnx::AttributeProto;
  proto->set_name(name);
  switch (a.kind) {
    case Attribute::Kind::integer:
      proto->set_type(A::INT);
      proto->set_i(a.i);
      break;
    case Attribute::Kind::floating:
      proto->set_type(A::FLOAT);
      proto->set_f(a.f);
      break;
    case Attribute::Kind::string:
      proto->set_type(A::STRING);
      proto->set_s(a.s);
      break;
    case Attribute::Kind::tensor:
      proto->set_type(A::TENSOR);
      write_tensor("", a.t, proto->mutable_t());
      break;
    case Attribute::Kind::integers:
      proto->set_type(A::INTS);
      for (int64_t v : a.ints) proto->add_ints(v);
      break;
    case Attribute::Kind::floats:
      proto->set_type(A::FLOATS);
      for (float v : a.floats) proto->add_floats(v);
      break;
    case Attribute::Kind::strings:
      proto->set_type(A::STRINGS);
      for (const auto& v : a.strings) proto->add_strings(v);
      break;
    case Attribute::Kind::graph:
      throw Error("attribute '" + name + "' holds a subgraph, which the ONNX writer does not write");
  }
}

}  // namespace

void save_onnx_model(const Graph& g, const std::string& path) {
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.set_producer_name("tessera");
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(g.opset);
  for (const auto& [key, value] : g.metadata) {
    auto* entry = model.add_metadata_props();
    entry->set_key(key);
    entry->set_value(value);
  }
  std::set<std::string> domains;
  auto* graph = model.mutable_graph();
  graph->set_name(g.name.empty() ? "tessera" : g.name);
  // Constants nothing reads (left behind by rewrites) are not written.
  std::set<int> used(g.outputs.begin(), g.outputs.end());
  for (const Node& n : g.nodes) used.insert(n.inputs.begin(), n.inputs.end());
  for (int id : used)
    if (id >= 0 && g.values[size_t(id)].is_constant())
      write_tensor(g.values[size_t(id)].name, g.values[size_t(id)].constant, graph->add_initializer());
  for (int id : g.inputs) write_value_info(g.values[size_t(id)], graph->add_input());
  for (int id : g.outputs) write_value_info(g.values[size_t(id)], graph->add_output());
  for (const Node& n : g.nodes) {
    auto* node = graph->add_node();
    node->set_name(n.name);
    node->set_op_type(n.op_type);
    if (!n.domain.empty()) {
      node->set_domain(n.domain);
      domains.insert(n.domain);
    }
    for (int in : n.inputs) node->add_input(in < 0 ? std::string() : g.values[size_t(in)].name);
    for (int out : n.outputs) node->add_output(out < 0 ? std::string() : g.values[size_t(out)].name);
    for (const auto& [name, attribute] : n.attributes.all()) write_attribute(name, attribute, node->add_attribute());
  }
  for (const std::string& domain : domains) {
    auto* custom = model.add_opset_import();
    custom->set_domain(domain);
    custom->set_version(1);
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error("cannot write " + path);
  if (!model.SerializeToOstream(&out) || !out.flush()) throw Error("failed writing " + path);
}

}  // namespace tessera
