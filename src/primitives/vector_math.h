// Vector transcendental functions (exp, expm1, log, log1p, erf/erfc, tanh, sigmoid) written
// once over an ISA traits struct (Avx2, Avx512) and instantiated by eltwise_<isa>.cpp.
// Everything is in an anonymous namespace: each ISA file gets its own copy, so the linker can
// never hand AVX-512 code to an AVX2-only caller. Include only from *_avx2/*_avx512 files.
#pragma once
#include <immintrin.h>

#include <cstdint>

// GCC 12 reports the _mm512_undefined_* placeholders inside its own intrinsic headers as
// "may be used uninitialized" once they are inlined here; those are false positives.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace tessera::primitives::detail {
namespace {

#if defined(__AVX512F__) && defined(__AVX512DQ__)
struct Avx512 {
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int lanes = 16;

  static Mask first(int64_t n) { return n >= 16 ? Mask(0xffff) : Mask((1u << n) - 1); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V load_first(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(first(n), p); }
  // Lanes past n take `fill` (the reduction's neutral element).
  static V load_first_or(const float* p, int64_t n, V fill) {
    return _mm512_mask_loadu_ps(fill, first(n), p);
  }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void store_first(float* p, int64_t n, V v) { _mm512_mask_storeu_ps(p, first(n), v); }

  static V set1(float v) { return _mm512_set1_ps(v); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }    // a * b + c
  static V fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }  // c - a * b
  static V fmsub(V a, V b, V c) { return _mm512_fmsub_ps(a, b, c); }    // a * b - c
  // max/min return the second operand when either is NaN: callers put constants first so
  // NaN inputs come through.
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static V sqrt(V a) { return _mm512_sqrt_ps(a); }
  static V abs(V a) { return _mm512_abs_ps(a); }
  static V neg(V a) { return _mm512_xor_ps(a, set1(-0.f)); }
  static V sign_of(V a) { return _mm512_and_ps(a, set1(-0.f)); }
  static V or_bits(V a, V b) { return _mm512_or_ps(a, b); }
  static V round_even(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V floor(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
  static V ceil(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC); }

  static Mask lt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static Mask le(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
  static Mask gt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static Mask ge(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
  static Mask eq(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
  static Mask not_ge(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_NGE_UQ); }  // a < b or NaN
  static Mask is_nan(V a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static V select(Mask m, V if_true, V if_false) { return _mm512_mask_blend_ps(m, if_false, if_true); }
  static bool any(Mask m) { return m != 0; }
  static bool all(Mask m) { return m == Mask(0xffff); }

  // p * 2^n for integral n; scalef is exact, and gives subnormals and overflow to inf.
  static V ldexp(V p, V n) { return _mm512_scalef_ps(p, n); }
  // x = m * 2^e with m in [1, 2); getexp/getmant handle subnormal inputs.
  static void split_exponent(V x, V& m, V& e) {
    m = _mm512_getmant_ps(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);
    e = _mm512_getexp_ps(x);
  }

  // Horizontal reductions: halve the width with op until one lane is left. The ops are
  // lambdas, not intrinsics passed by address (those are always_inline and have no
  // out-of-line definition to point at).
  template <typename Op256, typename Op128>
  static float reduce(V v, Op256 op256, Op128 op128) {
    const __m256 half = op256(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 x = op128(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
    x = op128(x, _mm_movehl_ps(x, x));
    x = op128(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
  }
  static float reduce_add(V v) {
    return reduce(
        v, [](__m256 a, __m256 b) { return _mm256_add_ps(a, b); },
        [](__m128 a, __m128 b) { return _mm_add_ps(a, b); });
  }
  static float reduce_mul(V v) {
    return reduce(
        v, [](__m256 a, __m256 b) { return _mm256_mul_ps(a, b); },
        [](__m128 a, __m128 b) { return _mm_mul_ps(a, b); });
  }
  static float reduce_max(V v) {
    return reduce(
        v, [](__m256 a, __m256 b) { return _mm256_max_ps(a, b); },
        [](__m128 a, __m128 b) { return _mm_max_ps(a, b); });
  }
  static float reduce_min(V v) {
    return reduce(
        v, [](__m256 a, __m256 b) { return _mm256_min_ps(a, b); },
        [](__m128 a, __m128 b) { return _mm_min_ps(a, b); });
  }
};
#endif

#if defined(__AVX2__) && defined(__FMA__)
struct Avx2 {
  using V = __m256;
  using Mask = __m256;  // all-ones lanes where true
  static constexpr int lanes = 8;

  static __m256i first(int64_t n) {
    const int count = n >= 8 ? 8 : int(n);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  // maskload never touches masked-out lanes, so the tail cannot fault.
  static V load_first(const float* p, int64_t n) { return _mm256_maskload_ps(p, first(n)); }
  static V load_first_or(const float* p, int64_t n, V fill) {
    const __m256i m = first(n);
    return _mm256_blendv_ps(fill, _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static void store_first(float* p, int64_t n, V v) { _mm256_maskstore_ps(p, first(n), v); }

  static V set1(float v) { return _mm256_set1_ps(v); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V fnmadd(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
  static V fmsub(V a, V b, V c) { return _mm256_fmsub_ps(a, b, c); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V min(V a, V b) { return _mm256_min_ps(a, b); }
  static V sqrt(V a) { return _mm256_sqrt_ps(a); }
  static V abs(V a) { return _mm256_andnot_ps(set1(-0.f), a); }
  static V neg(V a) { return _mm256_xor_ps(a, set1(-0.f)); }
  static V sign_of(V a) { return _mm256_and_ps(a, set1(-0.f)); }
  static V or_bits(V a, V b) { return _mm256_or_ps(a, b); }
  static V round_even(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V floor(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
  static V ceil(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC); }

  static Mask lt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static Mask le(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
  static Mask gt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static Mask ge(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
  static Mask eq(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
  static Mask not_ge(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_NGE_UQ); }
  static Mask is_nan(V a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static V select(Mask m, V if_true, V if_false) { return _mm256_blendv_ps(if_false, if_true, m); }
  static bool any(Mask m) { return _mm256_movemask_ps(m) != 0; }
  static bool all(Mask m) { return _mm256_movemask_ps(m) == 0xff; }

  // p * 2^n for integral n in [-252, 254], as two exponent-field scalings so that subnormal
  // results round correctly and n = 128 still overflows to inf rather than wrapping.
  static V ldexp(V p, V n) {
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i half = _mm256_srai_epi32(ni, 1);
    const __m256i rest = _mm256_sub_epi32(ni, half);
    const __m256i bias = _mm256_set1_epi32(127);
    const V s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, bias), 23));
    const V s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(rest, bias), 23));
    return mul(mul(p, s1), s2);
  }
  // x = m * 2^e with m in [1, 2); subnormals are scaled by 2^23 first. Zero, inf, NaN and
  // negative inputs give garbage here and are fixed up by the caller.
  static void split_exponent(V x, V& m, V& e) {
    const Mask tiny = lt(abs(x), set1(1.17549435e-38f));
    const V scaled = select(tiny, mul(x, set1(8388608.f)), x);
    const __m256i bits = _mm256_castps_si256(scaled);
    const __m256i exponent = _mm256_sub_epi32(
        _mm256_and_si256(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(0xff)), _mm256_set1_epi32(127));
    e = sub(_mm256_cvtepi32_ps(exponent), _mm256_and_ps(tiny, set1(23.f)));
    m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)),
                                            _mm256_set1_epi32(0x3f800000)));
  }

  template <typename Op128>
  static float reduce(V v, Op128 op) {
    __m128 x = op(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = op(x, _mm_movehl_ps(x, x));
    x = op(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
  }
  static float reduce_add(V v) {
    return reduce(v, [](__m128 a, __m128 b) { return _mm_add_ps(a, b); });
  }
  static float reduce_mul(V v) {
    return reduce(v, [](__m128 a, __m128 b) { return _mm_mul_ps(a, b); });
  }
  static float reduce_max(V v) {
    return reduce(v, [](__m128 a, __m128 b) { return _mm_max_ps(a, b); });
  }
  static float reduce_min(V v) {
    return reduce(v, [](__m128 a, __m128 b) { return _mm_min_ps(a, b); });
  }
};
#endif

template <class S>
struct VectorMath {
  using V = typename S::V;
  using Mask = typename S::Mask;

  static constexpr float kLog2e = 1.44269504088896341f;
  // ln 2 split so that n * kLn2High is exact for |n| < 512 (kLn2High has 15 significant bits).
  static constexpr float kLn2High = 0.693145751953125f;
  static constexpr float kLn2Low = 1.42860682030941723212e-6f;

  // Horner with compile-time coefficients, highest degree first.
  template <typename... C>
  static V poly(V x, float highest, C... rest) {
    V p = S::set1(highest);
    ((p = S::fmadd(p, x, S::set1(rest))), ...);
    return p;
  }

  // x = n ln2 + r with |r| <= ln2 / 2.
  static V reduce_ln2(V x, V& n) {
    n = S::round_even(S::mul(x, S::set1(kLog2e)));
    V r = S::fnmadd(n, S::set1(kLn2High), x);
    return S::fnmadd(n, S::set1(kLn2Low), r);
  }

  // exp with ~1-2 ulp error: e^r by its Taylor series to degree 7 (truncation < 6e-9 on
  // |r| <= ln2/2), then scaled by 2^n. Inputs are clamped where the result is 0 or inf anyway.
  // Results below FLT_MIN (x < -87.33) cost the CPU a microcode assist each (about 6 ns instead
  // of 0.3: a softmax over masked scores pays it on every masked element), so they are taken
  // out of the main path: those that round to 0 (x < -104) are set to 0 with no arithmetic, and
  // only true subnormal results (rare) are computed, exactly, on a second pass.
  static V exp(V x) {
    const V normal_limit = S::set1(-87.33f);
    V result = exp_core(S::min(S::set1(89.f), S::max(normal_limit, x)));  // constants first: NaN survives
    const Mask below = S::lt(x, normal_limit);
    if (S::any(below)) {
      const Mask zero = S::lt(x, S::set1(-104.f));
      const V subnormal = exp_core(S::select(zero, normal_limit, x));
      result = S::select(below, S::select(zero, S::set1(0.f), subnormal), result);
    }
    return result;
  }
  static V exp_core(V x) {
    V n;
    const V r = reduce_ln2(x, n);
    const V p = poly(r, 1.f / 5040, 1.f / 720, 1.f / 120, 1.f / 24, 1.f / 6, 0.5f, 1.f, 1.f);
    return S::ldexp(p, n);
  }

  // exp(x) - 1 without cancellation near 0: 2^n (e^r - 1) + (2^n - 1), where e^r - 1 is summed
  // from its series without the leading 1. Valid for x <= 80 (callers stay below).
  static V expm1(V x) {
    x = S::min(S::set1(80.f), S::max(S::set1(-88.f), x));
    V n;
    const V r = reduce_ln2(x, n);
    const V tail = poly(r, 1.f / 5040, 1.f / 720, 1.f / 120, 1.f / 24, 1.f / 6, 0.5f);
    const V q = S::fmadd(S::mul(r, r), tail, r);
    const V scale = S::ldexp(S::set1(1.f), n);
    return S::fmadd(scale, q, S::sub(scale, S::set1(1.f)));
  }

  // log: x = m 2^e with m in [sqrt(1/2), sqrt 2), log m = 2 atanh(t), t = (m-1)/(m+1), |t| <=
  // 0.172, by its odd series to t^9 (truncation < 3e-9 relative).
  static V log(V x) {
    V m, e;
    S::split_exponent(x, m, e);
    const Mask big = S::gt(m, S::set1(1.41421356f));
    m = S::select(big, S::mul(m, S::set1(0.5f)), m);
    e = S::select(big, S::add(e, S::set1(1.f)), e);
    const V f = S::sub(m, S::set1(1.f));  // exact (Sterbenz)
    const V t = S::div(f, S::add(m, S::set1(1.f)));
    const V t2 = S::mul(t, t);
    const V series = poly(t2, 2.f / 9, 2.f / 7, 2.f / 5, 2.f / 3, 2.f);
    const V log_m = S::mul(t, series);
    V result = S::fmadd(e, S::set1(kLn2High), S::fmadd(e, S::set1(kLn2Low), log_m));
    const float inf = __builtin_inff();
    result = S::select(S::eq(x, S::set1(0.f)), S::set1(-inf), result);
    result = S::select(S::eq(x, S::set1(inf)), S::set1(inf), result);
    return S::select(S::not_ge(x, S::set1(0.f)), S::set1(__builtin_nanf("")), result);
  }

  // log(1 + y) for y >= 0, keeping the digits of small y: with u = 1 + y rounded,
  // log1p(y) = log(u) * y / (u - 1), which cancels the rounding of u.
  static V log1p_positive(V y) {
    const V u = S::add(S::set1(1.f), y);
    const V d = S::sub(u, S::set1(1.f));
    const V corrected = S::mul(log(u), S::div(y, d));
    return S::select(S::eq(d, S::set1(0.f)), y, corrected);
  }

  // sigmoid from exp(-|x|), which never overflows; for x < 0, e / (1 + e) keeps tiny results.
  static V sigmoid(V x) {
    const V e = exp(S::neg(S::abs(x)));
    const V s = S::div(S::set1(1.f), S::add(S::set1(1.f), e));
    return S::select(S::ge(x, S::set1(0.f)), s, S::mul(e, s));
  }

  // tanh = expm1(2|x|) / (expm1(2|x|) + 2) with the sign of x; |x| >= 9 rounds to +-1.
  static V tanh(V x) {
    const V a = S::min(S::set1(9.f), S::abs(x));
    const V em = expm1(S::add(a, a));
    const V t = S::div(em, S::add(em, S::set1(2.f)));
    return S::or_bits(t, S::sign_of(x));
  }

  // erf and erfc of a >= 0, given a^2 as the exact sum hi + lo (so the tail's exp(-a^2) is
  // not spoiled by rounding a^2, which would cost ~a^2 ulps).
  //   a < 1:   erf = a P(a^2)
  //   a >= .5: erfc = exp(-a^2) g(t), t = 2 / (2 + a), g fitted for a in [0.5, 10.5]
  // erf takes the first form below 1, erfc the second from 0.5 (where 1 - erf would cancel).
  // The coefficients are Chebyshev-node interpolants computed for this file; the fits'
  // relative errors are 1.3e-9 (P) and 7.3e-9 (g).
  static void erf_erfc(V a, V a2_high, V a2_low, V& erf_out, V& erfc_out) {
    const V one = S::set1(1.f);
    const V p = poly(a2_high, 7.875874871e-05f, -8.016864303e-04f, 5.189087242e-03f, -2.685421146e-02f,
                     1.128359437e-01f, -3.761262596e-01f, 1.128379107e+00f);
    const V erf_small = S::mul(a, p);
    const auto use_tail = S::ge(a, S::set1(0.5f));
    if (!S::any(use_tail)) {
      erf_out = erf_small;
      erfc_out = S::sub(one, erf_small);
      return;
    }
    const V a_clamped = S::min(S::set1(10.5f), a);
    const V t = S::div(S::set1(2.f), S::add(S::set1(2.f), a_clamped));
    const V g = poly(S::sub(t, S::set1(0.48f)), -7.712376863e-02f, 2.947776020e-02f, 1.211668998e-01f,
                     -7.174513489e-02f, -2.163119912e-01f, 8.176135272e-02f, 6.261636019e-01f,
                     9.288841486e-01f, 8.164625168e-01f, 2.386898547e-01f);
    V gauss = exp(S::neg(a2_high));
    gauss = S::fnmadd(gauss, a2_low, gauss);  // * (1 - lo) == * exp(-lo)
    const V erfc_tail = S::mul(gauss, g);
    erf_out = S::select(S::lt(a, one), erf_small, S::sub(one, erfc_tail));
    erfc_out = S::select(use_tail, erfc_tail, S::sub(one, erf_small));
  }

  static V erf(V x) {
    // Past 10.5, erf is 1 in float; clamping also keeps x * x finite for the split.
    const V a = S::min(S::set1(10.5f), S::abs(x));
    const V high = S::mul(a, a);
    const V low = S::fmsub(a, a, high);
    V e, ec;
    erf_erfc(a, high, low, e, ec);
    return S::or_bits(e, S::sign_of(x));
  }

  // 0.5 x (1 + erf(x / sqrt 2)) = 0.5 x (2 - erfc(a)) for x >= 0 and 0.5 x erfc(a) for x < 0,
  // a = |x| / sqrt 2: one erfc serves both sides, and the left tail keeps its relative accuracy.
  // erfc(a) = exp(-a^2) g(t), t = 2 / (2 + a), with g (the scaled erfc, erfcx) fitted over the
  // whole a in [0, 10.5] (relative error 3.8e-8; about 1e-6 after float rounding of t and the
  // polynomial), so no second polynomial for small a: the GELU epilogue of BERT's FFN GEMM costs
  // a quarter less. a^2 is the exact sum hi + lo, as in erf_erfc.
  static V gelu_erf(V x) {
    const V xc = S::min(S::set1(15.f), S::max(S::set1(-15.f), x));
    const V half = S::set1(0.5f);
    const V a2_high = S::mul(S::mul(xc, xc), half);
    const V a2_low = S::mul(S::fmsub(xc, xc, S::mul(xc, xc)), half);
    const V a = S::min(S::set1(10.5f), S::mul(S::abs(xc), S::set1(0.70710678118654752f)));
    const V t = S::div(S::set1(2.f), S::add(S::set1(2.f), a));
    const V g = poly(S::sub(t, S::set1(0.58f)), -5.679719818e-02f, -2.366357019e-02f, 1.170042368e-01f,
                     1.236194148e-02f, -2.335235501e-01f, -3.267758861e-02f, 6.362538345e-01f, 1.119392017e+00f,
                     1.021239436e+00f, 3.302570633e-01f);
    V gauss = exp(S::neg(a2_high));
    gauss = S::fnmadd(gauss, a2_low, gauss);  // * (1 - lo) == * exp(-lo)
    const V erfc = S::mul(gauss, g);
    const V bracket = S::select(S::ge(x, S::set1(0.f)), S::sub(S::set1(2.f), erfc), erfc);
    return S::mul(S::mul(half, x), bracket);
  }

  // 0.5 x (1 + tanh u) == x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3).
  static V gelu_tanh(V x) {
    const V inner = S::fmadd(S::mul(x, x), S::set1(0.044715f), S::set1(1.f));
    const V minus_2u = S::mul(S::mul(x, inner), S::set1(-2.f * 0.79788456080286536f));
    return S::div(x, S::add(S::set1(1.f), exp(minus_2u)));
  }

  static V silu(V x) { return S::div(x, S::add(S::set1(1.f), exp(S::neg(x)))); }

  // log(1 + e^x) = max(x, 0) + log1p(e^-|x|).
  static V softplus(V x) {
    const V e = exp(S::neg(S::abs(x)));
    return S::add(S::max(S::set1(0.f), x), log1p_positive(e));
  }

  // x tanh(log(1 + e^x)) = x n / (n + 2) with n = e^x (e^x + 2): no cancellation for x << 0.
  static V mish(V x) {
    const V e = exp(S::min(S::set1(20.f), x));
    const V n = S::mul(e, S::add(e, S::set1(2.f)));
    const V y = S::mul(x, S::div(n, S::add(n, S::set1(2.f))));
    return S::select(S::gt(x, S::set1(20.f)), x, y);  // tanh(softplus x) is 1.f past 20
  }
};

}  // namespace
}  // namespace tessera::primitives::detail
