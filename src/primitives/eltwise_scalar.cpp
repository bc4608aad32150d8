// Portable unary, binary and reduction kernels: the path for CPUs without AVX2 and the
// per-element definitions (unary_one, binary_one) that the vector kernels fall back to.
#include <algorithm>
#include <cmath>
#include <limits>

#include "primitives/kernels.h"

namespace tessera::primitives::detail {

namespace {

constexpr float kInfinity = std::numeric_limits<float>::infinity();

// exp(-|x|) never overflows, and for x < 0 the e / (1 + e) form keeps tiny results exact.
float sigmoid(float x) {
  const float e = std::exp(-std::fabs(x));
  const float s = 1.f / (1.f + e);
  return x >= 0.f ? s : e * s;
}

// log(1 + exp(x)) without overflow for large x or lost digits for very negative x.
float softplus(float x) { return std::fmax(x, 0.f) + std::log1p(std::exp(-std::fabs(x))); }

// Applies f to every element; one switch per call, then a loop the compiler can vectorize.
template <typename F>
void map(int64_t n, const float* x, float* y, F f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

}  // namespace

void unary_scalar(const UnaryParams& p, int64_t n, const float* x, float* y) {
  const float alpha = p.alpha, beta = p.beta;
  switch (p.kind) {
    case UnaryKind::identity:
      if (x != y) map(n, x, y, [](float v) { return v; });
      return;
    case UnaryKind::relu:
      return map(n, x, y, [](float v) { return v < 0.f ? 0.f : v; });
    case UnaryKind::leaky_relu:
      return map(n, x, y, [=](float v) { return v < 0.f ? alpha * v : v; });
    case UnaryKind::clip:
      return map(n, x, y, [=](float v) { return v < alpha ? alpha : (v > beta ? beta : v); });
    case UnaryKind::neg:
      return map(n, x, y, [](float v) { return -v; });
    case UnaryKind::abs:
      return map(n, x, y, [](float v) { return std::fabs(v); });
    case UnaryKind::square:
      return map(n, x, y, [](float v) { return v * v; });
    case UnaryKind::reciprocal:
      return map(n, x, y, [](float v) { return 1.f / v; });
    case UnaryKind::sqrt:
      return map(n, x, y, [](float v) { return std::sqrt(v); });
    default:
      break;
  }
  for (int64_t i = 0; i < n; ++i) y[i] = unary_one(p, x[i]);
}

namespace {

template <typename Op>
void binary_loop(int64_t n, const float* a, int64_t a_step, const float* b, int64_t b_step, float* y, Op op) {
  // Separate loops per step pattern so each one vectorizes.
  if (a_step == 1 && b_step == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] = op(a[i], b[i]);
  } else if (a_step == 1 && b_step == 0) {
    const float bv = b[0];
    for (int64_t i = 0; i < n; ++i) y[i] = op(a[i], bv);
  } else if (a_step == 0 && b_step == 1) {
    const float av = a[0];
    for (int64_t i = 0; i < n; ++i) y[i] = op(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = op(a[i * a_step], b[i * b_step]);
  }
}

}  // namespace

void reduce_rows_scalar(ReduceKind kind, int64_t rows, int64_t cols, const float* x, int64_t ldx, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * ldx;
    switch (kind) {
      case ReduceKind::sum:
      case ReduceKind::sum_squares:
      case ReduceKind::sum_abs: {
        // Eight partial sums: more accurate than one running sum, and vectorizable.
        float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t c = 0;
        for (; c + 8 <= cols; c += 8) {
          for (int j = 0; j < 8; ++j) {
            const float v = row[c + j];
            partial[j] += kind == ReduceKind::sum           ? v
                          : kind == ReduceKind::sum_squares ? v * v
                                                            : std::fabs(v);
          }
        }
        float total = 0.f;
        for (; c < cols; ++c) {
          const float v = row[c];
          total += kind == ReduceKind::sum ? v : kind == ReduceKind::sum_squares ? v * v : std::fabs(v);
        }
        for (int j = 0; j < 8; ++j) total += partial[j];
        y[r] = total;
        break;
      }
      case ReduceKind::max: {
        float m = -kInfinity;
        for (int64_t c = 0; c < cols; ++c) m = row[c] > m ? row[c] : m;
        y[r] = m;
        break;
      }
      case ReduceKind::min: {
        float m = kInfinity;
        for (int64_t c = 0; c < cols; ++c) m = row[c] < m ? row[c] : m;
        y[r] = m;
        break;
      }
      case ReduceKind::prod: {
        float p = 1.f;
        for (int64_t c = 0; c < cols; ++c) p *= row[c];
        y[r] = p;
        break;
      }
      case ReduceKind::log_sum_exp: {
        float m = -kInfinity;
        for (int64_t c = 0; c < cols; ++c) m = row[c] > m ? row[c] : m;
        if (m == -kInfinity || m == kInfinity) {
          y[r] = m;  // all -inf (or empty), or an inf that dominates
          break;
        }
        float s = 0.f;
        for (int64_t c = 0; c < cols; ++c) s += std::exp(row[c] - m);
        y[r] = m + std::log(s);
        break;
      }
    }
  }
}

void reduce_cols_scalar(ReduceKind kind, int64_t rows, int64_t cols, const float* x, int64_t ldx, float* y) {
  float init = 0.f;
  if (kind == ReduceKind::max || kind == ReduceKind::log_sum_exp) init = -kInfinity;
  if (kind == ReduceKind::min) init = kInfinity;
  if (kind == ReduceKind::prod) init = 1.f;
  for (int64_t c = 0; c < cols; ++c) y[c] = init;
  // Row by row so every pass reads x contiguously.
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * ldx;
    for (int64_t c = 0; c < cols; ++c) {
      const float v = row[c];
      switch (kind) {
        case ReduceKind::sum:
          y[c] += v;
          break;
        case ReduceKind::sum_squares:
          y[c] += v * v;
          break;
        case ReduceKind::sum_abs:
          y[c] += std::fabs(v);
          break;
        case ReduceKind::max:
        case ReduceKind::log_sum_exp:
          y[c] = v > y[c] ? v : y[c];
          break;
        case ReduceKind::min:
          y[c] = v < y[c] ? v : y[c];
          break;
        case ReduceKind::prod:
          y[c] *= v;
          break;
      }
    }
  }
  if (kind != ReduceKind::log_sum_exp) return;
  // Second pass for log-sum-exp in column chunks, with the sums on the stack.
  constexpr int64_t kChunk = 64;
  for (int64_t c0 = 0; c0 < cols; c0 += kChunk) {
    const int64_t width = cols - c0 < kChunk ? cols - c0 : kChunk;
    float sums[kChunk] = {};
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = x + r * ldx + c0;
      for (int64_t c = 0; c < width; ++c) sums[c] += std::exp(row[c] - y[c0 + c]);
    }
    for (int64_t c = 0; c < width; ++c) {
      const float m = y[c0 + c];
      if (m != -kInfinity && m != kInfinity) y[c0 + c] = m + std::log(sums[c]);
    }
  }
}

float unary_one(const UnaryParams& p, float x) {
  const float alpha = p.alpha, beta = p.beta;
  switch (p.kind) {
    case UnaryKind::identity:
      return x;
    case UnaryKind::relu:
      return x < 0.f ? 0.f : x;
    case UnaryKind::leaky_relu:
      return x < 0.f ? alpha * x : x;
    case UnaryKind::elu:
      return x < 0.f ? alpha * std::expm1(x) : x;
    case UnaryKind::selu:
      return x <= 0.f ? beta * alpha * std::expm1(x) : beta * x;
    case UnaryKind::sigmoid:
      return sigmoid(x);
    case UnaryKind::tanh:
      return std::tanh(x);
    case UnaryKind::exp:
      return std::exp(x);
    case UnaryKind::log:
      return std::log(x);
    case UnaryKind::sqrt:
      return std::sqrt(x);
    case UnaryKind::erf:
      return std::erf(x);
    case UnaryKind::neg:
      return -x;
    case UnaryKind::abs:
      return std::fabs(x);
    case UnaryKind::reciprocal:
      return 1.f / x;
    case UnaryKind::clip:
      return x < alpha ? alpha : (x > beta ? beta : x);
    case UnaryKind::hard_sigmoid:
      return std::fmax(0.f, std::fmin(1.f, alpha * x + beta));
    case UnaryKind::hard_swish:
      return x * std::fmax(0.f, std::fmin(1.f, x * (1.f / 6.f) + 0.5f));
    case UnaryKind::gelu_erf:
      // In double: x / sqrt 2 rounded in float would cost ~|x|^2 ulps in erfc's tail; erfc
      // (not 1 + erf) keeps the digits for negative x.
      return float(0.5 * x * std::erfc(-double(x) * 0.70710678118654752));
    case UnaryKind::gelu_tanh: {
      // 0.5 (1 + tanh u) == sigmoid(2u), which has no cancellation for negative x.
      const double u = 0.79788456080286536 * (x + 0.044715 * double(x) * x * x);
      return float(x / (1.0 + std::exp(-2.0 * u)));
    }
    case UnaryKind::softplus:
      return softplus(x);
    case UnaryKind::floor:
      return std::floor(x);
    case UnaryKind::ceil:
      return std::ceil(x);
    case UnaryKind::round:
      return std::nearbyint(x);  // default rounding: half to even
    case UnaryKind::sign:
      return x > 0.f ? 1.f : (x < 0.f ? -1.f : (x == 0.f ? 0.f : x));
    case UnaryKind::sin:
      return std::sin(x);
    case UnaryKind::cos:
      return std::cos(x);
    case UnaryKind::square:
      return x * x;
    case UnaryKind::mish:
      return x * std::tanh(softplus(x));
    case UnaryKind::silu:
      return x * sigmoid(x);
  }
  return x;
}

float binary_one(BinaryKind kind, float a, float b) {
  switch (kind) {
    case BinaryKind::add:
      return a + b;
    case BinaryKind::sub:
      return a - b;
    case BinaryKind::mul:
      return a * b;
    case BinaryKind::div:
      return a / b;
    case BinaryKind::pow:
      return std::pow(a, b);
    case BinaryKind::max:
      return a > b ? a : b;
    case BinaryKind::min:
      return a < b ? a : b;
    case BinaryKind::prelu:
      return a < 0.f ? a * b : a;
  }
  return a;
}

void binary_row_scalar(BinaryKind kind, int64_t n, const float* a, int64_t a_step, const float* b,
                       int64_t b_step, float* y) {
  switch (kind) {
    case BinaryKind::add:
      return binary_loop(n, a, a_step, b, b_step, y, [](float u, float v) { return u + v; });
    case BinaryKind::sub:
      return binary_loop(n, a, a_step, b, b_step, y, [](float u, float v) { return u - v; });
    case BinaryKind::mul:
      return binary_loop(n, a, a_step, b, b_step, y, [](float u, float v) { return u * v; });
    case BinaryKind::div:
      return binary_loop(n, a, a_step, b, b_step, y, [](float u, float v) { return u / v; });
    case BinaryKind::max:
      return binary_loop(n, a, a_step, b, b_step, y, [](float u, float v) { return u > v ? u : v; });
    case BinaryKind::min:
      return binary_loop(n, a, a_step, b, b_step, y, [](float u, float v) { return u < v ? u : v; });
    case BinaryKind::prelu:
      return binary_loop(n, a, a_step, b, b_step, y, [](float u, float v) { return u < 0.f ? u * v : u; });
    case BinaryKind::pow:
      if (b_step == 0) {
        // Common constant exponents (x^2 in decomposed norms, x^0.5) skip the general pow.
        const float e = b[0];
        if (e == 2.f) return binary_loop(n, a, a_step, b, 0, y, [](float u, float) { return u * u; });
        if (e == 1.f) return binary_loop(n, a, a_step, b, 0, y, [](float u, float) { return u; });
        if (e == 0.5f) return binary_loop(n, a, a_step, b, 0, y, [](float u, float) { return std::sqrt(u); });
        if (e == 3.f) return binary_loop(n, a, a_step, b, 0, y, [](float u, float) { return u * u * u; });
      }
      return binary_loop(n, a, a_step, b, b_step, y, [](float u, float v) { return std::pow(u, v); });
  }
}

void add_layer_norm_rows_scalar(int64_t rows, int64_t cols, const float* x, const float* residual, int64_t ld,
                                float* sum_out, const float* scale, const float* bias, float epsilon, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ld;
    float* v = sum_out ? sum_out + r * ld : y + r * ld;
    float* yr = y + r * ld;
    float total = 0;
    for (int64_t i = 0; i < cols; ++i) {
      v[i] = residual ? xr[i] + residual[r * ld + i] : xr[i];
      total += v[i];
    }
    const float mean = total / float(cols);
    float squares = 0;
    for (int64_t i = 0; i < cols; ++i) squares += (v[i] - mean) * (v[i] - mean);
    const float inv_std = 1.f / std::sqrt(squares / float(cols) + epsilon);
    for (int64_t i = 0; i < cols; ++i) yr[i] = (v[i] - mean) * inv_std * scale[i] + (bias ? bias[i] : 0.f);
  }
}

void online_softmax_block_scalar(int64_t rows, int64_t cols, float* scores, int64_t ld, float* row_max,
                                 float* row_sum, float* rescale) {
  for (int64_t r = 0; r < rows; ++r) {
    float* x = scores + r * ld;
    float m = row_max[r];
    for (int64_t j = 0; j < cols; ++j) m = std::max(m, x[j]);
    if (m == -std::numeric_limits<float>::infinity()) {  // nothing visible yet
      std::fill(x, x + cols, 0.f);
      rescale[r] = 1.f;
      continue;
    }
    rescale[r] = std::exp(row_max[r] - m);
    row_max[r] = m;
    float sum = 0.f;
    for (int64_t j = 0; j < cols; ++j) {
      const float shifted = x[j] - m;
      sum += x[j] = std::exp(shifted < kSoftmaxFlushBelow ? kSoftmaxFlushedTo : shifted);
    }
    row_sum[r] = row_sum[r] * rescale[r] + sum;
  }
}

float apply_epilogue_one(const GemmEpilogue& e, int64_t row, int64_t col, float v) {
  if (e.bias_per_column) v += e.bias_per_column[col];
  if (e.bias_per_row) v += e.bias_per_row[row];
  if (e.residual) v += e.residual[row * e.ld_residual + col];
  if (e.activation.kind != UnaryKind::identity) v = unary_one(e.activation, v);
  return v;
}

constinit const EltwiseKernels kEltwiseScalar = {unary_scalar,           binary_row_scalar,
                                                 reduce_rows_scalar,     reduce_cols_scalar,
                                                 online_softmax_block_scalar, add_layer_norm_rows_scalar,
                                                 transpose_4byte_scalar};

}  // namespace tessera::primitives::detail
