// The BCQ graph rewrite: MatMul/Gemm with constant weights become tessera.LutMatMul nodes whose
// packed signs and scales are constants; a Session runs the result, checked against a plain
// float computation with the weights decoded here from those constants (batch rows on the LUT
// path and past it), on every ISA.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "compression/bcq_quantize.h"
#include "tessera/error.h"
#include "tessera/npy.h"
#include "tessera/onnx.h"
#include "tessera/session.h"
#include "test_support.h"

namespace tessera {
namespace {

Tensor constant_tensor(Shape shape, uint32_t seed, float scale) {
  Tensor t = testing::random_tensor(shape, seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] *= scale;
  return t;
}

const Value& input_value(const Graph& g, const Node& n, size_t i) { return g.values[size_t(n.inputs[i])]; }

// W [rows, cols] decoded from a LutMatMul node's constants, following the documented layout
// (blocks of 16 rows; per 32-column word and plane one 32-bit word per row, bit c % 32 = sign
// of column c; alphas [block][group][plane][16]).
std::vector<float> decode_weights(const Graph& g, const Node& n) {
  const int64_t rows = n.attributes.get_int("rows", 0), cols = n.attributes.get_int("cols", 0);
  const int bits = int(n.attributes.get_int("bits", 0));
  const int64_t group = n.attributes.get_int("group_size", 0);
  const Tensor& signs = input_value(g, n, 1).constant;
  const Tensor& alphas = input_value(g, n, 2).constant;
  const int64_t words = (cols + 31) / 32, groups = (cols + group - 1) / group;
  std::vector<float> w(size_t(rows * cols), 0.f);
  for (int64_t r = 0; r < rows; ++r)
    for (int i = 0; i < bits; ++i)
      for (int64_t c = 0; c < cols; ++c) {
        uint32_t word;
        std::memcpy(&word, signs.data<int32_t>() + ((r / 16 * words + c / 32) * bits + i) * 16 + r % 16, 4);
        const float a = alphas.data<float>()[((r / 16 * groups + c / group) * bits + i) * 16 + r % 16];
        w[size_t(r * cols + c)] += (word >> (c % 32) & 1u) ? a : -a;
      }
  return w;
}

// y = x W^T + bias, rows of x of width cols.
std::vector<double> plain_linear(const std::vector<double>& x, int64_t rows_of_x, const std::vector<float>& w,
                                 int64_t n_out, int64_t cols, const std::vector<float>& bias) {
  std::vector<double> y(size_t(rows_of_x * n_out));
  for (int64_t m = 0; m < rows_of_x; ++m)
    for (int64_t j = 0; j < n_out; ++j) {
      double s = bias.empty() ? 0.0 : bias[size_t(j)];
      for (int64_t k = 0; k < cols; ++k) s += x[size_t(m * cols + k)] * w[size_t(j * cols + k)];
      y[size_t(m * n_out + j)] = s;
    }
  return y;
}

TEST(BcqGraphRewrite, SessionRunsLutMatMulAndMatchesPlainFloatOnDecodedWeights) {
  constexpr int64_t K = 100, H = 70, N = 40;
  for (int bits : {2, 3, 4}) {
    SCOPED_TRACE("bits " + std::to_string(bits));
    GraphBuilder b;
    const int x = b.input("x", {-1, K});
    b.g.values[size_t(x)].dims[0] = Dim{-1, "batch"};
    const int w1 = b.constant("w1", constant_tensor({K, H}, 1, 0.1f));
    const int b1 = b.constant("b1", constant_tensor({H}, 2, 0.1f));
    const int w2 = b.constant("w2", constant_tensor({N, H}, 3, 0.1f));
    const int c2 = b.constant("c2", constant_tensor({N}, 4, 0.1f));
    const int h = b.node("Relu", {b.node("Add", {b.node("MatMul", {x, w1}), b1})});
    Attributes gemm;
    gemm.set_int("transB", 1);
    gemm.set_float("alpha", 0.5f);
    gemm.set_float("beta", 2.f);
    const int y = b.node("Gemm", {h, w2, c2}, gemm);
    b.g.outputs = {y};
    const Tensor bias2 = b.g.values[size_t(c2)].constant.clone();
    const Tensor bias1 = b.g.values[size_t(b1)].constant.clone();

    Graph graph = b.g;
    compression::BcqQuantizeOptions options;
    options.bcq = compression::BcqOptions{bits, 32, 5};
    const compression::BcqQuantizeReport report = compression::apply_bcq_quantization(graph, options);
    ASSERT_EQ(report.rewritten, 2);
    EXPECT_LT(report.bcq_weight_bytes, report.f32_weight_bytes);
    std::vector<const Node*> luts;
    for (const Node& n : graph.nodes)
      if (n.op_type == "LutMatMul") {
        EXPECT_EQ(n.domain, "tessera");
        luts.push_back(&n);
      }
    ASSERT_EQ(luts.size(), 2u);
    EXPECT_FALSE(graph.values[size_t(graph.find_value("w1"))].is_constant()) << "the f32 weights are dropped";
    const std::vector<float> wq1 = decode_weights(graph, *luts[0]), wq2 = decode_weights(graph, *luts[1]);
    // The BCQ weights are close to the originals (3 and 4 bits), scaled by alpha for the Gemm.
    std::vector<float> bias2_scaled(static_cast<size_t>(N));
    for (int64_t j = 0; j < N; ++j) bias2_scaled[size_t(j)] = 2.f * bias2.data<float>()[j];
    const std::vector<float> bias1_v(bias1.data<float>(), bias1.data<float>() + H);

    Session session(graph, SessionOptions{2});
    for (int64_t batch : {1, 3, 16, 40}) {
      const Tensor input = testing::random_tensor({batch, K}, 10 + uint32_t(batch));
      std::vector<double> xv(input.data<float>(), input.data<float>() + input.numel());
      std::vector<double> hidden = plain_linear(xv, batch, wq1, H, K, bias1_v);
      for (double& v : hidden) v = std::max(0.0, v);
      const std::vector<double> expected = plain_linear(hidden, batch, wq2, N, H, bias2_scaled);
      testing::for_each_isa([&](primitives::Isa) {
        auto out = session.run({{"x", input}});
        const Tensor& got = out.begin()->second;
        ASSERT_EQ(got.shape(), (Shape{batch, N}));
        for (int64_t i = 0; i < batch * N; ++i)
          ASSERT_NEAR(got.data<float>()[i], expected[size_t(i)], 1e-4 + 1e-4 * std::fabs(expected[size_t(i)]))
              << "batch " << batch << " element " << i;
      });
    }
  }
}

TEST(BcqGraphRewrite, LeavesWhatItCannotRewriteAndRejectsBadOptions) {
  GraphBuilder b;
  const int x = b.input("x", {2, 8});
  const int w = b.input("w", {8, 4});  // not a constant
  b.g.outputs = {b.node("MatMul", {x, w})};
  Graph graph = b.g;
  const auto report = compression::apply_bcq_quantization(graph, {});
  EXPECT_EQ(report.rewritten, 0);
  EXPECT_EQ(report.skipped, 1);
  EXPECT_EQ(graph.nodes[0].op_type, "MatMul");
  compression::BcqQuantizeOptions bad;
  bad.bcq.bits = 7;
  EXPECT_THROW(compression::apply_bcq_quantization(graph, bad), Error);
}

TEST(BcqGraphRewrite, MalformedLutMatMulIsOneClearError) {
  GraphBuilder b;
  const int x = b.input("x", {2, 64});
  Attributes at;
  at.set_int("rows", 16);
  at.set_int("cols", 64);
  at.set_int("bits", 2);
  at.set_int("group_size", 32);
  const int signs = b.constant("signs", Tensor(DType::i32, {3}));  // needs 16 * 2 * 2 = 64
  const int alphas = b.constant("alphas", Tensor(DType::f32, {64}));
  b.g.outputs = {b.node("LutMatMul", {x, signs, alphas}, at)};
  b.g.nodes.back().domain = "tessera";
  try {
    Session session(b.g, SessionOptions{1});
    session.run({{"x", Tensor(DType::f32, {2, 64})}});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("signs"), std::string::npos) << e.what();
  }
}

// The trained Fashion-MNIST MLP (scripts/train_fashion_mnist_mlp.py): Tessera's f32 logits match
// PyTorch's on the 1000 committed test images; with its three Gemm layers in 4-bit BCQ (groups of
// 64) the accuracy on those images stays within one point of PyTorch's f32 accuracy.
TEST(BcqGraphRewrite, TrainedMlpKeepsItsAccuracyAtFourBits) {
  const std::string dir = testing::source_path("models/trained/");
  const Tensor images = read_npy(dir + "test_images.npy");
  const Tensor labels = read_npy(dir + "test_labels.npy");
  const Tensor reference = read_npy(dir + "mlp_logits.npy");
  const int64_t count = images.dim(0);
  ASSERT_EQ(reference.shape(), (Shape{count, 10}));
  auto correct_of = [&](const Tensor& logits) {
    int64_t correct = 0;
    for (int64_t i = 0; i < count; ++i) {
      const float* l = logits.data<float>() + i * 10;
      correct += (std::max_element(l, l + 10) - l) == labels.data<int64_t>()[i];
    }
    return correct;
  };
  Graph graph = load_onnx_model(dir + "mlp.onnx");
  {
    Session f32(graph, SessionOptions{2});
    const Tensor logits = f32.run({{"input", images}}).at("logits");
    EXPECT_LT(testing::relative_l2_error(logits, reference), 1e-4);
  }
  compression::BcqQuantizeOptions options;
  options.bcq = compression::BcqOptions{4, 64, 20};
  const auto report = compression::apply_bcq_quantization(graph, options);
  EXPECT_EQ(report.rewritten, 3);
  Session bcq(graph, SessionOptions{2});
  // Batches of 16: the LUT-GEMM path.
  Tensor logits(DType::f32, {count, 10});
  for (int64_t begin = 0; begin < count; begin += 16) {
    const int64_t n = std::min<int64_t>(16, count - begin);
    Tensor batch(DType::f32, {n, 1, 28, 28});
    std::memcpy(batch.raw_data(), images.data<float>() + begin * 784, size_t(n * 784) * sizeof(float));
    const Tensor out = bcq.run({{"input", batch}}).at("logits");
    std::memcpy(logits.data<float>() + begin * 10, out.raw_data(), out.nbytes());
  }
  const int64_t pytorch = correct_of(reference), ours = correct_of(logits);
  std::printf("mlp on %lld test images: PyTorch f32 %lld correct, BCQ 4-bit g64 %lld\n", (long long)count,
              (long long)pytorch, (long long)ours);
  EXPECT_GE(ours, pytorch - count / 100);
}

}  // namespace
}  // namespace tessera
