// ONNX loading: good models load; truncated, corrupt, inconsistent and escaping models are
// refused with a clear tessera::Error.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "onnx/onnx.pb.h"
#include "tessera/onnx.h"
#include "tessera/session.h"
#include "test_support.h"

using namespace tessera;
namespace fs = std::filesystem;

namespace {

std::string temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("tessera_loader_test_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

void write_model(const onnx::ModelProto& m, const std::string& path) {
  std::ofstream out(path, std::ios::binary);
  m.SerializeToOstream(&out);
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(OnnxLoader, LoadsAndRunsWithSymbolicBatch) {
  std::string bytes = tessera::testing::small_onnx_model().SerializeAsString();
  Graph g = parse_onnx_model(bytes.data(), bytes.size(), ".");
  ASSERT_EQ(g.inputs.size(), 1u);
  EXPECT_EQ(g.values[size_t(g.inputs[0])].dims[0].symbol, "batch");
  Session session(g, SessionOptions{1});
  for (int64_t batch : {1, 3}) {
    Tensor x = tessera::testing::random_tensor({batch, 4}, 5);
    auto out = session.run({{"x", x}});
    const Tensor& y = out.at("y");
    ASSERT_EQ(y.shape(), (Shape{batch, 4}));
    for (int64_t i = 0; i < y.numel(); ++i)
      EXPECT_FLOAT_EQ(y.data<float>()[i], std::max(0.f, x.data<float>()[i] + float(i % 4) - 1.5f));
  }
}

TEST(OnnxLoader, TruncatedAndCorruptFilesAreRefused) {
  std::string bytes = tessera::testing::small_onnx_model().SerializeAsString();
  for (size_t cut : {size_t(1), bytes.size() / 3, bytes.size() / 2, bytes.size() - 1}) {
    std::string msg = error_of([&] { parse_onnx_model(bytes.data(), cut, "."); });
    // A cut may by chance still parse as a smaller valid message; then loading must not crash.
    if (!msg.empty()) EXPECT_FALSE(msg.empty());
  }
  std::string garbage(200, '\xff');
  EXPECT_NE(error_of([&] { parse_onnx_model(garbage.data(), garbage.size(), "."); }), "");
  EXPECT_NE(error_of([&] { load_onnx_model("/nonexistent/model.onnx"); }).find("not found"), std::string::npos);
}

TEST(OnnxLoader, DeclaredSizeMustMatchData) {
  onnx::ModelProto m = tessera::testing::small_onnx_model();
  m.mutable_graph()->mutable_initializer(0)->set_dims(0, 1000000);
  std::string bytes = m.SerializeAsString();
  std::string msg = error_of([&] { parse_onnx_model(bytes.data(), bytes.size(), "."); });
  EXPECT_NE(msg.find("declares shape [1000000]"), std::string::npos) << msg;
  // Absurd sizes are refused before any allocation.
  m.mutable_graph()->mutable_initializer(0)->set_dims(0, int64_t(1) << 60);
  bytes = m.SerializeAsString();
  EXPECT_NE(error_of([&] { parse_onnx_model(bytes.data(), bytes.size(), "."); }), "");
}

TEST(OnnxLoader, UnknownOpNamesOpNodeAndOpset) {
  onnx::ModelProto m = tessera::testing::small_onnx_model();
  m.mutable_graph()->mutable_node(1)->set_op_type("FrobnicateV2");
  m.mutable_graph()->mutable_node(1)->set_name("weird_node");
  std::string bytes = m.SerializeAsString();
  Graph g = parse_onnx_model(bytes.data(), bytes.size(), ".");
  Session session(g, SessionOptions{1});
  std::string msg = error_of([&] { session.run({{"x", tessera::testing::random_tensor({1, 4}, 1)}}); });
  EXPECT_NE(msg.find("FrobnicateV2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("weird_node"), std::string::npos) << msg;
  EXPECT_NE(msg.find("opset 13"), std::string::npos) << msg;
}

TEST(OnnxLoader, WrongInputsAreRefused) {
  std::string bytes = tessera::testing::small_onnx_model().SerializeAsString();
  Session session(parse_onnx_model(bytes.data(), bytes.size(), "."), SessionOptions{1});
  EXPECT_NE(error_of([&] { session.run({}); }).find("missing input 'x'"), std::string::npos);
  EXPECT_NE(error_of([&] { session.run({{"x", tessera::testing::random_tensor({1, 5}, 1)}}); }).find("dimension 1"), std::string::npos);
  EXPECT_NE(error_of([&] { session.run({{"x", tessera::testing::random_tensor({4}, 1)}}); }).find("rank"), std::string::npos);
  EXPECT_NE(error_of([&] { session.run({{"x", Tensor(DType::i64, {1, 4})}}); }).find("float32"), std::string::npos);
  EXPECT_NE(error_of([&] { session.run({{"x", tessera::testing::random_tensor({1, 4}, 1)}, {"z", Tensor(DType::f32, {1})}}); })
                .find("no input named 'z'"), std::string::npos);
}

TEST(OnnxLoader, ExternalDataInsideFolderLoadsAndEscapesAreRefused) {
  std::string dir = temp_dir("external");
  float values[4] = {0.5f, -0.5f, 2.f, -2.f};
  {
    std::ofstream out(dir + "/weights.bin", std::ios::binary);
    out.write(reinterpret_cast<const char*>(values), sizeof(values));
  }
  onnx::ModelProto m = tessera::testing::small_onnx_model();
  auto* w = m.mutable_graph()->mutable_initializer(0);
  w->clear_float_data();
  w->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* loc = w->add_external_data();
  loc->set_key("location");
  loc->set_value("weights.bin");
  write_model(m, dir + "/model.onnx");
  Graph g = load_onnx_model(dir + "/model.onnx");
  const Tensor& wt = g.values[size_t(g.find_value("w"))].constant;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(wt.data<float>()[i], values[i]);

  for (std::string escape : {"../weights.bin", "/etc/passwd", "sub/../../x.bin"}) {
    loc->set_value(escape);
    write_model(m, dir + "/escape.onnx");
    std::string msg = error_of([&] { load_onnx_model(dir + "/escape.onnx"); });
    EXPECT_TRUE(msg.find("leaves the model's folder") != std::string::npos ||
                msg.find("must be relative") != std::string::npos) << escape << ": " << msg;
  }
  loc->set_value("missing.bin");
  write_model(m, dir + "/missing.onnx");
  EXPECT_NE(error_of([&] { load_onnx_model(dir + "/missing.onnx"); }).find("not found"), std::string::npos);
  fs::remove_all(dir);
}

TEST(OnnxLoader, UnsupportedOpsetIsRefused) {
  onnx::ModelProto m = tessera::testing::small_onnx_model();
  m.mutable_opset_import(0)->set_version(99);
  std::string bytes = m.SerializeAsString();
  EXPECT_NE(error_of([&] { parse_onnx_model(bytes.data(), bytes.size(), "."); }).find("opset 99"), std::string::npos);
}

TEST(OnnxLoader, AbsurdComputedSizesAreRefusedNotAllocated) {
  // y = ConstantOfShape([100000, 100000, 1000]) + x: 4e13 bytes, far beyond any machine.
  onnx::ModelProto m = tessera::testing::small_onnx_model();
  auto* g = m.mutable_graph();
  auto* shape = g->add_initializer();
  shape->set_name("huge_shape");
  shape->set_data_type(onnx::TensorProto::INT64);
  shape->add_dims(3);
  for (int64_t d : {int64_t(100000), int64_t(100000), int64_t(1000)}) shape->add_int64_data(d);
  auto* node = g->add_node();
  node->set_op_type("ConstantOfShape");
  node->add_input("huge_shape");
  node->add_output("huge");
  auto* out = g->add_output();
  out->set_name("huge");
  std::string bytes = m.SerializeAsString();
  Session session(parse_onnx_model(bytes.data(), bytes.size(), "."), SessionOptions{1});
  std::string msg = error_of([&] { session.run({{"x", tessera::testing::random_tensor({1, 4}, 1)}}); });
  EXPECT_TRUE(msg.find("too large") != std::string::npos || msg.find("cannot allocate") != std::string::npos) << msg;
}

TEST(OnnxLoader, ComputedShapesThatOverflowByteCountsAreRefused) {
  // x [1] -> Expand(to 2^62 elements) -> ReduceSum: the Expand runs at run time (x is an input),
  // and 2^62 floats would wrap the byte count; planning must refuse it.
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  auto* x = g->add_input();
  x->set_name("x");
  x->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  x->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(1);
  auto* shape = g->add_initializer();
  shape->set_name("shape");
  shape->set_data_type(onnx::TensorProto::INT64);
  shape->add_dims(1);
  shape->add_int64_data(int64_t(1) << 62);
  auto* expand = g->add_node();
  expand->set_op_type("Expand");
  expand->add_input("x");
  expand->add_input("shape");
  expand->add_output("big");
  auto* sum = g->add_node();
  sum->set_op_type("ReduceSum");
  sum->add_input("big");
  sum->add_output("y");
  g->add_output()->set_name("y");
  std::string bytes = m.SerializeAsString();
  Session session(parse_onnx_model(bytes.data(), bytes.size(), "."), SessionOptions{1});
  std::string msg = error_of([&] { session.run({{"x", tessera::testing::random_tensor({1}, 1)}}); });
  EXPECT_NE(msg.find("too large"), std::string::npos) << msg;
}

TEST(OnnxLoader, SingleAssignmentAndProducedOutputsAreChecked) {
  {
    onnx::ModelProto m = tessera::testing::small_onnx_model();
    m.mutable_graph()->mutable_node(1)->set_output(0, "s");  // Relu writes Add's output again
    m.mutable_graph()->mutable_output(0)->set_name("s");
    std::string bytes = m.SerializeAsString();
    EXPECT_NE(error_of([&] { parse_onnx_model(bytes.data(), bytes.size(), "."); }).find("produced by both"), std::string::npos);
  }
  {
    onnx::ModelProto m = tessera::testing::small_onnx_model();
    m.mutable_graph()->mutable_node(1)->set_output(0, "w");  // overwrites the initializer
    std::string bytes = m.SerializeAsString();
    EXPECT_NE(error_of([&] { parse_onnx_model(bytes.data(), bytes.size(), "."); }).find("initializer"), std::string::npos);
  }
  {
    onnx::ModelProto m = tessera::testing::small_onnx_model();
    m.mutable_graph()->add_output()->set_name("nobody_makes_this");
    std::string bytes = m.SerializeAsString();
    EXPECT_NE(error_of([&] { parse_onnx_model(bytes.data(), bytes.size(), "."); }).find("not produced"), std::string::npos);
  }
}

TEST(OnnxLoader, InputWithoutDataIsRefused) {
  std::string bytes = tessera::testing::small_onnx_model().SerializeAsString();
  Session session(parse_onnx_model(bytes.data(), bytes.size(), "."), SessionOptions{1});
  EXPECT_NE(error_of([&] { session.run({{"x", Tensor()}}); }).find("has no data"), std::string::npos);
}

TEST(OnnxLoader, BadExternalDataNumbersAreRefused) {
  std::string dir = temp_dir("external_numbers");
  onnx::ModelProto m = tessera::testing::small_onnx_model();
  auto* w = m.mutable_graph()->mutable_initializer(0);
  w->clear_float_data();
  w->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* loc = w->add_external_data();
  loc->set_key("location");
  loc->set_value("weights.bin");
  auto* offset = w->add_external_data();
  offset->set_key("offset");
  for (std::string bad : {"abc", "99999999999999999999999", "-4"}) {
    offset->set_value(bad);
    write_model(m, dir + "/model.onnx");
    std::string msg = error_of([&] { load_onnx_model(dir + "/model.onnx"); });
    EXPECT_NE(msg.find("is not a valid number"), std::string::npos) << bad << ": " << msg;
  }
  fs::remove_all(dir);
}
