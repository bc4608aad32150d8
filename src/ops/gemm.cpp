// Gemm (alpha, beta, transA, transB, broadcast C) and MatMul (numpy batching and 1-D rules) on
// the GEMM primitive; a constant B is packed once at plan time, activations fuse into the epilogue.
#include <algorithm>
#include <vector>

#include "ops/broadcast.h"
#include "ops/fused_activation.h"
#include "ops/operator.h"
#include "primitives/primitives.h"

namespace tessera {

namespace {

using primitives::GemmEpilogue;

void require_f32_inputs(const KernelCreateContext& ctx, size_t count) {
  for (size_t i = 0; i < count; ++i)
    if (ctx.has_input(i) && ctx.input(i).dtype != DType::f32)
      throw Error(ctx.describe() + ": input " + std::to_string(i) + " has type " +
                  dtype_name(ctx.input(i).dtype) + "; only float32 is supported");
}

// ---------------------------------------------------------------- Gemm

// How C (already multiplied by beta) reaches the [M, N] product.
enum class BiasForm { none, per_column, per_row, full };

class GemmKernel : public Kernel {
 public:
  struct Config {
    int64_t M = 0, N = 0, K = 0;
    bool trans_a = false, trans_b = false;
    float alpha = 1.f, beta = 1.f;
    BiasForm bias_form = BiasForm::none;
    bool c_is_scalar = false;
    primitives::UnaryParams activation;
  };

  Config c;
  primitives::PackedB packed_b;       // set when B was constant
  std::vector<float> constant_bias;   // beta * C in its BiasForm layout, when C was constant

  double flops() const override { return 2.0 * double(c.M) * double(c.N) * double(c.K); }

  void run(const std::vector<const Tensor*>& inputs, const std::vector<Tensor*>& outputs,
           ExecContext& context) override {
    float* y = outputs[0]->data<float>();
    if (c.M == 0 || c.N == 0) return;
    std::vector<float> bias_scratch;
    const float* bias = bias_values(inputs, &bias_scratch);
    GemmEpilogue e;
    e.check = context.gemm_check;
    e.activation = c.activation;
    if (c.bias_form == BiasForm::per_column) e.bias_per_column = bias;
    if (c.bias_form == BiasForm::per_row) e.bias_per_row = bias;
    if (c.bias_form == BiasForm::full) {
      e.residual = bias;
      e.ld_residual = c.N;
    }
    const float* a = inputs[0]->data<float>();
    if (c.K == 0) {  // an empty sum: only the epilogue remains
      std::fill(y, y + c.M * c.N, 0.f);
      apply_epilogue_only(e, y);
      return;
    }
    if (!packed_b.empty()) {
      std::vector<float> a_rows;
      if (c.trans_a) {  // the packed path reads A row-major
        a_rows.resize(size_t(c.M * c.K));
        primitives::transpose_2d(c.K, c.M, a, c.M, a_rows.data(), c.K, sizeof(float));
        a = a_rows.data();
      }
      primitives::gemm_packed_f32(c.M, a, c.K, packed_b, y, c.N, e, &context.pool);
      return;
    }
    const float* b = inputs[1]->data<float>();
    primitives::gemm_f32(c.trans_a, c.trans_b, c.M, c.N, c.K, c.alpha, a, c.trans_a ? c.M : c.K, b,
                         c.trans_b ? c.K : c.N, 0.f, y, c.N, &context.pool, &e);
  }

 private:
  // beta * C laid out for the epilogue (vector or full matrix).
  const float* bias_values(const std::vector<const Tensor*>& inputs,
                           std::vector<float>* scratch) const {
    if (c.bias_form == BiasForm::none) return nullptr;
    if (!constant_bias.empty()) return constant_bias.data();
    const float* src = inputs[2]->data<float>();
    const int64_t n = c.bias_form == BiasForm::per_column ? c.N
                      : c.bias_form == BiasForm::per_row  ? c.M
                                                          : c.M * c.N;
    if (!c.c_is_scalar && c.beta == 1.f) return src;
    scratch->resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) (*scratch)[size_t(i)] = c.beta * src[c.c_is_scalar ? 0 : i];
    return scratch->data();
  }

  void apply_epilogue_only(const GemmEpilogue& e, float* y) const {
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t n = 0; n < c.N; ++n) {
        float& v = y[m * c.N + n];
        if (e.bias_per_column) v += e.bias_per_column[n];
        if (e.bias_per_row) v += e.bias_per_row[m];
        if (e.residual) v += e.residual[m * e.ld_residual + n];
      }
    primitives::unary_f32(e.activation, c.M * c.N, y, y);
  }
};

std::unique_ptr<Kernel> create_gemm(KernelCreateContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) throw Error(ctx.describe() + ": needs inputs A and B");
  require_f32_inputs(ctx, 3);
  const Attributes& attrs = ctx.node.attributes;
  auto kernel = std::make_unique<GemmKernel>();
  GemmKernel::Config& c = kernel->c;
  c.trans_a = attrs.get_int("transA", 0) != 0;
  c.trans_b = attrs.get_int("transB", 0) != 0;
  c.alpha = attrs.get_float("alpha", 1.f);
  c.beta = attrs.get_float("beta", 1.f);
  c.activation = fused_activation(ctx.node);
  const Shape& as = ctx.input(0).shape;
  const Shape& bs = ctx.input(1).shape;
  if (as.size() != 2 || bs.size() != 2)
    throw Error(ctx.describe() + ": A and B must be 2-D, got " + shape_to_string(as) + " and " +
                shape_to_string(bs));
  c.M = c.trans_a ? as[1] : as[0];
  c.K = c.trans_a ? as[0] : as[1];
  const int64_t kb = c.trans_b ? bs[1] : bs[0];
  c.N = c.trans_b ? bs[0] : bs[1];
  if (kb != c.K)
    throw Error(ctx.describe() + ": inner dimensions differ: A " + shape_to_string(as) +
                (c.trans_a ? " (transposed)" : "") + ", B " + shape_to_string(bs) +
                (c.trans_b ? " (transposed)" : ""));
  if (ctx.has_input(2) && c.beta != 0.f) {
    const Shape& cs = ctx.input(2).shape;
    const int64_t numel = shape_numel(cs);
    if (cs.size() > 2) throw Error(ctx.describe() + ": C must have rank <= 2");
    if (numel == 1) {
      c.bias_form = BiasForm::per_column;
      c.c_is_scalar = true;
    } else if ((cs.size() == 1 && cs[0] == c.N) || (cs.size() == 2 && cs[0] == 1 && cs[1] == c.N)) {
      c.bias_form = BiasForm::per_column;
    } else if (cs.size() == 2 && cs[0] == c.M && cs[1] == 1) {
      c.bias_form = BiasForm::per_row;
    } else if (cs.size() == 2 && cs[0] == c.M && cs[1] == c.N) {
      c.bias_form = BiasForm::full;
    } else {
      throw Error(ctx.describe() + ": C " + shape_to_string(cs) + " does not broadcast to [" +
                  std::to_string(c.M) + "," + std::to_string(c.N) + "]");
    }
    if (const Tensor* constant = ctx.input(2).constant) {
      const int64_t n = c.bias_form == BiasForm::per_column ? c.N
                        : c.bias_form == BiasForm::per_row  ? c.M
                                                            : c.M * c.N;
      const float* src = constant->data<float>();
      kernel->constant_bias.resize(size_t(n));
      for (int64_t i = 0; i < n; ++i)
        kernel->constant_bias[size_t(i)] = c.beta * src[c.c_is_scalar ? 0 : i];
    }
  }
  if (const Tensor* b = ctx.input(1).constant; b && c.K > 0 && c.N > 0) {
    const float* values = b->data<float>();
    std::vector<float> scaled;
    if (c.alpha != 1.f) {  // fold alpha into the packed weights
      scaled.assign(values, values + b->numel());
      for (float& v : scaled) v *= c.alpha;
      values = scaled.data();
    }
    kernel->packed_b = primitives::PackedB(c.K, c.N, values, c.trans_b ? c.K : c.N, c.trans_b);
  }
  ctx.set_output(0, DType::f32, {c.M, c.N});
  return kernel;
}

// ---------------------------------------------------------------- MatMul

class MatMulKernel : public Kernel {
 public:
  int64_t M = 0, N = 0, K = 0;
  int64_t batches = 1;                          // output batch count
  std::vector<int64_t> a_offsets, b_offsets;    // per output batch, in elements
  bool fold_batch_into_rows = false;            // B shared by all batches and A contiguous
  primitives::PackedB packed_b;
  primitives::UnaryParams activation;
  bool has_bias = false;  // input 2: a bias per output column (made by the fuse_matmul_bias pass)

  double flops() const override {
    return 2.0 * double(batches) * double(M) * double(N) * double(K);
  }

  void run(const std::vector<const Tensor*>& inputs, const std::vector<Tensor*>& outputs,
           ExecContext& context) override {
    const float* a = inputs[0]->data<float>();
    const float* b = inputs[1]->data<float>();
    float* y = outputs[0]->data<float>();
    if (M == 0 || N == 0 || batches == 0) return;
    GemmEpilogue e;
    e.check = context.gemm_check;
    e.activation = activation;
    const float* bias = has_bias ? inputs[2]->data<float>() : nullptr;
    e.bias_per_column = bias;
    if (K == 0) {
      for (int64_t r = 0; r < batches * M; ++r)
        for (int64_t c = 0; c < N; ++c) y[r * N + c] = bias ? bias[c] : 0.f;
      primitives::unary_f32(activation, batches * M * N, y, y);
      return;
    }
    if (fold_batch_into_rows) {
      if (!packed_b.empty())
        primitives::gemm_packed_f32(batches * M, a, K, packed_b, y, N, e, &context.pool);
      else
        primitives::gemm_f32(false, false, batches * M, N, K, 1.f, a, K, b, N, 0.f, y, N,
                             &context.pool, &e);
      return;
    }
    auto one = [&](int64_t batch, ThreadPool* pool) {
      primitives::gemm_f32(false, false, M, N, K, 1.f, a + a_offsets[size_t(batch)], K,
                           b + b_offsets[size_t(batch)], N, 0.f, y + batch * M * N, N, pool, &e);
    };
    if (batches >= context.pool.size() && batches > 1) {
      context.pool.parallel_for(batches, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) one(i, nullptr);
      });
    } else {
      for (int64_t i = 0; i < batches; ++i) one(i, &context.pool);
    }
  }
};

std::unique_ptr<Kernel> create_matmul(KernelCreateContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) throw Error(ctx.describe() + ": needs inputs A and B");
  require_f32_inputs(ctx, 2);
  Shape as = ctx.input(0).shape, bs = ctx.input(1).shape;
  if (as.empty() || bs.empty()) throw Error(ctx.describe() + ": operands must not be scalars");
  // Numpy rules: a 1-D A is a row vector, a 1-D B a column vector; the added dim is dropped.
  const bool a_vector = as.size() == 1, b_vector = bs.size() == 1;
  if (a_vector) as.insert(as.begin(), 1);
  if (b_vector) bs.push_back(1);
  auto kernel = std::make_unique<MatMulKernel>();
  kernel->M = as[as.size() - 2];
  kernel->K = as.back();
  kernel->N = bs.back();
  if (bs[bs.size() - 2] != kernel->K)
    throw Error(ctx.describe() + ": inner dimensions differ: " +
                shape_to_string(ctx.input(0).shape) + " x " + shape_to_string(ctx.input(1).shape));
  Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  Shape batch = broadcast_shapes({a_batch, b_batch}, ctx.describe());
  kernel->batches = shape_numel(batch);
  kernel->activation = fused_activation(ctx.node);
  if (ctx.has_input(2)) {
    if (ctx.input(2).dtype != DType::f32 || shape_numel(ctx.input(2).shape) != kernel->N)
      throw Error(ctx.describe() + ": the bias (input 2) must hold " + std::to_string(kernel->N) + " floats");
    kernel->has_bias = true;
  }
  const int64_t b_batch_count = shape_numel(b_batch);
  if (b_batch_count == 1) {
    // Every batch shares B: stack the batches of A as rows of one large GEMM.
    kernel->fold_batch_into_rows = true;
    if (const Tensor* b = ctx.input(1).constant; b && kernel->K > 0 && kernel->N > 0)
      kernel->packed_b = primitives::PackedB(kernel->K, kernel->N, b->data<float>(), kernel->N,
                                             false);
  } else {
    Shape a_strides = broadcast_strides(a_batch, batch), b_strides = broadcast_strides(b_batch, batch);
    const int64_t a_matrix = kernel->M * kernel->K, b_matrix = kernel->K * kernel->N;
    Shape index(batch.size(), 0);
    for (int64_t i = 0; i < kernel->batches; ++i) {
      int64_t ao = 0, bo = 0;
      for (size_t d = 0; d < batch.size(); ++d) {
        ao += index[d] * a_strides[d];
        bo += index[d] * b_strides[d];
      }
      kernel->a_offsets.push_back(ao * a_matrix);
      kernel->b_offsets.push_back(bo * b_matrix);
      for (size_t d = batch.size(); d-- > 0;) {  // odometer increment
        if (++index[d] < batch[d]) break;
        index[d] = 0;
      }
    }
  }
  Shape out = batch;
  if (!a_vector) out.push_back(kernel->M);
  if (!b_vector) out.push_back(kernel->N);
  ctx.set_output(0, DType::f32, out);
  return kernel;
}

}  // namespace

void register_gemm_operators(OperatorRegistry& registry) {
  registry.add("Gemm", 1, 22, create_gemm);
  registry.add("MatMul", 1, 22, create_matmul);
}

}  // namespace tessera
