// Unary, binary and reduction kernels written once over an ISA traits struct (vector_math.h);
// eltwise_avx2.cpp and eltwise_avx512.cpp instantiate them into their kernel tables. Internal
// linkage throughout, for the reason given in vector_math.h.
#pragma once
#include <cstring>

#include "primitives/kernels.h"
#include "primitives/vector_math.h"

namespace tessera::primitives::detail {
namespace {

template <class S>
struct EltwiseVector {
  using V = typename S::V;
  using M = VectorMath<S>;
  static constexpr int L = S::lanes;

  // Calls visit(f) with f: V -> V for the given kind; false for kinds left to the scalar path.
  template <typename Visit>
  static bool with_function(const UnaryParams& p, Visit&& visit) {
    const V alpha = S::set1(p.alpha), beta = S::set1(p.beta), zero = S::set1(0.f), one = S::set1(1.f);
    switch (p.kind) {
      case UnaryKind::identity:
        visit([](V x) { return x; });
        return true;
      case UnaryKind::relu:
        visit([=](V x) { return S::max(zero, x); });
        return true;
      case UnaryKind::leaky_relu:
        visit([=](V x) { return S::select(S::lt(x, zero), S::mul(alpha, x), x); });
        return true;
      case UnaryKind::elu:
        visit([=](V x) { return S::select(S::lt(x, zero), S::mul(alpha, M::expm1(x)), x); });
        return true;
      case UnaryKind::selu: {
        const V gamma_alpha = S::set1(p.beta * p.alpha);
        visit([=](V x) {
          return S::select(S::le(x, zero), S::mul(gamma_alpha, M::expm1(x)), S::mul(beta, x));
        });
        return true;
      }
      case UnaryKind::sigmoid:
        visit([](V x) { return M::sigmoid(x); });
        return true;
      case UnaryKind::tanh:
        visit([](V x) { return M::tanh(x); });
        return true;
      case UnaryKind::exp:
        visit([](V x) { return M::exp(x); });
        return true;
      case UnaryKind::log:
        visit([](V x) { return M::log(x); });
        return true;
      case UnaryKind::sqrt:
        visit([](V x) { return S::sqrt(x); });
        return true;
      case UnaryKind::erf:
        visit([](V x) { return M::erf(x); });
        return true;
      case UnaryKind::neg:
        visit([](V x) { return S::neg(x); });
        return true;
      case UnaryKind::abs:
        visit([](V x) { return S::abs(x); });
        return true;
      case UnaryKind::reciprocal:
        visit([=](V x) { return S::div(one, x); });
        return true;
      case UnaryKind::clip:
        visit([=](V x) { return S::min(beta, S::max(alpha, x)); });
        return true;
      case UnaryKind::hard_sigmoid:
        visit([=](V x) { return S::min(one, S::max(zero, S::fmadd(alpha, x, beta))); });
        return true;
      case UnaryKind::hard_swish: {
        const V sixth = S::set1(1.f / 6.f), half = S::set1(0.5f);
        visit([=](V x) { return S::mul(x, S::min(one, S::max(zero, S::fmadd(x, sixth, half)))); });
        return true;
      }
      case UnaryKind::gelu_erf:
        visit([](V x) { return M::gelu_erf(x); });
        return true;
      case UnaryKind::gelu_tanh:
        visit([](V x) { return M::gelu_tanh(x); });
        return true;
      case UnaryKind::softplus:
        visit([](V x) { return M::softplus(x); });
        return true;
      case UnaryKind::floor:
        visit([](V x) { return S::floor(x); });
        return true;
      case UnaryKind::ceil:
        visit([](V x) { return S::ceil(x); });
        return true;
      case UnaryKind::round:
        visit([](V x) { return S::round_even(x); });
        return true;
      case UnaryKind::sign: {
        const V minus_one = S::set1(-1.f);
        visit([=](V x) {
          // +1, -1, +0 for either zero, NaN stays NaN.
          const V zero_or_nan = S::select(S::is_nan(x), x, zero);
          return S::select(S::gt(x, zero), one, S::select(S::lt(x, zero), minus_one, zero_or_nan));
        });
        return true;
      }
      case UnaryKind::square:
        visit([](V x) { return S::mul(x, x); });
        return true;
      case UnaryKind::mish:
        visit([](V x) { return M::mish(x); });
        return true;
      case UnaryKind::silu:
        visit([](V x) { return M::silu(x); });
        return true;
      default:
        return false;  // sin, cos: the scalar path
    }
  }

  static void unary(const UnaryParams& p, int64_t n, const float* x, float* y) {
    if (p.kind == UnaryKind::identity) {
      if (x != y) std::memmove(y, x, size_t(n) * sizeof(float));
      return;
    }
    const bool done = with_function(p, [&](auto f) {
      int64_t i = 0;
      for (; i + L <= n; i += L) S::store(y + i, f(S::load(x + i)));
      if (i < n) S::store_first(y + i, n - i, f(S::load_first(x + i, n - i)));
    });
    if (!done) unary_scalar(p, n, x, y);
  }

  // The GEMM store step's activation over a register tile spilled to `values`.
  static void activation(const UnaryParams& p, V* values, int count) {
    const bool done = with_function(p, [&](auto f) {
      for (int i = 0; i < count; ++i) values[i] = f(values[i]);
    });
    if (done) return;
    alignas(64) float lanes[32 * L];
    for (int i = 0; i < count; i += 32) {
      const int chunk = count - i < 32 ? count - i : 32;
      std::memcpy(lanes, values + i, sizeof(V) * size_t(chunk));
      unary_scalar(p, int64_t(chunk) * L, lanes, lanes);
      std::memcpy(values + i, lanes, sizeof(V) * size_t(chunk));
    }
  }

  // ------------------------------------------------------------------ binary
  template <typename Op>
  static void binary_loop(int64_t n, const float* a, int64_t a_step, const float* b, int64_t b_step, float* y,
                          Op op) {
    int64_t i = 0;
    if (a_step == 1 && b_step == 1) {
      for (; i + L <= n; i += L) S::store(y + i, op(S::load(a + i), S::load(b + i)));
      if (i < n) S::store_first(y + i, n - i, op(S::load_first(a + i, n - i), S::load_first(b + i, n - i)));
    } else if (a_step == 1) {
      const V bv = S::set1(b[0]);
      for (; i + L <= n; i += L) S::store(y + i, op(S::load(a + i), bv));
      if (i < n) S::store_first(y + i, n - i, op(S::load_first(a + i, n - i), bv));
    } else if (b_step == 1) {
      const V av = S::set1(a[0]);
      for (; i + L <= n; i += L) S::store(y + i, op(av, S::load(b + i)));
      if (i < n) S::store_first(y + i, n - i, op(av, S::load_first(b + i, n - i)));
    } else {
      const V value = op(S::set1(a[0]), S::set1(b[0]));
      for (; i + L <= n; i += L) S::store(y + i, value);
      if (i < n) S::store_first(y + i, n - i, value);
    }
  }

  static void binary_row(BinaryKind kind, int64_t n, const float* a, int64_t a_step, const float* b,
                         int64_t b_step, float* y) {
    switch (kind) {
      case BinaryKind::add:
        return binary_loop(n, a, a_step, b, b_step, y, [](V u, V v) { return S::add(u, v); });
      case BinaryKind::sub:
        return binary_loop(n, a, a_step, b, b_step, y, [](V u, V v) { return S::sub(u, v); });
      case BinaryKind::mul:
        return binary_loop(n, a, a_step, b, b_step, y, [](V u, V v) { return S::mul(u, v); });
      case BinaryKind::div:
        return binary_loop(n, a, a_step, b, b_step, y, [](V u, V v) { return S::div(u, v); });
      // Operand order as in binary_one (a > b ? a : b), so NaN handling matches the scalar path.
      case BinaryKind::max:
        return binary_loop(n, a, a_step, b, b_step, y, [](V u, V v) { return S::select(S::gt(u, v), u, v); });
      case BinaryKind::min:
        return binary_loop(n, a, a_step, b, b_step, y, [](V u, V v) { return S::select(S::lt(u, v), u, v); });
      case BinaryKind::prelu:
        return binary_loop(n, a, a_step, b, b_step, y,
                           [](V u, V v) { return S::select(S::lt(u, S::set1(0.f)), S::mul(u, v), u); });
      case BinaryKind::pow:
        return binary_row_scalar(kind, n, a, a_step, b, b_step, y);
    }
  }

  // ------------------------------------------------------------------ reductions
  // Calls f(neutral, combine, finish) with the lambdas of one reduction kind, so the loops
  // below are instantiated per kind with everything inlined. log_sum_exp reduces with max
  // here; its second pass is separate.
  template <typename F>
  static void with_reducer(ReduceKind kind, F&& f) {
    const float inf = __builtin_inff();
    auto add_lanes = [](V acc) { return S::reduce_add(acc); };
    switch (kind) {
      case ReduceKind::sum:
        return f(
            0.f, [](V acc, V x) { return S::add(acc, x); }, add_lanes);
      case ReduceKind::sum_squares:
        return f(
            0.f, [](V acc, V x) { return S::fmadd(x, x, acc); }, add_lanes);
      case ReduceKind::sum_abs:
        return f(
            0.f, [](V acc, V x) { return S::add(acc, S::abs(x)); }, add_lanes);
      case ReduceKind::max:
      case ReduceKind::log_sum_exp:
        return f(
            -inf, [](V acc, V x) { return S::max(acc, x); }, [](V acc) { return S::reduce_max(acc); });
      case ReduceKind::min:
        return f(
            inf, [](V acc, V x) { return S::min(acc, x); }, [](V acc) { return S::reduce_min(acc); });
      case ReduceKind::prod:
        return f(
            1.f, [](V acc, V x) { return S::mul(acc, x); }, [](V acc) { return S::reduce_mul(acc); });
    }
  }

  // Four accumulators (4 L elements per step) hide the combine latency and add accuracy. The
  // tail's missing lanes read as `fill`, which must not change the result.
  template <typename Combine>
  static V reduce_span(const float* x, int64_t n, float init, float fill, Combine combine) {
    const V start = S::set1(init);
    V acc0 = start, acc1 = start, acc2 = start, acc3 = start;
    int64_t i = 0;
    for (; i + 4 * L <= n; i += 4 * L) {
      acc0 = combine(acc0, S::load(x + i));
      acc1 = combine(acc1, S::load(x + i + L));
      acc2 = combine(acc2, S::load(x + i + 2 * L));
      acc3 = combine(acc3, S::load(x + i + 3 * L));
    }
    for (; i + L <= n; i += L) acc0 = combine(acc0, S::load(x + i));
    if (i < n) acc1 = combine(acc1, S::load_first_or(x + i, n - i, S::set1(fill)));
    // Combine these with the plain op, not `combine` (which may transform its second input).
    return S::add(S::add(acc0, acc1), S::add(acc2, acc3));
  }

  static void reduce_rows(ReduceKind kind, int64_t rows, int64_t cols, const float* x, int64_t ldx,
                          float* y) {
    with_reducer(kind, [&](float neutral, auto combine, auto finish) {
      for (int64_t r = 0; r < rows; ++r) {
        // Four partial accumulators, merged by the reduction itself.
        const float* row = x + r * ldx;
        const V start = S::set1(neutral);
        V acc0 = start, acc1 = start, acc2 = start, acc3 = start;
        int64_t i = 0;
        for (; i + 4 * L <= cols; i += 4 * L) {
          acc0 = combine(acc0, S::load(row + i));
          acc1 = combine(acc1, S::load(row + i + L));
          acc2 = combine(acc2, S::load(row + i + 2 * L));
          acc3 = combine(acc3, S::load(row + i + 3 * L));
        }
        for (; i + L <= cols; i += L) acc0 = combine(acc0, S::load(row + i));
        if (i < cols) acc1 = combine(acc1, S::load_first_or(row + i, cols - i, start));
        y[r] = finish(join(kind, join(kind, acc0, acc1), join(kind, acc2, acc3)));
      }
    });
    if (kind != ReduceKind::log_sum_exp) return;
    const float inf = __builtin_inff();
    for (int64_t r = 0; r < rows; ++r) {
      const float m = y[r];
      if (m == inf || m == -inf) continue;  // all -inf (or empty), or +inf dominating
      const V shift = S::set1(m);
      // Tail lanes read -inf, which adds exp(-inf) = 0.
      const V sums = reduce_span(x + r * ldx, cols, 0.f, -inf,
                                 [&](V acc, V v) { return S::add(acc, M::exp(S::sub(v, shift))); });
      y[r] = m + __builtin_logf(S::reduce_add(sums));
    }
  }

  static void add_layer_norm_rows(int64_t rows, int64_t cols, const float* x, const float* residual, int64_t ld,
                                  float* sum_out, const float* scale, const float* bias, float epsilon, float* y) {
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * ld;
      const float* rr = residual ? residual + r * ld : nullptr;
      float* v = sum_out ? sum_out + r * ld : y + r * ld;
      float* yr = y + r * ld;
      // Pass 1: v = x (+ residual) and its sum, four partial sums.
      auto value_at = [&](int64_t j) { return rr ? S::add(S::load(xr + j), S::load(rr + j)) : S::load(xr + j); };
      V s0 = S::set1(0.f), s1 = s0, s2 = s0, s3 = s0;
      int64_t i = 0;
      for (; i + 4 * L <= cols; i += 4 * L) {
        const V v0 = value_at(i), v1 = value_at(i + L), v2 = value_at(i + 2 * L), v3 = value_at(i + 3 * L);
        S::store(v + i, v0);
        S::store(v + i + L, v1);
        S::store(v + i + 2 * L, v2);
        S::store(v + i + 3 * L, v3);
        s0 = S::add(s0, v0);
        s1 = S::add(s1, v1);
        s2 = S::add(s2, v2);
        s3 = S::add(s3, v3);
      }
      for (; i + L <= cols; i += L) {
        const V value = value_at(i);
        S::store(v + i, value);
        s0 = S::add(s0, value);
      }
      if (i < cols) {
        const V zero = S::set1(0.f);
        const V value = rr ? S::add(S::load_first_or(xr + i, cols - i, zero), S::load_first_or(rr + i, cols - i, zero))
                           : S::load_first_or(xr + i, cols - i, zero);
        S::store_first(v + i, cols - i, value);
        s1 = S::add(s1, value);
      }
      const float mean = S::reduce_add(S::add(S::add(s0, s1), S::add(s2, s3))) / float(cols);
      // Pass 2: the centred sum of squares.
      const V m = S::set1(mean);
      V q0 = S::set1(0.f), q1 = q0, q2 = q0, q3 = q0;
      i = 0;
      for (; i + 4 * L <= cols; i += 4 * L) {
        const V d0 = S::sub(S::load(v + i), m), d1 = S::sub(S::load(v + i + L), m);
        const V d2 = S::sub(S::load(v + i + 2 * L), m), d3 = S::sub(S::load(v + i + 3 * L), m);
        q0 = S::fmadd(d0, d0, q0);
        q1 = S::fmadd(d1, d1, q1);
        q2 = S::fmadd(d2, d2, q2);
        q3 = S::fmadd(d3, d3, q3);
      }
      for (; i + L <= cols; i += L) {
        const V d = S::sub(S::load(v + i), m);
        q0 = S::fmadd(d, d, q0);
      }
      if (i < cols) {
        const V d = S::sub(S::load_first_or(v + i, cols - i, m), m);  // missing lanes give 0
        q1 = S::fmadd(d, d, q1);
      }
      const float squares = S::reduce_add(S::add(S::add(q0, q1), S::add(q2, q3)));
      const V inv_std = S::set1(1.f / __builtin_sqrtf(squares / float(cols) + epsilon));
      // Pass 3: normalize, scale, shift.
      i = 0;
      for (; i + L <= cols; i += L) {
        V out = S::mul(S::mul(S::sub(S::load(v + i), m), inv_std), S::load(scale + i));
        if (bias) out = S::add(out, S::load(bias + i));
        S::store(yr + i, out);
      }
      if (i < cols) {
        const int64_t n = cols - i;
        const V zero = S::set1(0.f);
        V out = S::mul(S::mul(S::sub(S::load_first_or(v + i, n, m), m), inv_std), S::load_first_or(scale + i, n, zero));
        if (bias) out = S::add(out, S::load_first_or(bias + i, n, zero));
        S::store_first(yr + i, n, out);
      }
    }
  }

  static void online_softmax_block(int64_t rows, int64_t cols, float* scores, int64_t ld, float* row_max,
                                   float* row_sum, float* rescale) {
    const float inf = __builtin_inff();
    const V flush_below = S::set1(kSoftmaxFlushBelow), zero = S::set1(0.f);
    for (int64_t r = 0; r < rows; ++r) {
      float* x = scores + r * ld;
      V m0 = S::set1(row_max[r]), m1 = m0;
      int64_t i = 0;
      for (; i + 2 * L <= cols; i += 2 * L) {
        m0 = S::max(m0, S::load(x + i));
        m1 = S::max(m1, S::load(x + i + L));
      }
      for (; i + L <= cols; i += L) m0 = S::max(m0, S::load(x + i));
      if (i < cols) m1 = S::max(m1, S::load_first_or(x + i, cols - i, S::set1(-inf)));
      const float m = S::reduce_max(S::max(m0, m1));
      if (m == -inf) {  // nothing visible yet
        std::memset(x, 0, size_t(cols) * sizeof(float));
        rescale[r] = 1.f;
        continue;
      }
      rescale[r] = __builtin_expf(row_max[r] - m);
      row_max[r] = m;
      const V shift = S::set1(m);
      // Shifted scores are at most 0, and those below the flush point weigh exactly 0 (as
      // exp(kSoftmaxFlushedTo) does), so the exponential's core needs no range checks: a masked
      // key (-10000 in BERT's mask) no longer sends its vector down exp's subnormal path.
      // The constant goes first in max so that a NaN score stays NaN.
      auto weight = [&](V v) {
        const V shifted = S::sub(v, shift);
        return S::select(S::lt(shifted, flush_below), zero, M::exp_core(S::max(flush_below, shifted)));
      };
      V s0 = S::set1(0.f), s1 = s0;
      i = 0;
      for (; i + 2 * L <= cols; i += 2 * L) {
        const V e0 = weight(S::load(x + i)), e1 = weight(S::load(x + i + L));
        S::store(x + i, e0);
        S::store(x + i + L, e1);
        s0 = S::add(s0, e0);
        s1 = S::add(s1, e1);
      }
      for (; i + L <= cols; i += L) {
        const V e = weight(S::load(x + i));
        S::store(x + i, e);
        s0 = S::add(s0, e);
      }
      if (i < cols) {
        // Missing lanes read as -inf, whose weight is exactly 0.
        const V e = weight(S::load_first_or(x + i, cols - i, S::set1(-inf)));
        S::store_first(x + i, cols - i, e);
        s1 = S::add(s1, e);
      }
      row_sum[r] = row_sum[r] * rescale[r] + S::reduce_add(S::add(s0, s1));
    }
  }

  // Joins two partial accumulators (sums of squares and of |x| join by adding).
  static V join(ReduceKind kind, V a, V b) {
    switch (kind) {
      case ReduceKind::max:
      case ReduceKind::log_sum_exp:
        return S::max(a, b);
      case ReduceKind::min:
        return S::min(a, b);
      case ReduceKind::prod:
        return S::mul(a, b);
      default:
        return S::add(a, b);
    }
  }

  // NV vectors of columns at once, accumulated over all rows in registers.
  template <int NV>
  static void reduce_cols_block(ReduceKind kind, int64_t rows, const float* x, int64_t ldx, int64_t width,
                                float* y) {
    V acc[NV];
    for (int v = 0; v < NV; ++v) acc[v] = S::set1(0.f);
    auto load = [&](const float* row, int v, float fill) {
      const int64_t remaining = width - int64_t(v) * L;
      return remaining >= L ? S::load(row + v * L) : S::load_first_or(row + v * L, remaining, S::set1(fill));
    };
    with_reducer(kind, [&](float neutral, auto combine, auto) {
      for (int v = 0; v < NV; ++v) acc[v] = S::set1(neutral);
      for (int64_t r = 0; r < rows; ++r) {
        const float* row = x + r * ldx;
        for (int v = 0; v < NV; ++v) acc[v] = combine(acc[v], load(row, v, neutral));
      }
    });
    if (kind == ReduceKind::log_sum_exp) {
      const float inf = __builtin_inff();
      V sums[NV];
      for (int v = 0; v < NV; ++v) sums[v] = S::set1(0.f);
      for (int64_t r = 0; r < rows; ++r) {
        const float* row = x + r * ldx;
        for (int v = 0; v < NV; ++v) sums[v] = S::add(sums[v], M::exp(S::sub(load(row, v, -inf), acc[v])));
      }
      for (int v = 0; v < NV; ++v) {
        const auto finite = S::lt(S::abs(acc[v]), S::set1(inf));
        acc[v] = S::select(finite, S::add(acc[v], M::log(sums[v])), acc[v]);
      }
    }
    for (int v = 0; v < NV; ++v) {
      const int64_t remaining = width - int64_t(v) * L;
      if (remaining >= L)
        S::store(y + v * L, acc[v]);
      else if (remaining > 0)
        S::store_first(y + v * L, remaining, acc[v]);
    }
  }

  static void reduce_cols(ReduceKind kind, int64_t rows, int64_t cols, const float* x, int64_t ldx,
                          float* y) {
    // Blocks of four vectors give four independent accumulator chains per row step.
    int64_t c = 0;
    for (; c + 4 * L <= cols; c += 4 * L) reduce_cols_block<4>(kind, rows, x + c, ldx, 4 * L, y + c);
    for (; c < cols; c += L) {
      reduce_cols_block<1>(kind, rows, x + c, ldx, cols - c < L ? cols - c : L, y + c);
    }
  }
};

}  // namespace
}  // namespace tessera::primitives::detail
