// Checks every primitive of every ISA this CPU has (scalar, AVX2, AVX-512) against plain loops
// written here, on odd sizes and tails, broadcasts, transposes and every epilogue part.
#include "primitives/primitives.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "test_support.h"

namespace prim = tessera::primitives;
using prim::BinaryKind;
using prim::Isa;
using prim::ReduceKind;
using prim::UnaryKind;
using prim::UnaryParams;

namespace {

using tessera::testing::for_each_isa;

std::vector<float> random_vector(size_t n, uint32_t seed, float low = -1.f, float high = 1.f) {
  return tessera::testing::random_floats(n, seed, low, high);
}

const int64_t kSizes[] = {1, 2, 3, 5, 7, 13, 16, 17, 31, 33, 64, 100, 129};

// ------------------------------------------------------------------ unary reference (double)
double sigmoid_ref(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double softplus_ref(double x) { return x > 30 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

double unary_ref(const UnaryParams& p, double x) {
  const double a = p.alpha, b = p.beta;
  switch (p.kind) {
    case UnaryKind::identity:
      return x;
    case UnaryKind::relu:
      return x < 0 ? 0 : x;
    case UnaryKind::leaky_relu:
      return x < 0 ? a * x : x;
    case UnaryKind::elu:
      return x < 0 ? a * std::expm1(x) : x;
    case UnaryKind::selu:
      return x <= 0 ? b * a * std::expm1(x) : b * x;
    case UnaryKind::sigmoid:
      return sigmoid_ref(x);
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
      return 1.0 / x;
    case UnaryKind::clip:
      return std::min(std::max(x, a), b);
    case UnaryKind::hard_sigmoid:
      return std::max(0.0, std::min(1.0, a * x + b));
    case UnaryKind::hard_swish:
      return x * std::max(0.0, std::min(1.0, x / 6 + 0.5));
    case UnaryKind::gelu_erf:
      return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
    case UnaryKind::gelu_tanh: {
      // 0.5 x (1 + tanh u) written as x * sigmoid(2u), which keeps its digits for x << 0.
      const double u = std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
      return x * sigmoid_ref(2 * u);
    }
    case UnaryKind::softplus:
      return softplus_ref(x);
    case UnaryKind::floor:
      return std::floor(x);
    case UnaryKind::ceil:
      return std::ceil(x);
    case UnaryKind::round:
      return std::nearbyint(x);
    case UnaryKind::sign:
      return x > 0 ? 1 : (x < 0 ? -1 : 0);
    case UnaryKind::sin:
      return std::sin(x);
    case UnaryKind::cos:
      return std::cos(x);
    case UnaryKind::square:
      return x * x;
    case UnaryKind::mish:
      return x * std::tanh(softplus_ref(x));
    case UnaryKind::silu:
      return x * sigmoid_ref(x);
  }
  return x;
}

struct UnaryCase {
  UnaryKind kind;
  const char* name;
  float alpha, beta;
  float low, high;  // input range
  double rtol;      // relative tolerance
  double atol;      // absolute floor, for results that cancel to ~0 in float arithmetic
};

// Tolerances: 1e-5 relative wherever the float result is computed without cancellation. The
// hard_* and clip-style kinds get an absolute floor of a few ulps of |x|, because alpha*x+beta
// rounds before the clamp and the product can cross zero. The vector exp/erf/tanh/log keep a
// relative error near 1e-6 (checked tighter in VectorMathAccuracy below).
const UnaryCase kUnaryCases[] = {
    {UnaryKind::identity, "identity", 0, 0, -10, 10, 0, 0},
    {UnaryKind::relu, "relu", 0, 0, -10, 10, 0, 0},
    {UnaryKind::leaky_relu, "leaky_relu", 0.1f, 0, -10, 10, 1e-6, 0},
    {UnaryKind::elu, "elu", 1.3f, 0, -12, 5, 1e-5, 1e-30},
    {UnaryKind::selu, "selu", 1.6732632f, 1.0507010f, -12, 5, 1e-5, 1e-30},
    {UnaryKind::sigmoid, "sigmoid", 0, 0, -30, 30, 1e-5, 1e-30},
    {UnaryKind::tanh, "tanh", 0, 0, -12, 12, 1e-5, 1e-30},
    {UnaryKind::exp, "exp", 0, 0, -85, 85, 1e-5, 1e-30},
    {UnaryKind::log, "log", 0, 0, 1e-6f, 1e4f, 1e-5, 1e-7},
    {UnaryKind::sqrt, "sqrt", 0, 0, 0, 100, 1e-6, 0},
    {UnaryKind::erf, "erf", 0, 0, -5, 5, 1e-5, 1e-30},
    {UnaryKind::neg, "neg", 0, 0, -10, 10, 0, 0},
    {UnaryKind::abs, "abs", 0, 0, -10, 10, 0, 0},
    {UnaryKind::reciprocal, "reciprocal", 0, 0, 0.05f, 20, 1e-6, 0},
    {UnaryKind::clip, "clip", -0.5f, 2.5f, -5, 5, 0, 0},
    {UnaryKind::hard_sigmoid, "hard_sigmoid", 0.2f, 0.5f, -6, 6, 1e-5, 1e-6},
    {UnaryKind::hard_swish, "hard_swish", 0, 0, -6, 6, 1e-5, 1e-6},
    {UnaryKind::gelu_erf, "gelu_erf", 0, 0, -12, 8, 1e-5, 1e-30},
    // u = c (x + 0.044715 x^3) is rounded in float, so the tail x << 0, where the result is
    // ~exp(2u), carries about |2u| ulps: the range stops where that reaches 1e-5.
    {UnaryKind::gelu_tanh, "gelu_tanh", 0, 0, -6, 8, 1e-5, 1e-30},
    {UnaryKind::softplus, "softplus", 0, 0, -30, 30, 1e-5, 1e-30},
    {UnaryKind::floor, "floor", 0, 0, -10, 10, 0, 0},
    {UnaryKind::ceil, "ceil", 0, 0, -10, 10, 0, 0},
    {UnaryKind::round, "round", 0, 0, -10, 10, 0, 0},
    {UnaryKind::sign, "sign", 0, 0, -10, 10, 0, 0},
    {UnaryKind::sin, "sin", 0, 0, -10, 10, 1e-5, 1e-6},
    {UnaryKind::cos, "cos", 0, 0, -10, 10, 1e-5, 1e-6},
    {UnaryKind::square, "square", 0, 0, -10, 10, 1e-6, 0},
    {UnaryKind::mish, "mish", 0, 0, -20, 20, 1e-5, 1e-30},
    {UnaryKind::silu, "silu", 0, 0, -30, 30, 1e-5, 1e-30},
};

// Inputs over [low, high] plus the values where kernels switch branches or round.
std::vector<float> unary_inputs(const UnaryCase& c, size_t n, uint32_t seed) {
  std::vector<float> x = random_vector(n, seed, c.low, c.high);
  const float specials[] = {0.f,   -0.f,   0.5f,   -0.5f,   1.5f,  -1.5f,  2.5f, -2.5f,
                            1e-4f, -1e-4f, 3e-3f,  -3e-3f,  0.9f,  -0.9f,  1.1f, -1.1f,
                            3.f,   -3.f,   0.125f, -0.125f, 1e-7f, -1e-7f, 0.3f, -0.3f};
  size_t i = 0;
  for (float s : specials) {
    if (i >= n) break;
    if (s >= c.low && s <= c.high) x[i++] = s;
  }
  return x;
}

void check_unary(const UnaryCase& c, const std::vector<float>& x, const std::vector<float>& y) {
  const UnaryParams p{c.kind, c.alpha, c.beta};
  int failures = 0;
  for (size_t i = 0; i < x.size() && failures < 5; ++i) {
    const double ref = unary_ref(p, x[i]);
    const double err = std::fabs(double(y[i]) - ref);
    if (!(err <= c.rtol * std::fabs(ref) + c.atol)) {
      ++failures;
      ADD_FAILURE() << c.name << "(" << x[i] << ") = " << y[i] << ", expected " << ref << " (index " << i
                    << " of " << x.size() << ")";
    }
  }
}

// ------------------------------------------------------------------ GEMM reference (double)
struct GemmCheck {
  std::vector<double> value;  // reference result
  std::vector<double> bound;  // sum of |terms|, which scales the rounding error
};

// op(A)[m, k] with A row-major (lda); op = transpose when trans.
float at(const std::vector<float>& a, bool trans, int64_t ld, int64_t row, int64_t col) {
  return trans ? a[col * ld + row] : a[row * ld + col];
}

void expect_matrix_near(int64_t M, int64_t N, const float* C, int64_t ldc, const GemmCheck& ref,
                        int64_t ld_ref, double rtol, const std::string& what) {
  int failures = 0;
  for (int64_t m = 0; m < M && failures < 5; ++m) {
    for (int64_t n = 0; n < N && failures < 5; ++n) {
      const double want = ref.value[m * ld_ref + n];
      const double got = C[m * ldc + n];
      const double tol = rtol * ref.bound[m * ld_ref + n] + 1e-6;
      if (!(std::fabs(got - want) <= tol)) {
        ++failures;
        ADD_FAILURE() << what << ": C[" << m << "," << n << "] = " << got << ", expected " << want;
      }
    }
  }
}

// relu(A B + bias + residual) in double, with A [M, K] row-major, B [K, N] (or [N, K] when
// transposed_b) with leading dimension ldb, the bias per row (M) or per column (N) and the
// residual [M, N]: the reference of the threaded-driver tests.
GemmCheck bias_residual_relu_reference(int64_t M, int64_t N, int64_t K, const std::vector<float>& A,
                                       const std::vector<float>& B, int64_t ldb, bool transposed_b,
                                       const std::vector<float>& bias, bool bias_per_row,
                                       const std::vector<float>& residual) {
  GemmCheck ref{std::vector<double>(size_t(M * N)), std::vector<double>(size_t(M * N))};
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double sum = double(bias[size_t(bias_per_row ? m : n)]) + residual[size_t(m * N + n)];
      double bound = std::fabs(sum);
      for (int64_t k = 0; k < K; ++k) {
        const double b = transposed_b ? B[size_t(n * ldb + k)] : B[size_t(k * ldb + n)];
        const double t = double(A[size_t(m * K + k)]) * b;
        sum += t, bound += std::fabs(t);
      }
      ref.value[size_t(m * N + n)] = sum < 0 ? 0 : sum;
      ref.bound[size_t(m * N + n)] = bound;
    }
  }
  return ref;
}

// relu(A B + bias + residual) through the epilogue of the packed (plan-time B) or the general
// entry point, on `pool`, into a C with leading dimension ldc prefilled with 7: the values against
// the double reference, and the columns past N untouched.
void check_bias_residual_relu_product(int64_t M, int64_t N, int64_t K, const std::vector<float>& A,
                                      const std::vector<float>& B, int64_t ldb, bool transposed_b,
                                      const std::vector<float>& bias, bool bias_per_row,
                                      const std::vector<float>& residual, int64_t ldc, bool packed,
                                      tessera::ThreadPool* pool, const char* what) {
  const GemmCheck ref = bias_residual_relu_reference(M, N, K, A, B, ldb, transposed_b, bias, bias_per_row, residual);
  prim::GemmEpilogue e;
  (bias_per_row ? e.bias_per_row : e.bias_per_column) = bias.data();
  e.residual = residual.data();
  e.ld_residual = N;
  e.activation.kind = UnaryKind::relu;
  std::vector<float> C(size_t(M * ldc), 7.f);
  if (packed) {
    prim::PackedB packed_b(K, N, B.data(), ldb, transposed_b);
    prim::gemm_packed_f32(M, A.data(), K, packed_b, C.data(), ldc, e, pool);
  } else {
    prim::gemm_f32(false, transposed_b, M, N, K, 1.f, A.data(), K, B.data(), ldb, 0.f, C.data(), ldc, pool, &e);
  }
  expect_matrix_near(M, N, C.data(), ldc, ref, N, 1e-5, what);
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = N; n < ldc; ++n) ASSERT_EQ(C[size_t(m * ldc + n)], 7.f) << what << ": past N written";
  }
}

}  // namespace

// ------------------------------------------------------------------------------ dispatch
TEST(Primitives, IsaDetectionAndOverride) {
  const Isa detected = prim::detected_isa();
  EXPECT_LE(int(prim::active_isa()), int(detected));
  const Isa saved = prim::active_isa();
  EXPECT_EQ(prim::set_isa(Isa::scalar), Isa::scalar);
  EXPECT_EQ(prim::active_isa(), Isa::scalar);
  // Asking for more than the CPU has is clamped.
  EXPECT_EQ(prim::set_isa(Isa::avx512), detected);
  prim::set_isa(saved);
  EXPECT_STREQ(prim::isa_name(Isa::avx2), "avx2");
}

// ------------------------------------------------------------------------------ unary
// The extension flags agree with the kernel's view of the CPU (/proc/cpuinfo), an independent
// reading of CPUID, and vanish when the ISA is lowered.
TEST(Primitives, CpuExtensionsMatchProcCpuinfo) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, flags;
  while (std::getline(cpuinfo, line))
    if (line.rfind("flags", 0) == 0) {
      flags = " " + line.substr(line.find(':') + 1) + " ";
      break;
    }
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo flags";
  auto has = [&](const char* flag) {
    std::string needle = " ";
    needle.append(flag).push_back(' ');
    return flags.find(needle) != std::string::npos;
  };
  const auto& found = prim::detected_extensions();
  if (prim::detected_isa() == prim::Isa::avx512) {
    EXPECT_EQ(found.avx512_vnni, has("avx512_vnni"));
    EXPECT_EQ(found.avx512_vpopcntdq, has("avx512_vpopcntdq"));
    EXPECT_EQ(found.avx512_bitalg, has("avx512_bitalg"));
    EXPECT_EQ(found.avx512_bf16, has("avx512_bf16"));
  }
  const prim::Isa before = prim::active_isa();
  prim::set_isa(prim::Isa::avx2);
  const auto lowered = prim::active_extensions();
  EXPECT_FALSE(lowered.avx512_vnni || lowered.avx512_vpopcntdq || lowered.avx512_bitalg || lowered.avx512_bf16);
  prim::set_isa(before);
}

TEST(Primitives, UnaryAllKindsWithTails) {
  for_each_isa([](Isa) {
    for (const UnaryCase& c : kUnaryCases) {
      SCOPED_TRACE(c.name);
      for (size_t n : {size_t(1), size_t(3), size_t(15), size_t(16), size_t(17), size_t(31), size_t(40),
                       size_t(67), size_t(1000)}) {
        const auto x = unary_inputs(c, n, uint32_t(n * 31 + int(c.kind)));
        std::vector<float> y(n + 1, 12345.f);
        prim::unary_f32({c.kind, c.alpha, c.beta}, int64_t(n), x.data(), y.data());
        EXPECT_EQ(y[n], 12345.f) << "wrote past the end";
        y.resize(n);
        check_unary(c, x, y);
        // In place (x and y alias) gives the same values.
        std::vector<float> z = x;
        prim::unary_f32({c.kind, c.alpha, c.beta}, int64_t(n), z.data(), z.data());
        EXPECT_EQ(0, std::memcmp(z.data(), y.data(), n * sizeof(float))) << "in place differs";
      }
    }
  });
}

// Layer normalization rows, with and without the residual add, bias and sum output, in place,
// against the same formula in double (mean, centred variance) on every ISA; row tails included.
TEST(Primitives, AddLayerNormRowsMatchesDoubleReference) {
  for_each_isa([](Isa) {
    for (int64_t cols : {int64_t(1), int64_t(5), int64_t(16), int64_t(17), int64_t(70), int64_t(768)}) {
      for (int variant = 0; variant < 4; ++variant) {
        const bool with_residual = variant & 1, with_bias = variant & 2;
        SCOPED_TRACE("cols " + std::to_string(cols) + " variant " + std::to_string(variant));
        const int64_t rows = 3, ld = cols + 5;
        const auto x = random_vector(size_t(rows * ld), uint32_t(cols * 7 + variant), -3.f, 5.f);
        const auto res = random_vector(size_t(rows * ld), uint32_t(cols * 11 + variant), -2.f, 2.f);
        const auto scale = random_vector(size_t(cols), 5, 0.5f, 1.5f), bias = random_vector(size_t(cols), 6);
        std::vector<float> y(size_t(rows * ld), -7.f), sum(size_t(rows * ld), -7.f);
        prim::add_layer_norm_rows_f32(rows, cols, x.data(), with_residual ? res.data() : nullptr, ld,
                                      with_residual ? sum.data() : nullptr, scale.data(),
                                      with_bias ? bias.data() : nullptr, 1e-5f, y.data());
        for (int64_t r = 0; r < rows; ++r) {
          std::vector<double> v(static_cast<size_t>(cols));
          double mean = 0, var = 0;
          for (int64_t i = 0; i < cols; ++i) {
            v[size_t(i)] = double(x[size_t(r * ld + i)]) + (with_residual ? double(res[size_t(r * ld + i)]) : 0.0);
            mean += v[size_t(i)];
          }
          mean /= double(cols);
          for (double e : v) var += (e - mean) * (e - mean);
          var /= double(cols);
          for (int64_t i = 0; i < cols; ++i) {
            const double want = (v[size_t(i)] - mean) / std::sqrt(var + 1e-5) * scale[size_t(i)] +
                                (with_bias ? bias[size_t(i)] : 0.0);
            EXPECT_NEAR(y[size_t(r * ld + i)], want, 2e-5 * (1 + std::fabs(want))) << "row " << r << " col " << i;
            if (with_residual) EXPECT_EQ(sum[size_t(r * ld + i)], float(x[size_t(r * ld + i)] + res[size_t(r * ld + i)]));
          }
          for (int64_t i = cols; i < ld; ++i) {  // padding untouched
            EXPECT_EQ(y[size_t(r * ld + i)], -7.f);
            EXPECT_EQ(sum[size_t(r * ld + i)], -7.f);
          }
        }
        // In place: y over x gives the same values.
        std::vector<float> z = x;
        prim::add_layer_norm_rows_f32(rows, cols, z.data(), with_residual ? res.data() : nullptr, ld, nullptr,
                                      scale.data(), with_bias ? bias.data() : nullptr, 1e-5f, z.data());
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t i = 0; i < cols; ++i) EXPECT_EQ(z[size_t(r * ld + i)], y[size_t(r * ld + i)]);
      }
    }
  });
}

// Two key blocks of an online softmax, against the softmax of the whole row in double: the
// weights after the second block, rescaled first-block weights, row sums and maxima; rows that
// see nothing in a block (all -inf) and scores far below the maximum (flushed to 0).
TEST(Primitives, OnlineSoftmaxBlockMatchesWholeRowSoftmax) {
  for_each_isa([](Isa) {
    const float inf = std::numeric_limits<float>::infinity();
    for (int64_t cols : {int64_t(1), int64_t(7), int64_t(16), int64_t(17), int64_t(40), int64_t(128), int64_t(131)}) {
      SCOPED_TRACE("cols " + std::to_string(cols));
      const int64_t rows = 5, ld = cols + 3;
      std::vector<float> first = random_vector(size_t(rows * ld), uint32_t(cols), -6.f, 6.f);
      std::vector<float> second = random_vector(size_t(rows * ld), uint32_t(cols + 100), -6.f, 6.f);
      for (int64_t j = 0; j < cols; ++j) first[size_t(1 * ld + j)] = -inf;        // row 1: nothing in block 1
      first[size_t(2 * ld)] = 200.f;                                               // row 2: the rest flush to 0
      for (int64_t j = 0; j < cols; ++j) second[size_t(3 * ld + j)] = -inf;       // row 3: nothing in block 2
      const std::vector<float> first_in = first, second_in = second;
      std::vector<float> row_max(rows, -inf), row_sum(rows, 0.f), rescale1(rows), rescale2(rows);
      prim::online_softmax_block_f32(rows, cols, first.data(), ld, row_max.data(), row_sum.data(), rescale1.data());
      prim::online_softmax_block_f32(rows, cols, second.data(), ld, row_max.data(), row_sum.data(), rescale2.data());
      for (int64_t r = 0; r < rows; ++r) {
        SCOPED_TRACE("row " + std::to_string(r));
        double m = -inf;
        for (int64_t j = 0; j < cols; ++j)
          m = std::max({m, double(first_in[size_t(r * ld + j)]), double(second_in[size_t(r * ld + j)])});
        double sum = 0;
        for (int64_t j = 0; j < cols; ++j)
          sum += std::exp(first_in[size_t(r * ld + j)] - m) + std::exp(second_in[size_t(r * ld + j)] - m);
        EXPECT_EQ(row_max[size_t(r)], float(m));
        EXPECT_NEAR(row_sum[size_t(r)], sum, 1e-5 * sum);
        for (int64_t j = 0; j < cols; ++j) {
          // A first-block weight times the second block's rescale is its weight at the final max.
          const double want1 = std::exp(first_in[size_t(r * ld + j)] - m);
          const double got1 = double(first[size_t(r * ld + j)]) * rescale2[size_t(r)];
          const double want2 = std::exp(second_in[size_t(r * ld + j)] - m);
          const double got2 = second[size_t(r * ld + j)];
          EXPECT_NEAR(got1, want1, 2e-6 * std::max(1.0, want1)) << "first block, column " << j;
          EXPECT_NEAR(got2, want2, 2e-6 * std::max(1.0, want2)) << "second block, column " << j;
        }
        for (int64_t j = cols; j < ld; ++j) {  // the padding past each row is untouched
          EXPECT_EQ(first[size_t(r * ld + j)], first_in[size_t(r * ld + j)]);
          EXPECT_EQ(second[size_t(r * ld + j)], second_in[size_t(r * ld + j)]);
        }
      }
      EXPECT_EQ(rescale1[1], 1.f);  // nothing visible: weights are zeros and the factor is 1
      for (int64_t j = 0; j < cols; ++j) EXPECT_EQ(first[size_t(1 * ld + j)], 0.f);
      for (int64_t j = 1; j < cols; ++j) EXPECT_EQ(first[size_t(2 * ld + j)], 0.f) << "not flushed";
    }
  });
}

// Tight relative error of the vector transcendental functions over wide ranges.
TEST(Primitives, VectorMathAccuracy) {
  struct Range {
    UnaryKind kind;
    float low, high;
    double rtol;
  };
  const Range ranges[] = {
      {UnaryKind::exp, -87, 88, 2e-6},       {UnaryKind::exp, -1, 1, 1e-6},
      {UnaryKind::log, 1e-30f, 1e30f, 2e-6}, {UnaryKind::log, 0.5f, 2, 2e-6},
      {UnaryKind::tanh, -1, 1, 2e-6},        {UnaryKind::tanh, -0.01f, 0.01f, 2e-6},
      {UnaryKind::erf, -1, 1, 2e-6},         {UnaryKind::erf, -4, 4, 2e-6},
      {UnaryKind::sigmoid, -80, 20, 2e-6},   {UnaryKind::gelu_erf, -12, 13, 4e-6},
      {UnaryKind::gelu_tanh, -5, 13, 4e-6},  {UnaryKind::silu, -80, 80, 2e-6},
      {UnaryKind::softplus, -80, 80, 2e-6},  {UnaryKind::mish, -40, 40, 4e-6},
      {UnaryKind::elu, -0.01f, 0.01f, 2e-6},
  };
  for_each_isa([&](Isa) {
    for (const Range& r : ranges) {
      const size_t n = 20000;
      std::vector<float> x(n), y(n);
      // Log-spaced magnitudes for the log range, uniform otherwise.
      std::mt19937 rng(int(r.kind) * 7 + 1);
      std::uniform_real_distribution<double> u(0, 1);
      for (size_t i = 0; i < n; ++i) {
        x[i] = r.kind == UnaryKind::log
                   ? float(std::exp(std::log(r.low) + u(rng) * (std::log(r.high) - std::log(r.low))))
                   : float(r.low + u(rng) * (r.high - r.low));
      }
      const UnaryParams p{r.kind, 1.f, 0.f};
      prim::unary_f32(p, int64_t(n), x.data(), y.data());
      double worst = 0;
      float worst_x = 0;
      for (size_t i = 0; i < n; ++i) {
        const double ref = unary_ref(p, x[i]);
        if (ref == 0 || !std::isnormal(float(ref))) continue;  // subnormal results: no rel bound
        const double rel = std::fabs(y[i] - ref) / std::fabs(ref);
        if (rel > worst) worst = rel, worst_x = x[i];
      }
      EXPECT_LE(worst, r.rtol) << "kind " << int(r.kind) << " worst at x=" << worst_x;
    }
  });
}

TEST(Primitives, UnarySpecialValues) {
  const float inf = INFINITY, nan = NAN;
  for_each_isa([&](Isa) {
    float x[] = {inf,  -inf, nan, 0.f,    1e-40f,  -1e-40f, 100.f,  -100.f, inf,
                 -inf, nan,  0.f, 1e-40f, -1e-40f, 100.f,   -100.f, 7.f};
    const int n = int(sizeof(x) / sizeof(x[0]));
    float y[n];
    prim::unary_f32({UnaryKind::exp}, n, x, y);
    EXPECT_EQ(y[0], inf);
    EXPECT_EQ(y[1], 0.f);
    EXPECT_TRUE(std::isnan(y[2]));
    EXPECT_EQ(y[3], 1.f);
    EXPECT_EQ(y[6], inf);
    EXPECT_LT(y[7], 1e-40f);  // exp(-100) is subnormal
    EXPECT_GE(y[7], 0.f);
    prim::unary_f32({UnaryKind::tanh}, n, x, y);
    EXPECT_EQ(y[0], 1.f);
    EXPECT_EQ(y[1], -1.f);
    EXPECT_TRUE(std::isnan(y[2]));
    EXPECT_EQ(y[6], 1.f);
    EXPECT_EQ(y[7], -1.f);
    prim::unary_f32({UnaryKind::sigmoid}, n, x, y);
    EXPECT_EQ(y[0], 1.f);
    EXPECT_EQ(y[1], 0.f);
    EXPECT_EQ(y[3], 0.5f);
    prim::unary_f32({UnaryKind::log}, n, x, y);
    EXPECT_EQ(y[0], inf);
    EXPECT_TRUE(std::isnan(y[1]));
    EXPECT_EQ(y[3], -inf);
    EXPECT_NEAR(y[4], std::log(1e-40), 1e-4);  // subnormal input
    EXPECT_TRUE(std::isnan(y[5]));
    prim::unary_f32({UnaryKind::erf}, n, x, y);
    EXPECT_EQ(y[0], 1.f);
    EXPECT_EQ(y[1], -1.f);
    EXPECT_EQ(y[6], 1.f);
    prim::unary_f32({UnaryKind::relu}, n, x, y);
    EXPECT_EQ(y[0], inf);
    EXPECT_EQ(y[1], 0.f);
    prim::unary_f32({UnaryKind::gelu_erf}, n, x, y);
    EXPECT_EQ(y[6], 100.f);
    EXPECT_EQ(y[7], -0.f);
  });
}

// ------------------------------------------------------------------------------ binary
TEST(Primitives, BinaryAllKindsAndBroadcasts) {
  const BinaryKind kinds[] = {BinaryKind::add, BinaryKind::sub, BinaryKind::mul, BinaryKind::div,
                              BinaryKind::pow, BinaryKind::max, BinaryKind::min, BinaryKind::prelu};
  // (row stride, col stride) patterns relative to a dense [rows, cols] operand.
  enum Pattern { dense, row_vector, col_vector, scalar, strided };
  const Pattern patterns[] = {dense, row_vector, col_vector, scalar, strided};
  for_each_isa([&](Isa) {
    uint32_t seed = 1;
    for (BinaryKind kind : kinds) {
      for (Pattern pa : patterns) {
        for (Pattern pb : patterns) {
          for (auto [rows, cols] :
               {std::pair<int64_t, int64_t>{1, 1}, {3, 17}, {5, 33}, {2, 100}, {7, 1}, {4, 16}}) {
            SCOPED_TRACE("kind " + std::to_string(int(kind)) + " a " + std::to_string(pa) + " b " +
                         std::to_string(pb) + " " + std::to_string(rows) + "x" + std::to_string(cols));
            auto make = [&](Pattern p, std::vector<float>& storage, int64_t& rs, int64_t& cs) {
              switch (p) {
                case dense:
                  rs = cols, cs = 1;
                  break;
                case row_vector:
                  rs = 0, cs = 1;
                  break;
                case col_vector:
                  rs = 1, cs = 0;
                  break;
                case scalar:
                  rs = 0, cs = 0;
                  break;
                case strided:
                  rs = 3 * cols + 1, cs = 2;
                  break;
              }
              storage =
                  random_vector(size_t(rows * std::max<int64_t>(rs, 1) + cols * cs + 4), seed++, -2.f, 2.f);
            };
            std::vector<float> a, b;
            int64_t ars = 0, acs = 0, brs = 0, bcs = 0;
            make(pa, a, ars, acs);
            make(pb, b, brs, bcs);
            if (kind == BinaryKind::pow) {
              for (auto& v : a) v = std::fabs(v) + 0.1f;  // real-valued pow
              if (pb == scalar) b[0] = seed % 2 ? 2.f : 1.7f;
            }
            if (kind == BinaryKind::div) {
              for (auto& v : b) v = v < 0 ? v - 0.5f : v + 0.5f;
            }
            const int64_t ldy = cols + 3;
            std::vector<float> y(size_t(rows * ldy), -777.f);
            prim::binary_f32(kind, rows, cols, a.data(), ars, acs, b.data(), brs, bcs, y.data(), ldy);
            int failures = 0;
            for (int64_t r = 0; r < rows; ++r) {
              for (int64_t c = 0; c < ldy; ++c) {
                const float got = y[r * ldy + c];
                if (c >= cols) {
                  EXPECT_EQ(got, -777.f) << "wrote into the row padding";
                  continue;
                }
                const double av = a[r * ars + c * acs], bv = b[r * brs + c * bcs];
                double want = 0;
                switch (kind) {
                  case BinaryKind::add:
                    want = av + bv;
                    break;
                  case BinaryKind::sub:
                    want = av - bv;
                    break;
                  case BinaryKind::mul:
                    want = av * bv;
                    break;
                  case BinaryKind::div:
                    want = av / bv;
                    break;
                  case BinaryKind::pow:
                    want = std::pow(av, bv);
                    break;
                  case BinaryKind::max:
                    want = std::max(av, bv);
                    break;
                  case BinaryKind::min:
                    want = std::min(av, bv);
                    break;
                  case BinaryKind::prelu:
                    want = av < 0 ? av * bv : av;
                    break;
                }
                if (!(std::fabs(got - want) <= 1e-6 * std::fabs(want) + 1e-7) && failures++ < 3) {
                  ADD_FAILURE() << "y[" << r << "," << c << "] = " << got << " want " << want;
                }
              }
            }
          }
        }
      }
    }
  });
}

TEST(Primitives, BinaryInPlace) {
  for_each_isa([](Isa) {
    auto a = random_vector(203, 5), b = random_vector(203, 6);
    auto expected = a;
    for (size_t i = 0; i < a.size(); ++i) expected[i] = a[i] * b[i];
    prim::binary_f32(BinaryKind::mul, 1, 203, a.data(), 0, 1, b.data(), 0, 1, a.data(), 203);
    EXPECT_EQ(0, std::memcmp(a.data(), expected.data(), a.size() * sizeof(float)));
  });
}

// ------------------------------------------------------------------------------ reduce
TEST(Primitives, ReduceRowsAndColsWithTails) {
  const ReduceKind kinds[] = {ReduceKind::sum,         ReduceKind::max,     ReduceKind::min,
                              ReduceKind::sum_squares, ReduceKind::sum_abs, ReduceKind::prod,
                              ReduceKind::log_sum_exp};
  for_each_isa([&](Isa) {
    for (ReduceKind kind : kinds) {
      for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1},
                                {3, 7},
                                {5, 16},
                                {2, 17},
                                {4, 33},
                                {7, 64},
                                {3, 129},
                                {2, 1000},
                                {70, 5},
                                {33, 100}}) {
        SCOPED_TRACE("kind " + std::to_string(int(kind)) + " " + std::to_string(rows) + "x" +
                     std::to_string(cols));
        const int64_t ldx = cols + 5;
        // prod stays finite with factors near 1.
        auto x = kind == ReduceKind::prod ? random_vector(size_t(rows * ldx), 9, 0.8f, 1.2f)
                                          : random_vector(size_t(rows * ldx), 9, -3.f, 3.f);
        auto reduce = [&](const std::vector<double>& v, double& scale) {
          double acc = 0, m = -INFINITY, lo = INFINITY, p = 1;
          scale = 0;
          for (double e : v) {
            acc += kind == ReduceKind::sum_squares ? e * e : kind == ReduceKind::sum_abs ? std::fabs(e) : e;
            scale += kind == ReduceKind::sum_squares ? e * e : std::fabs(e);
            m = std::max(m, e), lo = std::min(lo, e), p *= e;
          }
          switch (kind) {
            case ReduceKind::max:
              return m;
            case ReduceKind::min:
              return lo;
            case ReduceKind::prod:
              scale = std::fabs(p) * double(v.size());
              return p;
            case ReduceKind::log_sum_exp: {
              double s = 0;
              for (double e : v) s += std::exp(e - m);
              scale = std::fabs(m) + 1;
              return m + std::log(s);
            }
            default:
              return acc;
          }
        };
        std::vector<float> y(size_t(rows) + 1, 4242.f);
        prim::reduce_rows_f32(kind, rows, cols, x.data(), ldx, y.data());
        EXPECT_EQ(y[rows], 4242.f);
        for (int64_t r = 0; r < rows; ++r) {
          std::vector<double> v(x.begin() + r * ldx, x.begin() + r * ldx + cols);
          double scale;
          const double want = reduce(v, scale);
          EXPECT_NEAR(y[r], want, 2e-6 * scale + 1e-6) << "row " << r;
        }
        std::vector<float> yc(size_t(cols) + 1, 4242.f);
        prim::reduce_cols_f32(kind, rows, cols, x.data(), ldx, yc.data());
        EXPECT_EQ(yc[cols], 4242.f);
        for (int64_t c = 0; c < cols; ++c) {
          std::vector<double> v;
          for (int64_t r = 0; r < rows; ++r) v.push_back(x[r * ldx + c]);
          double scale;
          const double want = reduce(v, scale);
          EXPECT_NEAR(yc[c], want, 2e-6 * scale + 1e-6) << "col " << c;
        }
      }
    }
  });
}

// ------------------------------------------------------------------------------ transpose
// Every element size, on every ISA (4-byte elements take the register-block kernels: shapes
// with whole 16 x 16 and 8 x 8 blocks and with edges of each side); the bits of each element
// arrive as they were and nothing is written beside the destination's rows.
TEST(Primitives, TransposeAllElementSizes) {
  for_each_isa([](Isa) {
    for (size_t element : {size_t(1), size_t(2), size_t(3), size_t(4), size_t(8), size_t(16)}) {
      for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {3, 5}, {33, 17}, {64, 100}, {129, 7}, {8, 8},
                                {16, 16}, {32, 48}, {17, 31}, {40, 9}, {128, 64}}) {
        const int64_t ld_src = cols + 2, ld_dst = rows + 3;
        std::vector<unsigned char> src(size_t(rows * ld_src) * element),
            dst(size_t(cols * ld_dst) * element, 0xee);
        for (size_t i = 0; i < src.size(); ++i) src[i] = (unsigned char)(i * 7 + i / 13);
        prim::transpose_2d(rows, cols, src.data(), ld_src, dst.data(), ld_dst, element);
        for (int64_t c = 0; c < cols; ++c) {
          for (int64_t r = 0; r < rows; ++r) {
            ASSERT_EQ(0, std::memcmp(&dst[size_t(c * ld_dst + r) * element],
                                     &src[size_t(r * ld_src + c) * element], element))
                << "element " << element << " at " << r << "," << c << " of " << rows << "x" << cols;
          }
          for (int64_t r = rows; r < ld_dst; ++r)
            for (size_t byte = 0; byte < element; ++byte)
              ASSERT_EQ(dst[size_t(c * ld_dst + r) * element + byte], 0xee) << "wrote into the padding";
        }
      }
    }
  });
}

// ------------------------------------------------------------------------------ GEMM
TEST(Primitives, GemmGeneralTransposesAlphaBeta) {
  tessera::ThreadPool pool(2);
  for_each_isa([&](Isa) {
    std::mt19937 rng(42);
    auto pick = [&] { return kSizes[rng() % std::size(kSizes)]; };
    std::vector<std::array<int64_t, 3>> shapes;
    for (int64_t m : kSizes) shapes.push_back({m, pick(), pick()});
    for (int i = 0; i < 24; ++i) shapes.push_back({pick(), pick(), pick()});
    // Several K blocks, M blocks and a K of zero.
    shapes.push_back({300, 200, 520});
    shapes.push_back({37, 70, 777});
    shapes.push_back({5, 9, 0});
    int index = 0;
    for (auto [M, N, K] : shapes) {
      const bool ta = index & 1, tb = index & 2;
      const float alphas[] = {1.f, 0.5f, -2.f, 0.f};
      const float betas[] = {0.f, 1.f, 0.25f};
      const float alpha = alphas[index % 4], beta = betas[(index / 4) % 3];
      tessera::ThreadPool* use_pool = index % 5 == 0 ? &pool : nullptr;
      ++index;
      SCOPED_TRACE("M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) +
                   " ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) +
                   " alpha=" + std::to_string(alpha) + " beta=" + std::to_string(beta));
      const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
      auto A = random_vector(size_t((ta ? K : M) * lda + 1), uint32_t(index));
      auto B = random_vector(size_t((tb ? N : K) * ldb + 1), uint32_t(index + 1000));
      auto C = random_vector(size_t(M * ldc), uint32_t(index + 2000));
      if (beta == 0.f) {
        for (int64_t m = 0; m < M; ++m) C[m * ldc] = NAN;  // beta == 0 must not read C
      }
      GemmCheck ref{std::vector<double>(size_t(M * N)), std::vector<double>(size_t(M * N))};
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < N; ++n) {
          double sum = 0, bound = 0;
          for (int64_t k = 0; k < K; ++k) {
            const double t = double(at(A, ta, lda, m, k)) * at(B, tb, ldb, k, n);
            sum += t, bound += std::fabs(t);
          }
          const double c = beta == 0.f ? 0.0 : double(beta) * C[m * ldc + n];
          ref.value[m * N + n] = alpha * sum + c;
          ref.bound[m * N + n] = std::fabs(alpha) * bound + std::fabs(c);
        }
      }
      auto C_padding = C;
      prim::gemm_f32(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc, use_pool);
      expect_matrix_near(M, N, C.data(), ldc, ref, N, 1e-5, "gemm_f32");
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = N; n < ldc; ++n) ASSERT_EQ(C[m * ldc + n], C_padding[m * ldc + n]);
      }
    }
  });
}

TEST(Primitives, GemmPackedWithEveryEpiloguePart) {
  tessera::ThreadPool pool(2);
  const UnaryParams activations[] = {{UnaryKind::identity},
                                     {UnaryKind::relu},
                                     {UnaryKind::sigmoid},
                                     {UnaryKind::gelu_erf},
                                     {UnaryKind::clip, -0.5f, 0.75f},
                                     {UnaryKind::hard_swish},
                                     {UnaryKind::leaky_relu, 0.1f},
                                     {UnaryKind::tanh},
                                     {UnaryKind::silu},
                                     {UnaryKind::sin}};
  for_each_isa([&](Isa) {
    std::mt19937 rng(7);
    auto pick = [&] { return kSizes[rng() % std::size(kSizes)]; };
    int index = 0;
    std::vector<std::array<int64_t, 3>> shapes;
    for (int i = 0; i < 30; ++i) shapes.push_back({pick(), pick(), pick()});
    shapes.push_back({200, 100, 300});
    for (auto [M, N, K] : shapes) {
      const int parts = index % 16;  // bit mask of epilogue parts
      const UnaryParams act = activations[index % std::size(activations)];
      const bool transposed_b = index % 3 == 0;
      tessera::ThreadPool* use_pool = index % 4 == 1 ? &pool : nullptr;
      ++index;
      SCOPED_TRACE("M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) +
                   " parts=" + std::to_string(parts) + " act=" + std::to_string(int(act.kind)));
      const int64_t lda = K + 1, ldb = transposed_b ? K + 2 : N + 2, ldc = N + 3, ldr = N + 5;
      auto A = random_vector(size_t(M * lda), uint32_t(index));
      auto B = random_vector(size_t((transposed_b ? N : K) * ldb), uint32_t(index + 100));
      auto bias_col = random_vector(size_t(N), uint32_t(index + 200));
      auto bias_row = random_vector(size_t(M), uint32_t(index + 300));
      auto residual = random_vector(size_t(M * ldr), uint32_t(index + 400));
      prim::GemmEpilogue epilogue;
      if (parts & 1) epilogue.bias_per_column = bias_col.data();
      if (parts & 2) epilogue.bias_per_row = bias_row.data();
      if (parts & 4) epilogue.residual = residual.data(), epilogue.ld_residual = ldr;
      if (parts & 8 || index % 3 == 0) epilogue.activation = act;
      GemmCheck ref{std::vector<double>(size_t(M * N)), std::vector<double>(size_t(M * N))};
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < N; ++n) {
          double sum = 0, bound = 0;
          for (int64_t k = 0; k < K; ++k) {
            const double bkn = transposed_b ? B[n * ldb + k] : B[k * ldb + n];
            const double t = double(A[m * lda + k]) * bkn;
            sum += t, bound += std::fabs(t);
          }
          if (parts & 1) sum += bias_col[n], bound += std::fabs(bias_col[n]);
          if (parts & 2) sum += bias_row[m], bound += std::fabs(bias_row[m]);
          if (parts & 4) sum += residual[m * ldr + n], bound += std::fabs(residual[m * ldr + n]);
          const double out = unary_ref(epilogue.activation, sum);
          ref.value[m * N + n] = out;
          // Every activation used here has slope <= ~1.13; add its own 1e-6-level error.
          ref.bound[m * N + n] = 1.2 * bound + 0.2 * std::fabs(out);
        }
      }
      prim::PackedB packed(K, N, B.data(), ldb, transposed_b);
      EXPECT_EQ(packed.K(), K);
      EXPECT_EQ(packed.N(), N);
      EXPECT_GT(packed.panel_width(), 0);
      std::vector<float> C(size_t(M * ldc), 99.f);
      prim::gemm_packed_f32(M, A.data(), lda, packed, C.data(), ldc, epilogue, use_pool);
      expect_matrix_near(M, N, C.data(), ldc, ref, N, 1e-5, "gemm_packed_f32");
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = N; n < ldc; ++n) ASSERT_EQ(C[m * ldc + n], 99.f) << "padding written";
      }
      // The same epilogue through gemm_f32 (alpha 1, beta 0) agrees.
      std::vector<float> C2(size_t(M * ldc), 99.f);
      prim::gemm_f32(false, transposed_b, M, N, K, 1.f, A.data(), lda, B.data(), ldb, 0.f, C2.data(), ldc,
                     use_pool, &epilogue);
      expect_matrix_near(M, N, C2.data(), ldc, ref, N, 1e-5, "gemm_f32 with epilogue");
    }
  });
}

// A residual that is C itself (in-place skip connection) must use C's original values even
// when K spans several blocks.
TEST(Primitives, GemmResidualAliasingC) {
  for_each_isa([](Isa) {
    const int64_t M = 29, N = 45, K = 700;
    auto A = random_vector(size_t(M * K), 1), B = random_vector(size_t(K * N), 2);
    auto C = random_vector(size_t(M * N), 3);
    GemmCheck ref{std::vector<double>(size_t(M * N)), std::vector<double>(size_t(M * N))};
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) {
        double s = C[m * N + n], bound = std::fabs(s);
        for (int64_t k = 0; k < K; ++k) {
          s += double(A[m * K + k]) * B[k * N + n];
          bound += std::fabs(double(A[m * K + k]) * B[k * N + n]);
        }
        ref.value[m * N + n] = s;
        ref.bound[m * N + n] = bound;
      }
    }
    prim::PackedB packed(K, N, B.data(), N, false);
    prim::GemmEpilogue epilogue;
    epilogue.residual = C.data();
    epilogue.ld_residual = N;
    prim::gemm_packed_f32(M, A.data(), K, packed, C.data(), N, epilogue, nullptr);
    expect_matrix_near(M, N, C.data(), N, ref, N, 1e-5, "residual == C");
  });
}

// The threaded drivers split C into a grid of row x column ranges (one per thread, chosen by
// cost) and pack run-time B per column range inside each task; every grid shape, tails and the
// fused epilogue must give the single-thread answer.
TEST(Primitives, GemmThreadGridsWithEpilogue) {
  struct Shape {
    int64_t M, N, K;
    bool always_packed = false;
  };
  // Wide and short (column split), tall and narrow (row split), both odd, and 2-D grids on 4.
  // With plan-time B, column splits go out in chunks claimed dynamically over one shared packed
  // A: shapes with several K blocks, two A blocks and a merged row remainder (130 = 9 x 14 + 4).
  // Tall ones with plan-time B split rows where that reads less (run_gemm): 300 rows evenly on 2
  // and 3 threads (150 / 150, 100 x 3), 301 (a 7-row tile) by whole tiles on 2.
  const Shape shapes[] = {{64, 3136, 24},         {1030, 49, 70},        {97, 333, 129},
                          {30, 1000, 20},         {15, 33, 600},         {2, 5000, 9},
                          {130, 600, 1536, true}, {180, 520, 512, true}, {29, 700, 45, true},
                          {300, 200, 150, true},  {301, 200, 150, true}};
  tessera::ThreadPool pool2(2), pool3(3), pool4(4);
  tessera::ThreadPool* pools[] = {&pool2, &pool3, &pool4};
  for_each_isa([&](Isa) {
    int index = 0;
    for (const Shape& s : shapes) {
      for (tessera::ThreadPool* pool : pools) {
        const bool tb = index & 1, packed = (index & 2) || s.always_packed;
        ++index;
        SCOPED_TRACE("M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) + " K=" +
                     std::to_string(s.K) + " threads=" + std::to_string(pool->size()) +
                     " tb=" + std::to_string(tb) + " packed=" + std::to_string(packed));
        const int64_t ldb = (tb ? s.K : s.N) + 3, ldc = s.N + 5;
        auto A = random_vector(size_t(s.M * s.K), uint32_t(index));
        auto B = random_vector(size_t((tb ? s.N : s.K) * ldb), uint32_t(index + 100));
        auto bias = random_vector(size_t(s.M), uint32_t(index + 200));
        auto residual = random_vector(size_t(s.M * s.N), uint32_t(index + 300));
        check_bias_residual_relu_product(s.M, s.N, s.K, A, B, ldb, tb, bias, true, residual, ldc, packed, pool,
                                         "threaded gemm");
        if (HasFatalFailure()) return;
      }
    }
  });
}

// Products of at most four row tiles (a 7x7 plane pixel-major), and of up to ten (BERT's 128
// tokens), run B-stationary, each B micro-panel meeting every row tile in turn, with shallower K
// blocks, sweeping the columns once per slab of K blocks whose A fits in L2 (one slab up to
// 140 x 1100, two for 128 x 1300, three for 128 x 3000): against the double reference with
// several K blocks, merged remainders, plan-time and run-time B, bias, residual and activation,
// on 1 and 2 threads; and the columns past N untouched.
TEST(Primitives, GemmFewRowTilesBStationaryMatchesReference) {
  struct Shape {
    int64_t M, N, K;
  };
  const Shape shapes[] = {{1, 70, 600},  {13, 33, 257},   {16, 300, 777},  {49, 200, 1100},
                          {56, 130, 513}, {57, 64, 300},   {100, 96, 513},  {128, 200, 700},
                          {140, 70, 1100}, {128, 90, 1300}, {128, 40, 3000}};
  tessera::ThreadPool pool2(2);
  for_each_isa([&](Isa) {
    int index = 0;
    for (const Shape& s : shapes) {
      for (tessera::ThreadPool* pool : {static_cast<tessera::ThreadPool*>(nullptr), &pool2}) {
        for (const bool packed : {true, false}) {
          ++index;
          SCOPED_TRACE("M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K) +
                       " threads=" + std::to_string(pool ? pool->size() : 1) + " packed=" + std::to_string(packed));
          const int64_t ldb = s.N + 1, ldc = s.N + 4;
          auto A = random_vector(size_t(s.M * s.K), uint32_t(index));
          auto B = random_vector(size_t(s.K * ldb), uint32_t(index + 100));
          auto bias = random_vector(size_t(s.N), uint32_t(index + 200));
          auto residual = random_vector(size_t(s.M * s.N), uint32_t(index + 300));
          check_bias_residual_relu_product(s.M, s.N, s.K, A, B, ldb, false, bias, false, residual, ldc, packed, pool,
                                           "few row tiles");
          if (HasFatalFailure()) return;
        }
      }
    }
  });
}

// Products with plan-time B are bitwise the same on any number of threads and on every run: the
// column chunks that threads claim by timing (and the weight prefetch that follows the claims)
// must not change any element's rounding. Short row tiles (3 rows: 6 accumulators, summed from
// two sets) and merged remainders (17 = 9 + 8 rows) included; 128 and 300 rows split by rows
// (fewer weight reads than column chunks) evenly at 2 threads, 300 at 3 as well, 128 at 3 by
// column chunks (43-row ranges would leave a 7-row tile).
TEST(Primitives, GemmPackedIsBitwiseTheSameOnAnyThreadsAndRun) {
  struct Shape {
    int64_t M, N, K;
  };
  const Shape shapes[] = {{3, 900, 700}, {17, 1000, 1030}, {49, 1280, 320}, {128, 1000, 768}, {300, 700, 200}};
  tessera::ThreadPool pool2(2), pool3(3);
  for_each_isa([&](Isa) {
    for (const Shape& s : shapes) {
      SCOPED_TRACE("M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K));
      auto A = random_vector(size_t(s.M * s.K), 11), B = random_vector(size_t(s.K * s.N), 12);
      auto bias = random_vector(size_t(s.N), 13);
      prim::PackedB packed(s.K, s.N, B.data(), s.N, false);
      prim::GemmEpilogue e;
      e.bias_per_column = bias.data();
      std::vector<float> alone(size_t(s.M * s.N));
      prim::gemm_packed_f32(s.M, A.data(), s.K, packed, alone.data(), s.N, e, nullptr);
      for (tessera::ThreadPool* pool : {&pool2, &pool3}) {
        for (int run = 0; run < 4; ++run) {
          std::vector<float> C(size_t(s.M * s.N), 5.f);
          prim::gemm_packed_f32(s.M, A.data(), s.K, packed, C.data(), s.N, e, pool);
          ASSERT_EQ(std::memcmp(C.data(), alone.data(), C.size() * sizeof(float)), 0)
              << pool->size() << " threads, run " << run;
        }
      }
    }
  });
}

// A given transposed (A^T [K, M], as a pixel-major convolution hands over its NCHW input) gives
// bitwise the product of the plain call on a transposed copy: the packing reads either into the
// same panels. On 1, 2 and 3 threads (column chunks over a shared packed A), with remainders.
TEST(Primitives, GemmPackedWithTransposedAMatchesTheCopy) {
  struct Shape {
    int64_t M, N, K;
  };
  const Shape shapes[] = {{49, 960, 160}, {49, 160, 960}, {17, 700, 45}, {196, 96, 576}, {5, 33, 600}};
  tessera::ThreadPool pool2(2), pool3(3);
  for_each_isa([&](Isa) {
    for (const Shape& s : shapes) {
      SCOPED_TRACE("M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K));
      const int64_t lda_t = s.M + 3;  // A^T rows padded, as a plane inside a larger tensor
      auto At = random_vector(size_t(s.K * lda_t), 21), B = random_vector(size_t(s.K * s.N), 22);
      std::vector<float> A(size_t(s.M * s.K));
      for (int64_t m = 0; m < s.M; ++m)
        for (int64_t k = 0; k < s.K; ++k) A[size_t(m * s.K + k)] = At[size_t(k * lda_t + m)];
      auto bias = random_vector(size_t(s.N), 23);
      prim::PackedB packed(s.K, s.N, B.data(), s.N, false);
      prim::GemmEpilogue e;
      e.bias_per_column = bias.data();
      e.activation.kind = UnaryKind::relu;
      for (tessera::ThreadPool* pool : {static_cast<tessera::ThreadPool*>(nullptr), &pool2, &pool3}) {
        std::vector<float> want(size_t(s.M * s.N)), got(size_t(s.M * s.N), 9.f);
        prim::gemm_packed_f32(s.M, A.data(), s.K, packed, want.data(), s.N, e, pool);
        prim::gemm_packed_f32(s.M, At.data(), lda_t, packed, got.data(), s.N, e, pool, /*a_transposed=*/true);
        ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
            << (pool ? pool->size() : 1) << " threads";
      }
    }
  });
}

TEST(Primitives, BatchReduceGemm) {
  for_each_isa([](Isa) {
    std::mt19937 rng(11);
    auto pick = [&] { return kSizes[rng() % std::size(kSizes)]; };
    for (int iteration = 0; iteration < 40; ++iteration) {
      const int64_t M = pick(), N = pick(), K = iteration == 0 ? 0 : pick();
      const int64_t batch = 1 + iteration % 4;
      const bool accumulate = iteration % 2;
      SCOPED_TRACE("M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) +
                   " batch=" + std::to_string(batch));
      const int64_t lda = K + 3, ldb = N + 1, ldc = N + 4;
      // Each A_b / B_b is its own allocation sized exactly, so an over-read shows in ASan.
      std::vector<std::vector<float>> As, Bs;
      std::vector<const float*> a_ptrs, b_ptrs;
      for (int64_t b = 0; b < batch; ++b) {
        As.push_back(random_vector(size_t((M - 1) * lda + K), uint32_t(iteration * 10 + b)));
        Bs.push_back(
            random_vector(size_t(std::max<int64_t>(K - 1, 0) * ldb + N), uint32_t(iteration * 10 + b + 5)));
      }
      for (int64_t b = 0; b < batch; ++b) a_ptrs.push_back(As[b].data()), b_ptrs.push_back(Bs[b].data());
      auto C = random_vector(size_t(M * ldc), uint32_t(iteration + 77));
      GemmCheck ref{std::vector<double>(size_t(M * N)), std::vector<double>(size_t(M * N))};
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < N; ++n) {
          double s = accumulate ? C[m * ldc + n] : 0, bound = std::fabs(s);
          for (int64_t b = 0; b < batch; ++b) {
            for (int64_t k = 0; k < K; ++k) {
              const double t = double(As[b][m * lda + k]) * Bs[b][k * ldb + n];
              s += t, bound += std::fabs(t);
            }
          }
          ref.value[m * N + n] = s;
          ref.bound[m * N + n] = bound;
        }
      }
      prim::brgemm_f32(M, N, K, batch, a_ptrs.data(), lda, b_ptrs.data(), ldb, C.data(), ldc, accumulate);
      expect_matrix_near(M, N, C.data(), ldc, ref, N, 1e-5, "brgemm_f32");
    }
  });
}

// A PackedB made under one ISA still works when another is active.
TEST(Primitives, PackedBSurvivesIsaChange) {
  const int64_t M = 19, N = 50, K = 33;
  auto A = random_vector(size_t(M * K), 1), B = random_vector(size_t(K * N), 2);
  const Isa saved = prim::active_isa();
  prim::set_isa(prim::detected_isa());
  prim::PackedB packed(K, N, B.data(), N, false);
  std::vector<float> expected(size_t(M * N));
  prim::gemm_packed_f32(M, A.data(), K, packed, expected.data(), N, {}, nullptr);
  for_each_isa([&](Isa) {
    std::vector<float> C(size_t(M * N));
    prim::gemm_packed_f32(M, A.data(), K, packed, C.data(), N, {}, nullptr);
    EXPECT_LT(tessera::testing::max_abs_difference(C.data(), expected.data(), C.size()), 1e-4);
  });
  prim::set_isa(saved);
}

// The driver reads A in place for narrow outputs and packs it for wide ones or when rows of A
// would alias in L1 (a row stride of 4 KiB); all three must agree with the reference.
TEST(Primitives, GemmPackingChoices) {
  struct Shape {
    int64_t M, N, K, lda;
  };
  const Shape shapes[] = {{30, 1100, 50, 50}, {30, 40, 70, 1024}, {45, 70, 300, 301}};
  for_each_isa([&](Isa) {
    for (const Shape& s : shapes) {
      SCOPED_TRACE("M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) +
                   " lda=" + std::to_string(s.lda));
      auto A = random_vector(size_t(s.M * s.lda), 3), B = random_vector(size_t(s.K * s.N), 4);
      GemmCheck ref{std::vector<double>(size_t(s.M * s.N)), std::vector<double>(size_t(s.M * s.N))};
      for (int64_t m = 0; m < s.M; ++m) {
        for (int64_t n = 0; n < s.N; ++n) {
          double sum = 0, bound = 0;
          for (int64_t k = 0; k < s.K; ++k) {
            const double t = double(A[m * s.lda + k]) * B[k * s.N + n];
            sum += t, bound += std::fabs(t);
          }
          ref.value[m * s.N + n] = sum;
          ref.bound[m * s.N + n] = bound;
        }
      }
      prim::PackedB packed(s.K, s.N, B.data(), s.N, false);
      std::vector<float> C(size_t(s.M * s.N));
      prim::gemm_packed_f32(s.M, A.data(), s.lda, packed, C.data(), s.N, {}, nullptr);
      expect_matrix_near(s.M, s.N, C.data(), s.N, ref, s.N, 1e-5, "gemm_packed_f32");
    }
  });
}
