// int8 quantization end to end: calibration ranges, the QDQ writer, the lowering of QDQ graphs to
// the int8 NHWC operators (checked against the reference QDQ operators on hand-made layers of
// every geometry and against ONNX Runtime on the trained ResNet-14), and accuracy on real data.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "compression/int8_calibration.h"
#include "compression/int8_quantize.h"
#include "graph/graph_builder.h"
#include "primitives/primitives.h"
#include "tessera/npy.h"
#include "tessera/onnx.h"
#include "tessera/session.h"
#include "test_support.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using testing::random_tensor;
using testing::relative_l2_error;
using testing::source_path;
using compression::CalibrationMethod;

// ------------------------------------------------------------------ calibration

TEST(Int8Calibration, MinMaxAndPercentileMatchDirectOrderStatistics) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.5f, 2.f);
  std::vector<float> x(200000);
  for (float& v : x) v = normal(rng);
  compression::RangeObserver observer;
  observer.observe_range(x.data(), int64_t(x.size()));
  observer.observe_histogram(x.data(), int64_t(x.size()));
  float low, high;
  observer.range(CalibrationMethod::min_max, 0, 256, &low, &high);
  EXPECT_EQ(low, *std::min_element(x.begin(), x.end()));
  EXPECT_EQ(high, *std::max_element(x.begin(), x.end()));
  // 99.9%: 0.05% of the values above the range and 0.05% below, within a histogram bin.
  observer.range(CalibrationMethod::percentile, 99.9, 256, &low, &high);
  std::vector<float> sorted = x;
  std::sort(sorted.begin(), sorted.end());
  const float bin = (sorted.back() - sorted.front()) / compression::RangeObserver::kBins;
  EXPECT_NEAR(high, sorted[size_t(0.9995 * double(x.size()))], 2 * bin);
  EXPECT_NEAR(low, sorted[size_t(0.0005 * double(x.size()))], 2 * bin);
}

TEST(Int8Calibration, EntropyClipsRareOutliersButNotTheBulk) {
  // A ReLU-like distribution with a few huge outliers: min-max would waste the 256 levels on them.
  std::mt19937 rng(4);
  std::exponential_distribution<float> bulk(1.f);
  std::vector<float> x(100000);
  for (float& v : x) v = bulk(rng);
  for (int i = 0; i < 20; ++i) x[size_t(i)] = 60.f + float(i);
  compression::RangeObserver observer;
  observer.observe_range(x.data(), int64_t(x.size()));
  observer.observe_histogram(x.data(), int64_t(x.size()));
  float low, high;
  observer.range(CalibrationMethod::entropy, 0, 256, &low, &high);
  EXPECT_EQ(low, 0.f);
  std::vector<float> sorted(x.begin() + 20, x.end());
  std::sort(sorted.begin(), sorted.end());
  EXPECT_LT(high, 40.f);                                  // the outliers are clipped
  EXPECT_GT(high, sorted[size_t(0.999 * double(sorted.size()))]);  // the bulk is kept
  EXPECT_THROW(compression::calibration_method_from_string("median"), Error);
}

// ------------------------------------------------------------------ writer

TEST(OnnxWriter, RoundTripKeepsTheModelAndCustomDomains) {
  const std::string path = source_path("models/trained/lenet5.onnx");
  const Graph original = load_onnx_model(path);
  const fs::path out = fs::temp_directory_path() / "tessera_writer_roundtrip.onnx";
  save_onnx_model(original, out.string());
  const Graph again = load_onnx_model(out.string());
  ASSERT_EQ(again.nodes.size(), original.nodes.size());
  const Tensor x = read_npy(source_path("models/trained/test_images.npy"));
  Session a(original), b(again);
  const Tensor ya = a.run({{"input", x}}).at("logits"), yb = b.run({{"input", x}}).at("logits");
  EXPECT_EQ(std::memcmp(ya.raw_data(), yb.raw_data(), ya.nbytes()), 0);
  // A custom-domain node and its attributes survive too.
  GraphBuilder builder;
  const int input = builder.input("x", {1, 4, 3, 3});
  Attributes attributes;
  attributes.set_float("scale", 0.25f);
  attributes.set_int("zero_point", 7);
  const int y = builder.node("QuantizeLinearNhwc", {input}, attributes);
  builder.g.nodes.back().domain = "tessera";
  builder.g.outputs = {y};
  save_onnx_model(builder.g, out.string());
  const Graph custom = load_onnx_model(out.string());
  ASSERT_EQ(custom.nodes.size(), 1u);
  EXPECT_EQ(custom.nodes[0].domain, "tessera");
  EXPECT_EQ(custom.nodes[0].attributes.get_float("scale", 0), 0.25f);
  EXPECT_EQ(custom.nodes[0].attributes.get_int("zero_point", 0), 7);
  EXPECT_THROW(save_onnx_model(original, "/nonexistent-dir/x.onnx"), Error);
  fs::remove(out);
}

// ------------------------------------------------------------------ lowering vs reference QDQ operators

Tensor scalar(float v) {
  Tensor t(DType::f32, {});
  t.data<float>()[0] = v;
  return t;
}
Tensor scalar_u8(uint8_t v) {
  Tensor t(DType::u8, {});
  t.data<uint8_t>()[0] = v;
  return t;
}

struct LayerCase {
  int64_t cin, cout, h, w, k, stride, pad, dilation;
  bool relu, residual;
};

// x -> Q -> DQ -> Conv(DQ(w), DQ(bias)) [-> Relu] -> Q -> DQ [+ DQ(Q(r)) -> Q -> DQ]: built by hand
// with random weights; the lowered run (Int8Conv) against the same graph on the reference QDQ
// operators (optimize off: plain float Conv between scalar QuantizeLinear/DequantizeLinear).
Graph conv_layer_graph(const LayerCase& c, uint32_t seed) {
  GraphBuilder b;
  const int x = b.input("x", {1, c.cin, c.h, c.w});
  const int xs = b.constant("xs", scalar(0.021f)), xz = b.constant("xz", scalar_u8(117));
  const int xq = b.node("QuantizeLinear", {x, xs, xz});
  const int xd = b.node("DequantizeLinear", {xq, xs, xz});
  std::mt19937 rng(seed);
  Tensor w(DType::i8, {c.cout, c.cin, c.k, c.k});
  for (int64_t i = 0; i < w.numel(); ++i) w.data<int8_t>()[i] = int8_t(int(rng() % 255) - 127);
  Tensor ws(DType::f32, {c.cout}), wz(DType::i8, {c.cout}), bias(DType::i32, {c.cout}), bs(DType::f32, {c.cout});
  Tensor bz(DType::i32, {c.cout});
  for (int64_t i = 0; i < c.cout; ++i) {
    ws.data<float>()[i] = 0.002f + 0.001f * float(rng() % 7);
    bs.data<float>()[i] = 0.021f * ws.data<float>()[i];
    bias.data<int32_t>()[i] = int32_t(rng() % 20001) - 10000;
  }
  Attributes axis0;
  axis0.set_int("axis", 0);
  const int wd = b.node("DequantizeLinear", {b.constant("w", w), b.constant("ws", ws), b.constant("wz", wz)}, axis0);
  const int bd = b.node("DequantizeLinear", {b.constant("b", bias), b.constant("bs", bs), b.constant("bz", bz)}, axis0);
  Attributes conv;
  conv.set_ints("kernel_shape", {c.k, c.k});
  conv.set_ints("strides", {c.stride, c.stride});
  conv.set_ints("pads", {c.pad, c.pad, c.pad, c.pad});
  conv.set_ints("dilations", {c.dilation, c.dilation});
  int y = b.node("Conv", {xd, wd, bd}, conv);
  if (c.relu) y = b.node("Relu", {y});
  const int ys = b.constant("ys", scalar(0.13f)), yz = b.constant("yz", scalar_u8(c.relu ? 0 : 128));
  int out = b.node("DequantizeLinear", {b.node("QuantizeLinear", {y, ys, yz}), ys, yz});
  if (c.residual) {
    const int64_t oh = (c.h + 2 * c.pad - c.dilation * (c.k - 1) - 1) / c.stride + 1;
    const int64_t ow = (c.w + 2 * c.pad - c.dilation * (c.k - 1) - 1) / c.stride + 1;
    const int r = b.input("r", {1, c.cout, oh, ow});
    const int rs = b.constant("rs", scalar(0.057f)), rz = b.constant("rz", scalar_u8(90));
    const int rd = b.node("DequantizeLinear", {b.node("QuantizeLinear", {r, rs, rz}), rs, rz});
    const int sum = b.node("Relu", {b.node("Add", {out, rd})});
    const int ss = b.constant("ss", scalar(0.171f)), sz = b.constant("sz", scalar_u8(0));
    out = b.node("DequantizeLinear", {b.node("QuantizeLinear", {sum, ss, sz}), ss, sz});
  }
  b.g.outputs = {out};
  return b.g;
}

std::string op_types(const Graph& g) {
  std::string ops;
  for (const Node& n : g.nodes) ops += n.op_type + " ";
  return ops;
}

TEST(Int8Lowering, ConvLayersOfEveryGeometryMatchTheReferenceQdqOperators) {
  const LayerCase cases[] = {
      {16, 32, 9, 11, 3, 1, 1, 1, true, false},  {16, 24, 9, 11, 3, 2, 1, 1, false, false},
      {8, 40, 12, 7, 1, 1, 0, 1, true, true},    {32, 64, 8, 8, 1, 2, 0, 1, false, false},
      {3, 16, 15, 13, 7, 2, 3, 1, true, false},  {6, 20, 10, 10, 3, 1, 2, 2, true, false},
      {12, 17, 6, 9, 5, 1, 2, 1, false, true},   {64, 70, 5, 5, 3, 1, 1, 1, true, true},
  };
  const primitives::Isa saved = primitives::active_isa();
  uint32_t seed = 10;
  for (const LayerCase& c : cases) {
    const Graph g = conv_layer_graph(c, seed++);
    std::map<std::string, Tensor> feeds{{"x", random_tensor({1, c.cin, c.h, c.w}, seed, -2.4f, 2.9f)}};
    if (c.residual) {
      const Value& r = g.values[size_t(g.find_value("r"))];
      feeds["r"] = random_tensor({1, c.cout, r.dims[2].value, r.dims[3].value}, seed + 100, -5.f, 9.f);
    }
    SessionOptions reference_options;
    reference_options.optimize = false;
    Session reference(g, reference_options);
    const Tensor expected = reference.run(feeds).begin()->second;
    for (int isa = 0; isa <= int(primitives::detected_isa()); ++isa) {
      primitives::set_isa(primitives::Isa(isa));
      Session lowered(g);
      const Tensor got = lowered.run(feeds).begin()->second;
      const std::string what = std::string(primitives::isa_name(primitives::Isa(isa))) + " cin " +
                               std::to_string(c.cin) + " k " + std::to_string(c.k) + " stride " +
                               std::to_string(c.stride) + " : " + op_types(lowered.planned_graph());
      ASSERT_NE(op_types(lowered.planned_graph()).find("Int8Conv"), std::string::npos) << what;
      EXPECT_EQ(op_types(lowered.planned_graph()).find("Int8Add"), std::string::npos) << what;
      // Outputs are multiples of the output scale: at most one step apart (a tie rounded the
      // other way), and rarely.
      const float step = c.residual ? 0.171f : 0.13f;
      int64_t differ = 0;
      for (int64_t i = 0; i < expected.numel(); ++i) {
        const float d = std::fabs(got.data<float>()[i] - expected.data<float>()[i]);
        ASSERT_LE(d, step * 1.01f) << what << " at " << i;
        differ += d > 0;
      }
      EXPECT_LE(differ, expected.numel() / 200 + 1) << what;
    }
    primitives::set_isa(saved);
  }
}

// ------------------------------------------------------------------ trained model, ORT, accuracy

struct TrainedData {
  Tensor images, labels;
};

TrainedData trained_data() {
  return {read_npy(source_path("models/trained/test_images.npy")), read_npy(source_path("models/trained/test_labels.npy"))};
}

Tensor rows(const Tensor& t, int64_t begin, int64_t end) {
  Shape shape = t.shape();
  shape[0] = end - begin;
  Tensor out(t.dtype(), shape);
  const size_t row = t.nbytes() / size_t(t.dim(0));
  std::memcpy(out.raw_data(), static_cast<const char*>(t.raw_data()) + size_t(begin) * row, size_t(end - begin) * row);
  return out;
}

double accuracy(const Tensor& logits, const Tensor& labels, int64_t offset) {
  int64_t correct = 0;
  for (int64_t r = 0; r < logits.dim(0); ++r) {
    const float* row = logits.data<float>() + r * logits.dim(1);
    correct += (std::max_element(row, row + logits.dim(1)) - row) == int64_t(labels.value_as_double(offset + r));
  }
  return 100.0 * double(correct) / double(logits.dim(0));
}

// Calibrated on the first 200 test images, evaluated on the other 800.
TEST(Int8Quantization, TrainedResNet14MatchesOnnxRuntimeAndKeepsAccuracy) {
  const TrainedData data = trained_data();
  const Graph float_graph = load_onnx_model(source_path("models/trained/resnet14.onnx"));
  std::vector<compression::Feeds> calibration;
  for (int64_t b = 0; b < 200; b += 50) calibration.push_back({{"input", rows(data.images, b, b + 50)}});
  compression::Int8QuantizeReport report;
  const Graph qdq = compression::quantize_int8(float_graph, calibration, {}, &report);
  EXPECT_EQ(report.convolutions_quantized, 15);
  EXPECT_EQ(report.matmuls_quantized, 1);
  const fs::path dir = fs::temp_directory_path() / "tessera_int8_test";
  fs::create_directories(dir);
  save_onnx_model(qdq, (dir / "resnet14_int8.onnx").string());
  const Tensor held_out = rows(data.images, 200, 1000);

  Session int8(load_onnx_model((dir / "resnet14_int8.onnx").string()));
  const Tensor got = int8.run({{"input", held_out}}).at("logits");
  for (const Node& n : int8.planned_graph().nodes) {
    EXPECT_NE(n.op_type, "Conv") << "a convolution was not lowered";
    EXPECT_NE(n.op_type, "Gemm") << "the classifier was not lowered";
  }
  Session f32(float_graph);
  const Tensor float_logits = f32.run({{"input", held_out}}).at("logits");
  const double float_accuracy = accuracy(float_logits, data.labels, 200), int8_accuracy = accuracy(got, data.labels, 200);
  std::printf("ResNet-14 on 800 held-out images: f32 %.2f%%, int8 %.2f%%\n", float_accuracy, int8_accuracy);
  EXPECT_GT(int8_accuracy, float_accuracy - 1.0);  // the target: a drop under 1 point

  // ONNX Runtime on the same QDQ file (an independent implementation of the QDQ semantics).
  write_npy((dir / "input.npy").string(), held_out);
  const std::string command = "node " + source_path("scripts/ort_reference.mjs") + " --model " +
                              (dir / "resnet14_int8.onnx").string() + " --inputs " + (dir / "input.npy").string() +
                              " --out " + dir.string() + " > /dev/null 2>&1";
  if (std::system(command.c_str()) != 0) GTEST_SKIP() << "ONNX Runtime (node) not available: " << command;
  const Tensor ort = read_npy((dir / "output_0.npy").string());
  int64_t same_class = 0;
  double difference = 0, norm = 0;
  for (int64_t r = 0; r < got.dim(0); ++r) {
    const float* a = got.data<float>() + r * 10;
    const float* e = ort.data<float>() + r * 10;
    same_class += (std::max_element(a, a + 10) - a) == (std::max_element(e, e + 10) - e);
    for (int j = 0; j < 10; ++j) {
      difference += double(a[j] - e[j]) * double(a[j] - e[j]);
      norm += double(e[j]) * double(e[j]);
    }
  }
  // Quantized activations differ by one step where a value lands on a rounding tie.
  EXPECT_LT(std::sqrt(difference / norm), 0.01);
  EXPECT_GE(same_class, got.dim(0) * 99 / 100);
  fs::remove_all(dir);
}

// LeNet-5's three Gemms (Flatten -> Gemm -> Relu -> Gemm -> Relu -> Gemm) run as Int8MatMul, u8
// between them and f32 logits at the end, against the reference QDQ operators.
TEST(Int8Lowering, MatrixProductsMatchTheReferenceQdqOperators) {
  const TrainedData data = trained_data();
  const Graph lenet = load_onnx_model(source_path("models/trained/lenet5.onnx"));
  const Graph qdq = compression::quantize_int8(lenet, {{{"input", rows(data.images, 0, 100)}}}, {});
  const Tensor x = rows(data.images, 100, 400);
  SessionOptions reference_options;
  reference_options.optimize = false;
  const Tensor expected = Session(qdq, reference_options).run({{"input", x}}).at("logits");
  const primitives::Isa saved = primitives::active_isa();
  for (int isa = 0; isa <= int(primitives::detected_isa()); ++isa) {
    primitives::set_isa(primitives::Isa(isa));
    Session lowered(qdq);
    const Tensor got = lowered.run({{"input", x}}).at("logits");
    int matmuls = 0;
    for (const Node& n : lowered.planned_graph().nodes) {
      matmuls += n.op_type == "Int8MatMul";
      EXPECT_NE(n.op_type, "Gemm");
    }
    EXPECT_EQ(matmuls, 3);
    EXPECT_LT(relative_l2_error(got, expected), 0.01) << primitives::isa_name(primitives::Isa(isa));
  }
  primitives::set_isa(saved);
}

TEST(Int8Quantization, PerTensorSymmetricAndFallbackOptions) {
  const TrainedData data = trained_data();
  const Graph float_graph = load_onnx_model(source_path("models/trained/resnet14.onnx"));
  std::vector<compression::Feeds> calibration{{{"input", rows(data.images, 0, 100)}}};
  compression::Int8QuantizeOptions options;
  options.per_channel = false;
  options.symmetric_activations = true;
  options.calibration = CalibrationMethod::entropy;
  const auto layers = compression::quantizable_layers(float_graph);
  ASSERT_EQ(layers.size(), 16u);  // 15 convolutions and the classifier's Gemm
  options.keep_float = {layers.front()};
  compression::Int8QuantizeReport report;
  const Graph qdq = compression::quantize_int8(float_graph, calibration, options, &report);
  EXPECT_EQ(report.convolutions_quantized, 14);
  EXPECT_EQ(report.float_layers, std::vector<std::string>{layers.front()});
  // s8 activations with zero point 0 and one weight scale per tensor, as asked.
  int s8_activations = 0, per_tensor_weights = 0;
  for (const Node& n : qdq.nodes) {
    if (n.op_type == "QuantizeLinear") s8_activations += qdq.values[size_t(n.outputs[0])].dtype == DType::i8;
    if (n.op_type == "DequantizeLinear" && qdq.values[size_t(n.inputs[0])].is_constant() &&
        qdq.values[size_t(n.inputs[0])].constant.dtype() == DType::i8)
      per_tensor_weights += qdq.values[size_t(n.inputs[1])].constant.numel() == 1;
  }
  EXPECT_GT(s8_activations, 10);
  EXPECT_EQ(per_tensor_weights, 15);  // 14 convolutions and the Gemm
  // Lowered (s8 carried as u8 + 128) against the reference QDQ operators.
  SessionOptions reference_options;
  reference_options.optimize = false;
  const Tensor x = rows(data.images, 100, 300);
  const Tensor expected = Session(qdq, reference_options).run({{"input", x}}).at("logits");
  const Tensor got = Session(qdq).run({{"input", x}}).at("logits");
  EXPECT_LT(relative_l2_error(got, expected), 0.01);

  // Accuracy-targeted fallback (on LeNet-5, whose five layers keep this quick): with an
  // impossible target (a drop below -100 points) every layer goes back to f32, most sensitive
  // first; with a loose one none does.
  const Graph lenet = load_onnx_model(source_path("models/trained/lenet5.onnx"));
  auto evaluate = [&](const Graph& g) { return accuracy(Session(g).run({{"input", x}}).at("logits"), data.labels, 100); };
  std::string log;
  const auto loose = compression::choose_float_layers(lenet, calibration, {}, evaluate, 100.0, &log);
  EXPECT_TRUE(loose.keep_float.empty()) << log;
  const auto strict = compression::choose_float_layers(lenet, calibration, {}, evaluate, -100.0, &log);
  EXPECT_EQ(strict.keep_float.size(), compression::quantizable_layers(lenet).size()) << log;
  EXPECT_EQ(strict.keep_float.size(), 5u) << log;  // 2 convolutions, 3 Gemms
}

}  // namespace
}  // namespace tessera
