// apply_bitplane_quantization on the trained Fashion-MNIST models: the rewritten graph run by a
// Session equals a plain-loop float simulation of the same quantization (fake-quantized weights
// and activations), for calibrated and dynamic activation ranges and several bit widths.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "compression/bitplane_quantize.h"
#include "tessera/npy.h"
#include "tessera/onnx.h"
#include "tessera/session.h"
#include "test_support.h"

using namespace tessera;
using namespace tessera::compression;

namespace {

std::string trained_path(const std::string& file) { return tessera::testing::source_path("models/trained/" + file); }

Tensor first_rows(const Tensor& t, int64_t count) {
  Shape shape = t.shape();
  shape[0] = count;
  Tensor out(t.dtype(), shape);
  std::memcpy(out.raw_data(), t.raw_data(), out.nbytes());
  return out;
}

// ------------------------------------------------------------ the plain-loop simulation
// A float tensor as the reference sees it.
struct Array {
  Shape shape;
  std::vector<float> data;
};

Array from_tensor(const Tensor& t) {
  Tensor c = t.is_contiguous() ? t : t.clone();
  return {c.shape(), std::vector<float>(c.data<float>(), c.data<float>() + c.numel())};
}

// x -> scale * (clamp(round_half_even(x / scale) + zero_point, 0, 2^bits - 1) - zero_point), with
// the range from calibration or from x itself (dynamic), as docs/COMPRESSION_BITPLANE.md defines.
void fake_quantize_activations(Array& x, int bits, bool calibrated, float scale, float zero_point) {
  const float levels = float((1 << bits) - 1);
  if (!calibrated) {
    float lo = 0.f, hi = 0.f;
    for (float v : x.data) lo = std::min(lo, v), hi = std::max(hi, v);
    scale = hi > lo ? (hi - lo) / levels : 1.f;
    zero_point = hi > lo ? std::clamp(std::nearbyint(-lo / scale), 0.f, levels) : 0.f;
  }
  for (float& v : x.data) v = scale * (std::clamp(std::nearbyint(v / scale) + zero_point, 0.f, levels) - zero_point);
}

// Decodes the weight planes (uint8 [N, bits, ceil(K/8)]) to floats scale[n] * value.
std::vector<float> decode_weights(const Tensor& planes, const Tensor& scales, int bits, bool binary) {
  const int64_t N = planes.dim(0), row_bytes = planes.dim(2);
  std::vector<float> w(size_t(N * row_bytes * 8));
  const uint8_t* bytes = planes.data<uint8_t>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < row_bytes * 8; ++k) {
      int value = 0;
      for (int b = 0; b < bits; ++b) {
        const int bit = (bytes[(n * bits + b) * row_bytes + k / 8] >> (k % 8)) & 1;
        value += bit * (b == bits - 1 && !binary ? -(1 << b) : (1 << b));
      }
      if (binary) value = 2 * value - 1;
      w[size_t(n * row_bytes * 8 + k)] = scales.data<float>()[n] * float(value);
    }
  return w;
}

Array conv2d(const Array& x, const float* w, int64_t ld_w, const float* bias, int64_t out_channels, int64_t kh,
             int64_t kw, std::vector<int64_t> strides, std::vector<int64_t> pads) {
  const int64_t B = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const int64_t OH = (H + pads[0] + pads[2] - kh) / strides[0] + 1, OW = (W + pads[1] + pads[3] - kw) / strides[1] + 1;
  Array y{{B, out_channels, OH, OW}, std::vector<float>(size_t(B * out_channels * OH * OW))};
  for (int64_t b = 0; b < B; ++b)
    for (int64_t o = 0; o < out_channels; ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double sum = bias ? bias[o] : 0.0;
          for (int64_t c = 0; c < C; ++c)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                const int64_t ih = oh * strides[0] - pads[0] + i, iw = ow * strides[1] - pads[1] + j;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                sum += double(x.data[size_t(((b * C + c) * H + ih) * W + iw)]) * w[o * ld_w + (c * kh + i) * kw + j];
              }
          y.data[size_t(((b * out_channels + o) * OH + oh) * OW + ow)] = float(sum);
        }
  return y;
}

// y[m, n] = sum_k x[m, k] * w[n * ld_w + k] + bias[n].
Array dense(const Array& x, const float* w, int64_t ld_w, const float* bias, int64_t N) {
  const int64_t K = x.shape.back(), M = int64_t(x.data.size()) / K;
  Array y{{M, N}, std::vector<float>(size_t(M * N))};
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double sum = bias ? bias[n] : 0.0;
      for (int64_t k = 0; k < K; ++k) sum += double(x.data[size_t(m * K + k)]) * w[n * ld_w + k];
      y.data[size_t(m * N + n)] = float(sum);
    }
  return y;
}

const Tensor& constant(const Graph& g, int value) { return g.values[size_t(value)].constant; }

// Runs the rewritten graph node by node with plain loops.
Array simulate(const Graph& g, const Tensor& input) {
  std::map<int, Array> values;
  values[g.inputs[0]] = from_tensor(input);
  auto in = [&](const Node& n, size_t i) -> Array {
    const int id = n.inputs[i];
    if (values.count(id)) return values[id];
    return from_tensor(constant(g, id));
  };
  for (const Node& node : g.nodes) {
    Array y;
    const std::string& op = node.op_type;
    if (op == "BitplaneConv" || op == "BitplaneMatMul") {
      EXPECT_EQ(node.domain, "tessera");
      Array x = in(node, 0);
      const int bits = int(node.attributes.get_int("weight_bits", 0));
      const int activation_bits = int(node.attributes.get_int("activation_bits", 0));
      const bool binary = node.attributes.get_string("weight_encoding", "") == "binary";
      const Tensor& planes = constant(g, node.inputs[1]);
      const std::vector<float> w = decode_weights(planes, constant(g, node.inputs[2]), bits, binary);
      const bool has_bias = node.inputs.size() > 3 && node.inputs[3] >= 0;
      const bool calibrated = node.inputs.size() > 5;
      fake_quantize_activations(x, activation_bits, calibrated, calibrated ? constant(g, node.inputs[4]).data<float>()[0] : 0.f,
                                calibrated ? constant(g, node.inputs[5]).data<float>()[0] : 0.f);
      const float* bias = has_bias ? constant(g, node.inputs[3]).data<float>() : nullptr;
      const int64_t ld_w = planes.dim(2) * 8;
      if (op == "BitplaneConv") {
        const auto ks = node.attributes.get_ints("kernel_shape");
        EXPECT_EQ(node.attributes.get_ints("dilations"), (std::vector<int64_t>{1, 1}));
        y = conv2d(x, w.data(), ld_w, bias, planes.dim(0), ks[0], ks[1], node.attributes.get_ints("strides"),
                   node.attributes.get_ints("pads"));
      } else {
        y = dense(x, w.data(), ld_w, bias, planes.dim(0));
      }
      if (node.attributes.get_string("activation", "") == "Relu")
        for (float& v : y.data) v = std::max(v, 0.f);
    } else if (op == "Conv") {
      const Array x = in(node, 0);
      const Tensor& w = constant(g, node.inputs[1]);
      const float* bias = node.inputs.size() > 2 ? constant(g, node.inputs[2]).data<float>() : nullptr;
      y = conv2d(x, w.data<float>(), w.numel() / w.dim(0), bias, w.dim(0), w.dim(2), w.dim(3),
                 node.attributes.get_ints("strides", {1, 1}), node.attributes.get_ints("pads", {0, 0, 0, 0}));
    } else if (op == "Gemm") {
      EXPECT_EQ(node.attributes.get_int("transB", 0), 1);
      const Tensor& w = constant(g, node.inputs[1]);
      y = dense(in(node, 0), w.data<float>(), w.dim(1), constant(g, node.inputs[2]).data<float>(), w.dim(0));
    } else if (op == "Relu") {
      y = in(node, 0);
      for (float& v : y.data) v = std::max(v, 0.f);
    } else if (op == "Add") {
      y = in(node, 0);
      const Array b = in(node, 1);
      EXPECT_EQ(y.shape, b.shape);
      for (size_t i = 0; i < y.data.size(); ++i) y.data[i] += b.data[i];
    } else if (op == "MaxPool") {
      const Array x = in(node, 0);
      EXPECT_EQ(node.attributes.get_ints("kernel_shape"), (std::vector<int64_t>{2, 2}));
      EXPECT_EQ(node.attributes.get_ints("strides"), (std::vector<int64_t>{2, 2}));
      const int64_t B = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
      y = {{B, C, H / 2, W / 2}, std::vector<float>(size_t(B * C * (H / 2) * (W / 2)))};
      for (int64_t bc = 0; bc < B * C; ++bc)
        for (int64_t i = 0; i < H / 2; ++i)
          for (int64_t j = 0; j < W / 2; ++j) {
            const float* p = x.data.data() + bc * H * W + 2 * i * W + 2 * j;
            y.data[size_t((bc * (H / 2) + i) * (W / 2) + j)] = std::max({p[0], p[1], p[W], p[W + 1]});
          }
    } else if (op == "GlobalAveragePool") {
      const Array x = in(node, 0);
      const int64_t BC = x.shape[0] * x.shape[1], HW = x.shape[2] * x.shape[3];
      y = {{x.shape[0], x.shape[1], 1, 1}, std::vector<float>(size_t(BC))};
      for (int64_t i = 0; i < BC; ++i) {
        double sum = 0;
        for (int64_t p = 0; p < HW; ++p) sum += x.data[size_t(i * HW + p)];
        y.data[size_t(i)] = float(sum / double(HW));
      }
    } else if (op == "Flatten") {
      y = in(node, 0);
      y.shape = {y.shape[0], int64_t(y.data.size()) / y.shape[0]};
    } else {
      ADD_FAILURE() << "the simulation has no " << op;
      return {};
    }
    values[node.outputs[0]] = std::move(y);
  }
  return values[g.outputs[0]];
}

struct Setting {
  std::string model;
  int weight_bits, activation_bits;
  bool calibrated;
  int64_t images;
};
void PrintTo(const Setting& s, std::ostream* os) {
  *os << s.model << " w" << s.weight_bits << "a" << s.activation_bits << (s.calibrated ? " calibrated" : " dynamic");
}

}  // namespace

class BitplaneModel : public ::testing::TestWithParam<Setting> {};

TEST_P(BitplaneModel, SessionMatchesPlainLoopSimulation) {
  const Setting s = GetParam();
  const Tensor images = read_npy(trained_path("test_images.npy"));
  Graph graph = load_onnx_model(trained_path(s.model + ".onnx"));
  const Graph original = graph;
  BitplaneOptions options;
  options.weight_bits = s.weight_bits;
  options.activation_bits = s.activation_bits;
  // Calibration on images the comparison does not use (the last 64 of the committed 1000).
  if (s.calibrated) {
    Tensor calibration(DType::f32, {64, 1, 28, 28});
    std::memcpy(calibration.raw_data(), images.data<float>() + (1000 - 64) * 784, calibration.nbytes());
    options.calibration_inputs["input"] = calibration;
  }
  const BitplaneReport report = apply_bitplane_quantization(graph, options);
  EXPECT_EQ(report.calibrated, s.calibrated);
  // First and last layers stay f32; every other Conv/Gemm is rewritten.
  const size_t expected_layers = s.model == "lenet5" ? 3 : 14;  // resnet14: 15 convs + fc, less 2
  EXPECT_EQ(report.quantized_layers.size(), expected_layers);
  EXPECT_EQ(report.kept_f32_layers.size(), 2u);
  int bitplane_nodes = 0;
  for (const Node& node : graph.nodes) bitplane_nodes += node.domain == "tessera";
  EXPECT_EQ(bitplane_nodes, int(expected_layers));
  EXPECT_LT(report.packed_weight_bytes * 3, report.float_weight_bytes);  // 8-bit planes + scales: about 1/4

  const Tensor batch = first_rows(images, s.images);
  Session session(graph, SessionOptions{2});
  const Tensor logits = session.run({{"input", batch}}).at("logits");
  const Array expected = simulate(graph, batch);
  ASSERT_EQ(logits.shape(), expected.shape);
  Tensor expected_tensor(DType::f32, expected.shape);
  std::copy(expected.data.begin(), expected.data.end(), expected_tensor.data<float>());
  const double error = tessera::testing::relative_l2_error(logits, expected_tensor);
  int64_t same_top1 = 0;
  for (int64_t i = 0; i < s.images; ++i) {
    const float* a = logits.data<float>() + i * 10;
    const float* b = expected.data.data() + i * 10;
    same_top1 += std::max_element(a, a + 10) - a == std::max_element(b, b + 10) - b;
  }
  // The engine sums exact integers and scales once; the simulation sums float products in double.
  // Their last-bit differences can move an activation across a rounding boundary of the next
  // layer's quantizer now and then (one step of one input), hence a tolerance, not equality.
  std::printf("%s w%da%d %s: relative L2 error vs simulation %.3e, same top-1 %lld / %lld\n", s.model.c_str(),
              s.weight_bits, s.activation_bits, s.calibrated ? "calibrated" : "dynamic", error, (long long)same_top1,
              (long long)s.images);
  EXPECT_LT(error, 2e-3);
  EXPECT_GE(same_top1, s.images - 1);

  // The original float model is a different function: the check above is not vacuous.
  Session float_session(original, SessionOptions{2});
  const Tensor float_logits = float_session.run({{"input", batch}}).at("logits");
  EXPECT_GT(tessera::testing::relative_l2_error(float_logits, expected_tensor), 10 * error);
}

INSTANTIATE_TEST_SUITE_P(TrainedModels, BitplaneModel,
                         ::testing::Values(Setting{"lenet5", 4, 4, true, 100}, Setting{"lenet5", 8, 8, true, 100},
                                           Setting{"lenet5", 2, 3, false, 100}, Setting{"lenet5", 1, 2, true, 100},
                                           Setting{"resnet14", 4, 4, true, 16}, Setting{"resnet14", 1, 3, false, 8}),
                         [](const auto& info) {
                           return info.param.model + "_w" + std::to_string(info.param.weight_bits) + "a" +
                                  std::to_string(info.param.activation_bits) +
                                  (info.param.calibrated ? "_calibrated" : "_dynamic");
                         });

// The weight rule, re-derived: binary codes are sign(w) with scale mean|w|; multi-bit codes are
// round(w / scale) within the two's complement range and the scale beats plain max-abs scaling.
TEST(BitplaneQuantize, WeightRule) {
  const std::vector<float> w = {0.5f, -0.25f, 0.1f, -1.0f, 0.0f, 0.3f, 2.0f, -0.05f};
  const QuantizedWeights binary = quantize_weights(w.data(), 2, 4, 1);
  EXPECT_FLOAT_EQ(binary.scales[0], (0.5f + 0.25f + 0.1f + 1.0f) / 4);
  EXPECT_EQ(binary.codes, (std::vector<int32_t>{1, -1, 1, -1, 1, 1, 1, -1}));
  for (int bits : {2, 3, 4, 8}) {
    const QuantizedWeights q = quantize_weights(w.data(), 2, 4, bits);
    const int32_t qmax = (1 << (bits - 1)) - 1, qmin = -(1 << (bits - 1));
    for (int64_t r = 0; r < 2; ++r) {
      double error = 0, max_abs_error = 0;
      float max_abs = 0;
      for (int k = 0; k < 4; ++k) max_abs = std::max(max_abs, std::fabs(w[size_t(r * 4 + k)]));
      for (int k = 0; k < 4; ++k) {
        const float x = w[size_t(r * 4 + k)];
        const int32_t code = q.codes[size_t(r * 4 + k)];
        EXPECT_GE(code, qmin);
        EXPECT_LE(code, qmax);
        EXPECT_EQ(float(code), std::clamp(std::nearbyint(x / q.scales[size_t(r)]), float(qmin), float(qmax)));
        error += std::pow(x - code * q.scales[size_t(r)], 2);
        const float plain = max_abs / float(qmax);
        max_abs_error += std::pow(x - std::clamp(std::nearbyint(x / plain), float(qmin), float(qmax)) * plain, 2);
      }
      EXPECT_LE(error, max_abs_error + 1e-12) << bits;
    }
  }
}

TEST(BitplaneQuantize, BadOptionsAndFormatsGiveClearErrors) {
  Graph graph = load_onnx_model(trained_path("lenet5.onnx"));
  BitplaneOptions options;
  options.weight_bits = 9;
  EXPECT_THROW(apply_bitplane_quantization(graph, options), Error);
  options.weight_bits = 4;
  options.exclude_layers = {"no such layer"};
  EXPECT_THROW(apply_bitplane_quantization(graph, options), Error);
  // A planes tensor of the wrong shape is refused when the session plans.
  options.exclude_layers.clear();
  apply_bitplane_quantization(graph, options);
  for (Node& node : graph.nodes)
    if (node.op_type == "BitplaneMatMul") {
      Value& planes = graph.values[size_t(node.inputs[1])];
      planes.constant = Tensor(DType::u8, {planes.constant.dim(0), planes.constant.dim(1), 1});
      break;
    }
  Session session(graph, SessionOptions{1});
  try {
    session.run({{"input", Tensor(DType::f32, {1, 1, 28, 28})}});
    ADD_FAILURE() << "a bad planes tensor was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("weight planes must be uint8"), std::string::npos) << error.what();
  }
  // A calibrated zero point that is no code of the activation width is refused too.
  Graph calibrated = load_onnx_model(trained_path("lenet5.onnx"));
  BitplaneOptions calibrate;
  calibrate.calibration_inputs["input"] = first_rows(read_npy(trained_path("test_images.npy")), 8);
  apply_bitplane_quantization(calibrated, calibrate);
  for (float bad : {1e30f, -1.f, 2.5f, 16.f}) {
    Graph g = calibrated;
    for (Node& node : g.nodes)
      if (node.op_type == "BitplaneConv") {
        ASSERT_EQ(node.inputs.size(), 6u);
        g.values[size_t(node.inputs[5])].constant.data<float>()[0] = bad;
        break;
      }
    Session bad_session(g, SessionOptions{1});
    EXPECT_THROW(bad_session.run({{"input", Tensor(DType::f32, {1, 1, 28, 28})}}), Error) << bad;
  }
}
