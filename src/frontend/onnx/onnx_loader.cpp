// Reads ONNX ModelProto/TensorProto (protobuf generated from Debian's onnx.proto) into the
// graph IR: initializers, attributes, value infos with symbolic dims, and external data
// confined to the model's folder.
#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "onnx/onnx.pb.h"
#include "tessera/error.h"
#include "tessera/onnx.h"

namespace tessera {

namespace fs = std::filesystem;

namespace {

std::string read_file_bytes(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error("file not found: " + path);
  if (fs::is_directory(path, ec)) throw Error("expected a file but found a folder: " + path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Resolves an external-data location against the model folder, refusing anything that escapes it.
std::string resolve_external_path(const std::string& model_dir, const std::string& location,
                                  const std::string& tensor_name) {
  if (model_dir.empty())
    throw Error("tensor '" + tensor_name + "' uses external data but the model has no folder");
  fs::path relative(location);
  if (location.empty() || relative.is_absolute())
    throw Error("tensor '" + tensor_name + "': external data path '" + location +
                "' must be relative to the model's folder");
  std::error_code ec;
  fs::path base = fs::weakly_canonical(fs::path(model_dir), ec);
  fs::path full = fs::weakly_canonical(base / relative, ec);
  auto [base_end, full_it] = std::mismatch(base.begin(), base.end(), full.begin(), full.end());
  if (ec || base_end != base.end())
    throw Error("tensor '" + tensor_name + "': external data path '" + location +
                "' leaves the model's folder");
  return full.string();
}

Tensor tensor_from_proto(const onnx::TensorProto& proto, const std::string& model_dir) {
  const std::string& name = proto.name();
  if (proto.has_segment()) throw Error("tensor '" + name + "' is segmented; not supported");
  DType dtype;
  try {
    dtype = dtype_from_onnx(proto.data_type());
  } catch (const Error& e) {
    throw Error("tensor '" + name + "': " + e.what());
  }
  Shape shape(proto.dims().begin(), proto.dims().end());
  for (int64_t d : shape)
    if (d < 0) throw Error("tensor '" + name + "' has a negative dimension " + shape_to_string(shape));
  // Validate the declared size against the data before allocating anything.
  int64_t numel = shape_numel(shape);
  if (numel > (int64_t(64) << 30) / int64_t(dtype_size(dtype)))
    throw Error("tensor '" + name + "' declares an absurd shape " + shape_to_string(shape));
  size_t expected_bytes = size_t(numel) * dtype_size(dtype);

  if (proto.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string location;
    int64_t offset = 0, length = -1;
    for (const auto& entry : proto.external_data()) {
      auto parse_number = [&](const std::string& text) {
        int64_t value = 0;
        auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (error != std::errc() || end != text.data() + text.size() || value < 0)
          throw Error("tensor '" + name + "': external data " + entry.key() + " '" + text + "' is not a valid number");
        return value;
      };
      if (entry.key() == "location") location = entry.value();
      else if (entry.key() == "offset") offset = parse_number(entry.value());
      else if (entry.key() == "length") length = parse_number(entry.value());
    }
    std::string path = resolve_external_path(model_dir, location, name);
    std::error_code ec;
    if (!fs::exists(path, ec)) throw Error("tensor '" + name + "': external data file not found: " + path);
    uintmax_t file_size = fs::file_size(path, ec);
    if (length < 0) length = int64_t(expected_bytes);
    if (offset < 0 || uintmax_t(offset) + uintmax_t(length) > file_size)
      throw Error("tensor '" + name + "': external data range runs past the end of " + path);
    if (size_t(length) != expected_bytes)
      throw Error("tensor '" + name + "' declares shape " + shape_to_string(shape) + " (" +
                  std::to_string(expected_bytes) + " bytes) but its external data holds " +
                  std::to_string(length) + " bytes");
    Tensor t(dtype, shape);
    std::ifstream in(path, std::ios::binary);
    in.seekg(offset);
    in.read(static_cast<char*>(t.raw_data()), length);
    if (!in) throw Error("tensor '" + name + "': failed to read external data from " + path);
    return t;
  }

  if (proto.has_raw_data()) {
    if (proto.raw_data().size() != expected_bytes)
      throw Error("tensor '" + name + "' declares shape " + shape_to_string(shape) + " (" +
                  std::to_string(expected_bytes) + " bytes) but holds " +
                  std::to_string(proto.raw_data().size()) + " bytes");
    Tensor t(dtype, shape);
    std::memcpy(t.raw_data(), proto.raw_data().data(), expected_bytes);
    return t;
  }
  // Typed fields: check the element count first, then allocate and convert.
  int field_count;
  switch (dtype) {
    case DType::f32: field_count = proto.float_data_size(); break;
    case DType::i64: field_count = proto.int64_data_size(); break;
    default: field_count = proto.int32_data_size(); break;  // int32, int8, uint8, bool, f16, bf16
  }
  if (int64_t(field_count) != numel)
    throw Error("tensor '" + name + "' declares shape " + shape_to_string(shape) + " (" +
                std::to_string(numel) + " elements) but holds " + std::to_string(field_count));
  Tensor t(dtype, shape);
  for (int64_t i = 0; i < numel; ++i) {
    int k = int(i);
    switch (dtype) {
      case DType::f32: t.data<float>()[i] = proto.float_data(k); break;
      case DType::i64: t.data<int64_t>()[i] = proto.int64_data(k); break;
      case DType::i32: t.data<int32_t>()[i] = proto.int32_data(k); break;
      case DType::i8: t.data<int8_t>()[i] = int8_t(proto.int32_data(k)); break;
      case DType::u8:
      case DType::boolean: t.data<uint8_t>()[i] = uint8_t(proto.int32_data(k)); break;
      case DType::f16:
      case DType::bf16:  // 16-bit floats travel as their bit patterns in int32_data
        t.data<uint16_t>()[i] = uint16_t(proto.int32_data(k));
        break;
    }
  }
  return t;
}

void read_value_info(const onnx::ValueInfoProto& info, Value& value) {
  if (!info.has_type()) return;
  if (!info.type().has_tensor_type())
    throw Error("value '" + info.name() + "' is not a tensor (sequences, maps and optionals are not supported)");
  const auto& tt = info.type().tensor_type();
  if (tt.elem_type() != 0) {
    value.dtype = dtype_from_onnx(tt.elem_type());
    value.has_type = true;
  }
  if (tt.has_shape()) {
    value.has_shape = true;
    value.dims.clear();
    for (const auto& d : tt.shape().dim()) {
      Dim dim;
      if (d.has_dim_value()) {
        if (d.dim_value() < 0) throw Error("value '" + info.name() + "' has a negative dimension");
        dim.value = d.dim_value();
      } else {
        dim.symbol = d.dim_param();
      }
      value.dims.push_back(dim);
    }
  }
}

Attribute attribute_from_proto(const onnx::AttributeProto& a, const std::string& model_dir,
                               const std::string& node_name) {
  Attribute out;
  using A = onnx::AttributeProto;
  switch (a.type()) {
    case A::INT: out.kind = Attribute::Kind::integer; out.i = a.i(); break;
    case A::FLOAT: out.kind = Attribute::Kind::floating; out.f = a.f(); break;
    case A::STRING: out.kind = Attribute::Kind::string; out.s = a.s(); break;
    case A::TENSOR:
      out.kind = Attribute::Kind::tensor;
      out.t = tensor_from_proto(a.t(), model_dir);
      break;
    case A::INTS: out.kind = Attribute::Kind::integers; out.ints.assign(a.ints().begin(), a.ints().end()); break;
    case A::FLOATS: out.kind = Attribute::Kind::floats; out.floats.assign(a.floats().begin(), a.floats().end()); break;
    case A::STRINGS: out.kind = Attribute::Kind::strings; out.strings.assign(a.strings().begin(), a.strings().end()); break;
    case A::GRAPH:
    case A::GRAPHS: out.kind = Attribute::Kind::graph; break;  // control flow is not supported; kept for the error
    default:
      // Untyped attributes (old exporters) carry the value in whichever field is set.
      if (a.has_f()) { out.kind = Attribute::Kind::floating; out.f = a.f(); }
      else if (a.has_i()) { out.kind = Attribute::Kind::integer; out.i = a.i(); }
      else if (a.has_s()) { out.kind = Attribute::Kind::string; out.s = a.s(); }
      else if (a.ints_size()) { out.kind = Attribute::Kind::integers; out.ints.assign(a.ints().begin(), a.ints().end()); }
      else if (a.floats_size()) { out.kind = Attribute::Kind::floats; out.floats.assign(a.floats().begin(), a.floats().end()); }
      else throw Error("node '" + node_name + "': attribute '" + a.name() + "' has an unsupported type");
  }
  return out;
}

}  // namespace

Graph parse_onnx_model(const void* data, size_t size, const std::string& model_dir) {
  onnx::ModelProto model;
  if (size > size_t(INT32_MAX) || !model.ParseFromArray(data, int(size)))
    throw Error("not a valid ONNX model (protobuf parse failed: truncated or corrupt file)");
  if (!model.has_graph()) throw Error("not a valid ONNX model (no graph)");

  Graph g;
  g.opset = -1;
  for (const auto& op : model.opset_import())
    if (op.domain().empty() || op.domain() == "ai.onnx") g.opset = op.version();
  if (g.opset < 0) {
    if (model.opset_import_size() == 0 && model.ir_version() <= 2) g.opset = 1;
    else throw Error("ONNX model does not import the default operator set");
  }
  if (g.opset < kMinOnnxOpset || g.opset > kMaxOnnxOpset)
    throw Error("ONNX opset " + std::to_string(g.opset) + " is not supported (Tessera reads opsets " +
                std::to_string(kMinOnnxOpset) + " to " + std::to_string(kMaxOnnxOpset) + ")");

  for (const auto& entry : model.metadata_props())
    if (!g.metadata.emplace(entry.key(), entry.value()).second)
      throw Error("model metadata key '" + entry.key() + "' appears twice");
  const auto& graph = model.graph();
  g.name = graph.name();
  for (const auto& init : graph.initializer()) {
    if (init.name().empty()) throw Error("an initializer has no name");
    int id = g.add_value(init.name());
    Value& v = g.values[size_t(id)];
    v.constant = tensor_from_proto(init, model_dir);
    v.dtype = v.constant.dtype();
    v.has_type = v.has_shape = true;
    v.dims.clear();
    for (int64_t d : v.constant.shape()) v.dims.push_back(Dim{d, ""});
  }
  if (graph.sparse_initializer_size() > 0) throw Error("sparse initializers are not supported");
  for (const auto& input : graph.input()) {
    int id = g.add_value(input.name());
    Value& v = g.values[size_t(id)];
    if (v.is_constant()) continue;  // initializer listed as input (IR < 4): a constant
    read_value_info(input, v);
    g.inputs.push_back(id);
  }
  for (const auto& info : graph.value_info()) {
    int id = g.add_value(info.name());
    if (!g.values[size_t(id)].is_constant()) read_value_info(info, g.values[size_t(id)]);
  }
  for (const auto& output : graph.output()) {
    int id = g.add_value(output.name());
    if (!g.values[size_t(id)].is_constant()) read_value_info(output, g.values[size_t(id)]);
    g.outputs.push_back(id);
  }
  int unnamed = 0;
  for (const auto& n : graph.node()) {
    Node node;
    node.op_type = n.op_type();
    node.domain = n.domain() == "ai.onnx" ? "" : n.domain();
    node.name = n.name().empty() ? n.op_type() + "_" + std::to_string(unnamed++) : n.name();
    for (const auto& in : n.input()) node.inputs.push_back(in.empty() ? -1 : g.add_value(in));
    for (const auto& out : n.output()) node.outputs.push_back(out.empty() ? -1 : g.add_value(out));
    for (const auto& a : n.attribute()) {
      if (!a.ref_attr_name().empty())
        throw Error("node '" + node.name + "': attribute references (functions) are not supported");
      node.attributes.set(a.name(), attribute_from_proto(a, model_dir, node.name));
    }
    g.nodes.push_back(std::move(node));
  }
  g.topological_sort();
  return g;
}

Graph load_onnx_model(const std::string& path) {
  std::string bytes = read_file_bytes(path);
  std::string dir = fs::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  try {
    return parse_onnx_model(bytes.data(), bytes.size(), dir);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

Tensor load_onnx_tensor(const std::string& path) {
  std::string bytes = read_file_bytes(path);
  onnx::TensorProto proto;
  if (!proto.ParseFromString(bytes)) throw Error(path + ": not a valid ONNX TensorProto");
  return tensor_from_proto(proto, fs::path(path).parent_path().string());
}

}  // namespace tessera
