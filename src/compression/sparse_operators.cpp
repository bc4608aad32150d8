// Operators of the sparse compression method, in the "tessera" domain: SparseConv and
// SparseMatMul, whose pruned weights arrive as constant inputs in CSR or N:M form (see sparse_compress.h).
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "compression/compression_operators.h"
#include "compression/sparse_compress.h"
#include "compression/sparse_gemm.h"
#include "ops/fused_activation.h"
#include "ops/operator.h"
#include "ops/spatial_geometry.h"

namespace tessera {

namespace {

// The compressed weights of one node: a [rows = outputs, cols = reduction] matrix in either form.
struct SparseWeights {
  bool is_csr = true;
  sparse::CsrMatrix csr;
  sparse::NOfMMatrix n_of_m;
  int64_t rows() const { return is_csr ? csr.rows : n_of_m.rows; }
  int64_t stored() const { return is_csr ? csr.nonzeros() : int64_t(n_of_m.value.size()); }
  void multiply(int64_t n, const float* x, int64_t ldx, float* y, int64_t ldy, const sparse::SparseEpilogue& e,
                ThreadPool* pool) const {
    if (is_csr) sparse::csr_gemm(csr, n, x, ldx, y, ldy, e, pool);
    else sparse::n_of_m_gemm(n_of_m, n, x, ldx, y, ldy, e, pool);
  }
};

template <typename T>
std::vector<T> tensor_values(const Tensor& t, DType dtype, const KernelCreateContext& ctx, const char* what) {
  if (t.dtype() != dtype)
    throw Error(ctx.describe() + ": " + what + " must be " + dtype_name(dtype) + ", got " + dtype_name(t.dtype()));
  const Tensor c = t.is_contiguous() ? t : t.clone();
  return std::vector<T>(c.data<T>(), c.data<T>() + c.numel());
}

// Reads inputs 1..3 (values, indices, row offsets) and the format attributes into weights of
// rows x cols; every inconsistency is one error naming the node.
SparseWeights read_weights(const KernelCreateContext& ctx, int64_t rows, int64_t cols) {
  const Attributes& a = ctx.node.attributes;
  const std::string format = a.get_string(kSparseFormatAttribute, "");
  SparseWeights w;
  std::vector<float> values = tensor_values<float>(ctx.constant_input(1, "sparse values"), DType::f32, ctx, "values");
  try {
    if (format == kSparseFormatCsr) {
      w.is_csr = true;
      w.csr = sparse::CsrMatrix::from_arrays(
          rows, cols, tensor_values<int64_t>(ctx.constant_input(3, "row offsets"), DType::i64, ctx, "row offsets"),
          tensor_values<int32_t>(ctx.constant_input(2, "column indices"), DType::i32, ctx, "column indices"),
          std::move(values));
    } else if (format == kSparseFormatNOfM) {
      w.is_csr = false;
      w.n_of_m = sparse::NOfMMatrix::from_arrays(
          rows, cols, int(a.get_int("n", 0)), int(a.get_int("m", 0)), std::move(values),
          tensor_values<uint8_t>(ctx.constant_input(2, "group offsets"), DType::u8, ctx, "group offsets"));
    } else {
      throw Error("unknown format '" + format + "' (expected " + kSparseFormatCsr + " or " + kSparseFormatNOfM + ")");
    }
  } catch (const ValueRequiredError&) {
    throw;
  } catch (const Error& e) {
    throw Error(ctx.describe() + ": " + e.what());
  }
  return w;
}

void require_f32(const KernelCreateContext& ctx, size_t i, const char* what) {
  if (!ctx.has_input(i)) throw Error(ctx.describe() + ": missing " + what);
  if (ctx.input(i).dtype != DType::f32)
    throw Error(ctx.describe() + ": " + what + " has type " + dtype_name(ctx.input(i).dtype) + "; only float32 is supported");
}

thread_local std::vector<float> column_scratch, transposed_scratch, product_scratch;
float* scratch(std::vector<float>& buffer, size_t floats) {
  if (buffer.size() < floats) buffer.resize(floats);
  return buffer.data();
}

// ---------------------------------------------------------------- SparseConv

constexpr int64_t kColumnBudgetFloats = 128 * 1024;  // one im2col tile (512 KiB) stays in L2

class SparseConvKernel : public Kernel {
 public:
  SparseWeights weights;
  SpatialGeometry g;
  int64_t batch = 0, in_channels = 0, out_channels = 0;
  bool pointwise = false, has_bias = false;
  int residual_input = -1;
  primitives::UnaryParams activation;

  double flops() const override { return 2.0 * double(batch) * double(weights.stored()) * double(g.output_size()); }

  void run(const std::vector<const Tensor*>& inputs, const std::vector<Tensor*>& outputs,
           ExecContext& context) override {
    const float* x = inputs[0]->data<float>();
    const float* bias = has_bias ? inputs[4]->data<float>() : nullptr;
    const float* residual = residual_input >= 0 ? inputs[size_t(residual_input)]->data<float>() : nullptr;
    float* y = outputs[0]->data<float>();
    const int64_t out_plane = g.output_size(), out_w = g.output[2], out_rows = g.output[1];
    const int64_t k = in_channels * g.kernel_size();
    const int64_t tile_rows = pointwise ? out_rows
                                        : std::clamp<int64_t>(kColumnBudgetFloats / std::max<int64_t>(1, k * out_w), 1, out_rows);
    auto image = [&](int64_t n, ThreadPool* pool) {
      const float* x_image = x + n * in_channels * g.input_size();
      for (int64_t r0 = 0; r0 < out_rows; r0 += tile_rows) {
        const int64_t r1 = std::min(out_rows, r0 + tile_rows), columns = (r1 - r0) * out_w;
        const float* operand = x_image + r0 * out_w;
        int64_t ld_operand = g.input_size();
        if (!pointwise) {
          float* col = scratch(column_scratch, size_t(k * columns));
          im2col(x_image, r0, r1, col);
          operand = col;
          ld_operand = columns;
        }
        const int64_t offset = n * out_channels * out_plane + r0 * out_w;
        sparse::SparseEpilogue e;
        e.bias_per_row = bias;
        e.residual = residual ? residual + offset : nullptr;
        e.ld_residual = out_plane;
        e.activation = activation;
        weights.multiply(columns, operand, ld_operand, y + offset, out_plane, e, pool);
      }
    };
    ThreadPool& pool = context.pool;
    if (batch >= pool.size() && batch > 1) {  // whole images per thread: im2col runs in parallel too
      pool.parallel_for(batch, [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) image(n, nullptr);
      });
    } else {
      for (int64_t n = 0; n < batch; ++n) image(n, &pool);
    }
  }

 private:
  // col[(ci, kh, kw), (r - r0) * W_out + ow] for output rows [r0, r1) of one image (2-D or 1-D).
  // Per horizontal tap, only the output columns [column_lo, column_hi) read inside the image:
  // the rest are zero (padding), the inside a copy (stride 1) or a strided gather.
  void im2col(const float* x_image, int64_t r0, int64_t r1, float* col) const {
    const int64_t out_w = g.output[2], columns = (r1 - r0) * out_w;
    int64_t row = 0;
    for (int64_t ci = 0; ci < in_channels; ++ci) {
      const float* plane = x_image + ci * g.input_size();
      for (int64_t kh = 0; kh < g.kernel[1]; ++kh)
        for (int64_t kw = 0; kw < g.kernel[2]; ++kw, ++row) {
          float* dst = col + row * columns;
          const int64_t tap = kw * g.dilation[2] - g.pad_begin[2];
          const int64_t lo = column_lo[size_t(kw)], hi = column_hi[size_t(kw)];
          for (int64_t r = r0; r < r1; ++r) {
            const int64_t ih = r * g.stride[1] + kh * g.dilation[1] - g.pad_begin[1];
            float* out = dst + (r - r0) * out_w;
            if (ih < 0 || ih >= g.input[1] || lo >= hi) {
              std::fill(out, out + out_w, 0.f);
              continue;
            }
            const float* src = plane + ih * g.input[2];
            std::fill(out, out + lo, 0.f);
            if (g.stride[2] == 1) {
              std::memcpy(out + lo, src + lo + tap, size_t(hi - lo) * sizeof(float));
            } else {
              for (int64_t ow = lo; ow < hi; ++ow) out[ow] = src[ow * g.stride[2] + tap];
            }
            std::fill(out + hi, out + out_w, 0.f);
          }
        }
    }
  }

 public:
  std::vector<int64_t> column_lo, column_hi;  // per horizontal tap, set by create_sparse_conv
};

std::unique_ptr<Kernel> create_sparse_conv(KernelCreateContext& ctx) {
  require_f32(ctx, 0, "input X");
  const Shape& xs = ctx.input(0).shape;
  const std::vector<int64_t> weight_shape = ctx.node.attributes.get_ints(kSparseWeightShapeAttribute);
  if (xs.size() < 3 || xs.size() > 4 || weight_shape.size() != xs.size())
    throw Error(ctx.describe() + ": needs a 1-D or 2-D input (N x C x spatial) and a weight_shape of the same rank, got " +
                shape_to_string(xs) + " and " + shape_to_string(weight_shape));
  if (ctx.node.attributes.get_int("group", 1) != 1)
    throw Error(ctx.describe() + ": only group = 1 is supported");
  auto kernel = std::make_unique<SparseConvKernel>();
  kernel->batch = xs[0];
  kernel->in_channels = xs[1];
  kernel->out_channels = weight_shape[0];
  if (weight_shape[1] != xs[1])
    throw Error(ctx.describe() + ": weights expect " + std::to_string(weight_shape[1]) + " input channels, input has " +
                std::to_string(xs[1]));
  kernel->g = resolve_window_geometry(ctx, std::vector<int64_t>(xs.begin() + 2, xs.end()),
                                      std::vector<int64_t>(weight_shape.begin() + 2, weight_shape.end()), WindowOptions{});
  const SpatialGeometry& g = kernel->g;
  for (int64_t kw = 0; kw < g.kernel[2]; ++kw) {
    int64_t lo, hi;
    valid_output_range(g.input[2], g.output[2], g.stride[2], kw * g.dilation[2] - g.pad_begin[2], &lo, &hi);
    kernel->column_lo.push_back(lo);
    kernel->column_hi.push_back(hi);
  }
  kernel->pointwise = g.kernel_size() == 1 && g.stride[1] == 1 && g.stride[2] == 1 && g.pad_begin[1] == 0 &&
                      g.pad_begin[2] == 0 && g.pad_end[1] == 0 && g.pad_end[2] == 0;
  kernel->weights = read_weights(ctx, kernel->out_channels, kernel->in_channels * g.kernel_size());
  Shape out_shape = {kernel->batch, kernel->out_channels};
  for (int64_t v : g.output_dims()) out_shape.push_back(v);
  if (ctx.has_input(4)) {
    require_f32(ctx, 4, "bias");
    if (shape_numel(ctx.input(4).shape) != kernel->out_channels)
      throw Error(ctx.describe() + ": the bias must hold " + std::to_string(kernel->out_channels) + " values");
    kernel->has_bias = true;
  }
  const int64_t residual = ctx.node.attributes.get_int("tessera.residual_input", -1);
  if (residual >= 0) {
    if (residual < 5 || !ctx.has_input(size_t(residual)) || ctx.input(size_t(residual)).shape != out_shape)
      throw Error(ctx.describe() + ": tessera.residual_input must name an input of the output's shape " +
                  shape_to_string(out_shape));
    require_f32(ctx, size_t(residual), "residual input");
    kernel->residual_input = int(residual);
  }
  kernel->activation = fused_activation(ctx.node);
  ctx.set_output(0, DType::f32, out_shape);
  return kernel;
}

// ---------------------------------------------------------------- SparseMatMul

// Y[..., N] = A[..., K] B with B [K, N] stored as the sparse W = B^T [N, K]: Y^T = W A^T.
class SparseMatMulKernel : public Kernel {
 public:
  SparseWeights weights;
  int64_t rows = 0, K = 0, N = 0;
  bool has_bias = false;
  primitives::UnaryParams activation;

  double flops() const override { return 2.0 * double(rows) * double(weights.stored()); }

  void run(const std::vector<const Tensor*>& inputs, const std::vector<Tensor*>& outputs,
           ExecContext& context) override {
    const float* a = inputs[0]->data<float>();
    float* y = outputs[0]->data<float>();
    sparse::SparseEpilogue e;
    e.bias_per_row = has_bias ? inputs[4]->data<float>() : nullptr;
    e.activation = activation;
    if (rows == 0 || N == 0) return;
    if (rows == 1) {  // a vector: A^T and Y^T are the same memory
      weights.multiply(1, a, 1, y, 1, e, &context.pool);
      return;
    }
    float* a_t = scratch(transposed_scratch, size_t(K * rows));
    float* y_t = scratch(product_scratch, size_t(N * rows));
    primitives::transpose_2d(rows, K, a, K, a_t, rows, sizeof(float));
    weights.multiply(rows, a_t, rows, y_t, rows, e, &context.pool);
    primitives::transpose_2d(N, rows, y_t, rows, y, N, sizeof(float));
  }
};

std::unique_ptr<Kernel> create_sparse_matmul(KernelCreateContext& ctx) {
  require_f32(ctx, 0, "input A");
  const Shape& as = ctx.input(0).shape;
  const std::vector<int64_t> weight_shape = ctx.node.attributes.get_ints(kSparseWeightShapeAttribute);
  if (as.empty() || weight_shape.size() != 2)
    throw Error(ctx.describe() + ": needs an input of rank >= 1 and a 2-D weight_shape [K, N]");
  auto kernel = std::make_unique<SparseMatMulKernel>();
  kernel->K = weight_shape[0];
  kernel->N = weight_shape[1];
  if (as.back() != kernel->K)
    throw Error(ctx.describe() + ": input " + shape_to_string(as) + " does not end in K = " + std::to_string(kernel->K));
  kernel->rows = shape_numel(as) / std::max<int64_t>(1, kernel->K);
  if (kernel->K == 0) kernel->rows = shape_numel(Shape(as.begin(), as.end() - 1));
  kernel->weights = read_weights(ctx, kernel->N, kernel->K);
  if (ctx.has_input(4)) {
    require_f32(ctx, 4, "bias");
    if (shape_numel(ctx.input(4).shape) != kernel->N)
      throw Error(ctx.describe() + ": the bias must hold " + std::to_string(kernel->N) + " values");
    kernel->has_bias = true;
  }
  kernel->activation = fused_activation(ctx.node);
  Shape out = as;
  out.back() = kernel->N;
  ctx.set_output(0, DType::f32, out);
  return kernel;
}

}  // namespace

void register_sparse_operators(OperatorRegistry& registry) {
  registry.add(kSparseConvOp, 1, 1000, create_sparse_conv, "tessera");
  registry.add(kSparseMatMulOp, 1, 1000, create_sparse_matmul, "tessera");
}

}  // namespace tessera
