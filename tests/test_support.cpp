// Shared helpers for tests.
#include "test_support.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace tessera::testing {

void for_each_isa(const std::function<void(primitives::Isa)>& body) {
  const primitives::Isa saved = primitives::active_isa();
  for (int i = 0; i <= int(primitives::detected_isa()); ++i) {
    const primitives::Isa isa = primitives::set_isa(primitives::Isa(i));
    EXPECT_EQ(isa, primitives::Isa(i));
    SCOPED_TRACE(std::string("isa=") + primitives::isa_name(isa));
    body(isa);
    if (::testing::Test::HasFatalFailure()) break;
  }
  primitives::set_isa(saved);
}

std::vector<float> random_floats(size_t n, uint32_t seed, float low, float high) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

Tensor random_tensor(Shape shape, uint32_t seed, float low, float high) {
  Tensor t(DType::f32, std::move(shape));
  auto v = random_floats(size_t(t.numel()), seed, low, high);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

double relative_l2_error(const Tensor& actual, const Tensor& expected) {
  Tensor a = actual.cast(DType::f32), b = expected.cast(DType::f32);
  if (a.numel() != b.numel()) return INFINITY;
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double d = double(a.data<float>()[i]) - double(b.data<float>()[i]);
    diff += d * d;
    norm += double(b.data<float>()[i]) * double(b.data<float>()[i]);
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

double max_abs_difference(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

std::string source_path(const std::string& relative) {
  return std::string(TESSERA_SOURCE_DIR) + "/" + relative;
}

onnx::ModelProto small_onnx_model() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("small");
  auto* w = g->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(4);
  for (int i = 0; i < 4; ++i) w->add_float_data(float(i) - 1.5f);
  auto* x = g->add_input();
  x->set_name("x");
  x->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  auto* d0 = x->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim();
  d0->set_dim_param("batch");
  x->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(4);
  auto* y = g->add_output();
  y->set_name("y");
  y->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  auto* add = g->add_node();
  add->set_op_type("Add");
  add->set_name("add0");
  add->add_input("x");
  add->add_input("w");
  add->add_output("s");
  auto* relu = g->add_node();
  relu->set_op_type("Relu");
  relu->add_input("s");
  relu->add_output("y");
  return m;
}

}  // namespace tessera::testing
