// Operators of the lut_gemm compression method, registered in the "tessera" domain:
// LutMatMul(A, signs, alphas[, bias]) = A W^T + bias with W in BCQ form (bcq_quantize.h).
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "compression/compression_operators.h"
#include "compression/lut_gemm.h"
#include "ops/operator.h"

namespace tessera {

namespace {

// Up to this many rows of A LUT-GEMM runs on the packed weights; more rows take a GEMM on the
// weights dequantized once (made on the first such run), whose cost per row is lower.
constexpr int64_t kLutMaxRows = 16;

class LutMatMulKernel : public Kernel {
 public:
  LutMatMulKernel(compression::PackedBcq weights, std::vector<float> bias, int64_t rows_of_a)
      : weights_(std::move(weights)), bias_(std::move(bias)), rows_of_a_(rows_of_a) {}

  void run(const std::vector<const Tensor*>& inputs, const std::vector<Tensor*>& outputs,
           ExecContext& context) override {
    const float* a = inputs[0]->data<float>();
    float* y = outputs[0]->data<float>();
    const int64_t K = weights_.cols(), N = weights_.rows();
    const float* bias = bias_.empty() ? nullptr : bias_.data();
    if (rows_of_a_ <= kLutMaxRows) {
      compression::lut_gemm(weights_, rows_of_a_, a, K, bias, false, y, N, &context.pool);
      return;
    }
    std::call_once(dense_once_, [&] {
      dense_.resize(size_t(N * K));
      weights_.dequantize(dense_.data(), K);
    });
    primitives::GemmEpilogue epilogue;
    epilogue.bias_per_column = bias;
    primitives::gemm_f32(false, true, rows_of_a_, N, K, 1.f, a, K, dense_.data(), K, 0.f, y, N, &context.pool,
                         &epilogue);
  }
  double flops() const override { return 2.0 * double(rows_of_a_ * weights_.rows() * weights_.cols()); }

 private:
  compression::PackedBcq weights_;
  std::vector<float> bias_;
  int64_t rows_of_a_;
  std::once_flag dense_once_;
  std::vector<float> dense_;
};

std::unique_ptr<Kernel> create_lut_matmul(KernelCreateContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1) || !ctx.has_input(2))
    throw Error(ctx.describe() + ": needs inputs A, signs and alphas");
  const Attributes& at = ctx.node.attributes;
  const int64_t N = at.get_int("rows", 0), K = at.get_int("cols", 0);
  const int bits = int(at.get_int("bits", 0));
  const int64_t group = at.get_int("group_size", 0);
  if (N < 1 || K < 1) throw Error(ctx.describe() + ": attributes rows and cols must be positive");
  const ValueInfo& a = ctx.input(0);
  if (a.dtype != DType::f32) throw Error(ctx.describe() + ": A must be float32");
  if (a.shape.empty() || a.shape.back() != K)
    throw Error(ctx.describe() + ": A " + shape_to_string(a.shape) + " must end in cols = " + std::to_string(K));
  const Tensor& signs = ctx.constant_input(1, "signs");
  const Tensor& alphas = ctx.constant_input(2, "alphas");
  if (signs.dtype() != DType::i32 || alphas.dtype() != DType::f32)
    throw Error(ctx.describe() + ": signs must be int32 and alphas float32");
  std::vector<uint32_t> words(size_t(signs.numel()));
  std::memcpy(words.data(), signs.raw_data(), words.size() * sizeof(uint32_t));
  std::vector<float> scales(alphas.data<float>(), alphas.data<float>() + alphas.numel());
  compression::PackedBcq packed;
  try {
    packed = compression::PackedBcq(N, K, bits, group, std::move(words), std::move(scales));
  } catch (const Error& e) {
    throw Error(ctx.describe() + ": " + e.what());
  }
  std::vector<float> bias;
  if (ctx.has_input(3)) {
    const Tensor& b = ctx.constant_input(3, "bias");
    if (b.dtype() != DType::f32 || b.numel() != N)
      throw Error(ctx.describe() + ": the bias must hold " + std::to_string(N) + " floats");
    bias.assign(b.data<float>(), b.data<float>() + N);
  }
  Shape out = a.shape;
  out.back() = N;
  ctx.set_output(0, DType::f32, out);
  return std::make_unique<LutMatMulKernel>(std::move(packed), std::move(bias), shape_numel(a.shape) / K);
}

}  // namespace

void register_lut_gemm_operators(OperatorRegistry& registry) {
  registry.add("LutMatMul", 1, 1000, create_lut_matmul, "tessera");
}

}  // namespace tessera
