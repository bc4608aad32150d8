// Int8 Winograd convolution: weight transform and per-tap quantization at plan time; per image the
// f32 input transform (the f32 Winograd's own kernels), per-tap quantization, int8 GEMMs, f32 output.
#include "compression/winograd_int8.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "primitives/primitives.h"
#include "tessera/error.h"

namespace tessera::compression {

namespace {

int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// G of F(2,3) and F(4,3) (Lavin and Gray), as in src/ops/winograd.cpp.
constexpr double kG2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
constexpr double kG4[6][3] = {{1.0 / 4, 0, 0},
                              {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                              {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                              {1.0 / 24, 1.0 / 12, 1.0 / 6},
                              {1.0 / 24, -1.0 / 12, 1.0 / 6},
                              {0, 0, 1}};
// B^T of F(2,3) and F(4,3), for the calibration statistics (the kernels use the vector transforms).
constexpr float kBT2[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
constexpr float kBT4[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                              {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};

void check_tile(int tile) {
  TESSERA_CHECK(tile == 2 || tile == 4,
                "int8 Winograd: the output tile must be 2 (F(2x2,3x3)) or 4 (F(4x4,3x3)), got " + std::to_string(tile));
}

const WinogradTransformKernels& transform_kernels() {
  switch (primitives::active_isa()) {
    case primitives::Isa::avx512:
      return winograd_avx512::kKernels;
    case primitives::Isa::avx2:
      return winograd_avx2::kKernels;
    default:
      return winograd_scalar::kKernels;
  }
}

// code + 128 as u8 (the GEMM's unsigned operand with zero point 128). Rounds half to even by the
// 1.5 * 2^23 trick (exact for the clamped range), so the loop vectorizes without SSE4.1 rounding.
void quantize_tap(const float* v, int64_t rows, int64_t cols, int64_t ldv, float scale, uint8_t* codes,
                  int64_t lda) {
  constexpr float kRound = 12582912.f;  // 1.5 * 2^23
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = v + r * ldv;
    uint8_t* dst = codes + r * lda;
    for (int64_t c = 0; c < cols; ++c) {
      const float q = std::min(std::max(src[c] / scale, -127.f), 127.f);
      const float rounded = (q + kRound) - kRound;
      dst[c] = uint8_t(int32_t(rounded) + 128);
    }
  }
}

// Grow-only per-thread buffers (cleared when they grow, so padded lanes are finite zeros).
template <typename T>
class ThreadBuffer {
 public:
  T* get(size_t count) {
    if (count > data_.size()) data_.assign(count, T(0));
    return data_.data();
  }

 private:
  std::vector<T> data_;
};
thread_local ThreadBuffer<float> float_scratch;
thread_local ThreadBuffer<uint8_t> code_scratch;

}  // namespace

float winograd_int8_scale(float max_abs, bool power_of_two) {
  if (!(max_abs > 0.f) || !std::isfinite(max_abs)) return 1.f;
  const float scale = max_abs / 127.f;
  if (!power_of_two) return scale;
  // Smallest 2^e >= scale, so the largest value still maps inside [-127, 127].
  int exponent = 0;
  const float mantissa = std::frexp(scale, &exponent);  // scale = mantissa * 2^exponent, mantissa in [0.5, 1)
  return mantissa == 0.5f ? scale : std::ldexp(1.f, exponent);
}

WinogradInt8Weights quantize_winograd_weights(const float* weights, int64_t out_channels, int64_t in_channels,
                                              const WinogradInt8Scheme& scheme) {
  check_tile(scheme.tile);
  TESSERA_CHECK(out_channels > 0 && in_channels > 0, "int8 Winograd: empty weights");
  WinogradInt8Weights out;
  out.tile = scheme.tile;
  out.in_channels = in_channels;
  out.out_channels = out_channels;
  const int64_t alpha = scheme.tile + 2, taps = out.taps();
  const double* g = scheme.tile == 2 ? &kG2[0][0] : &kG4[0][0];
  std::vector<double> transformed(size_t(taps * in_channels * out_channels));  // [tap][ci][co]
  for (int64_t co = 0; co < out_channels; ++co)
    for (int64_t ci = 0; ci < in_channels; ++ci) {
      const float* k = weights + (co * in_channels + ci) * 9;
      double gk[6][3];  // G g
      for (int64_t i = 0; i < alpha; ++i)
        for (int j = 0; j < 3; ++j)
          gk[i][j] = g[i * 3 + 0] * k[0 * 3 + j] + g[i * 3 + 1] * k[1 * 3 + j] + g[i * 3 + 2] * k[2 * 3 + j];
      for (int64_t i = 0; i < alpha; ++i)
        for (int64_t j = 0; j < alpha; ++j)
          transformed[size_t(((i * alpha + j) * in_channels + ci) * out_channels + co)] =
              gk[i][0] * g[j * 3 + 0] + gk[i][1] * g[j * 3 + 1] + gk[i][2] * g[j * 3 + 2];
    }
  // max |U| per (tap, output channel), then over taps when the scales are shared.
  std::vector<float> max_abs(size_t(taps * out_channels), 0.f);
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t ci = 0; ci < in_channels; ++ci)
      for (int64_t co = 0; co < out_channels; ++co) {
        float& m = max_abs[size_t(t * out_channels + co)];
        m = std::max(m, float(std::fabs(transformed[size_t((t * in_channels + ci) * out_channels + co)])));
      }
  if (!scheme.tap_wise)
    for (int64_t co = 0; co < out_channels; ++co) {
      float m = 0.f;
      for (int64_t t = 0; t < taps; ++t) m = std::max(m, max_abs[size_t(t * out_channels + co)]);
      for (int64_t t = 0; t < taps; ++t) max_abs[size_t(t * out_channels + co)] = m;
    }
  out.scales.resize(max_abs.size());
  for (size_t i = 0; i < max_abs.size(); ++i) out.scales[i] = winograd_int8_scale(max_abs[i], scheme.power_of_two);
  out.codes.resize(transformed.size());
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t ci = 0; ci < in_channels; ++ci)
      for (int64_t co = 0; co < out_channels; ++co) {
        const size_t i = size_t((t * in_channels + ci) * out_channels + co);
        const double q = std::nearbyint(transformed[i] / double(out.scales[size_t(t * out_channels + co)]));
        out.codes[i] = int8_t(std::clamp(q, -127.0, 127.0));
      }
  return out;
}

namespace {

// Calls visit(tap, |V|) for every transformed input value (scalar, for calibration).
template <typename Visit>
void for_each_transformed_input(const float* x, const WinogradProblem& p, int tile, Visit&& visit) {
  check_tile(tile);
  const int alpha = tile + 2;
  const float* bt = tile == 2 ? &kBT2[0][0] : &kBT4[0][0];
  const int64_t tiles_h = (p.out_h + tile - 1) / tile, tiles_w = (p.out_w + tile - 1) / tile;
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t c = 0; c < p.in_channels; ++c) {
      const float* plane = x + (n * p.in_channels + c) * p.in_h * p.in_w;
      for (int64_t th = 0; th < tiles_h; ++th)
        for (int64_t tw = 0; tw < tiles_w; ++tw) {
          float d[6][6], t[6][6];
          for (int i = 0; i < alpha; ++i)
            for (int j = 0; j < alpha; ++j) {
              const int64_t h = th * tile + i - p.pad_top, w = tw * tile + j - p.pad_left;
              d[i][j] = h >= 0 && h < p.in_h && w >= 0 && w < p.in_w ? plane[h * p.in_w + w] : 0.f;
            }
          for (int i = 0; i < alpha; ++i)  // B^T d
            for (int j = 0; j < alpha; ++j) {
              float s = 0.f;
              for (int k = 0; k < alpha; ++k) s += bt[i * alpha + k] * d[k][j];
              t[i][j] = s;
            }
          for (int i = 0; i < alpha; ++i)  // (B^T d) B
            for (int j = 0; j < alpha; ++j) {
              float s = 0.f;
              for (int k = 0; k < alpha; ++k) s += t[i][k] * bt[j * alpha + k];
              visit(i * alpha + j, std::fabs(s));
            }
        }
    }
}

}  // namespace

std::vector<float> winograd_input_tap_max(const float* x, const WinogradProblem& p, int tile) {
  std::vector<float> tap_max(size_t((tile + 2) * (tile + 2)), 0.f);
  for_each_transformed_input(x, p, tile, [&](int tap, float v) { tap_max[size_t(tap)] = std::max(tap_max[size_t(tap)], v); });
  return tap_max;
}

std::vector<double> winograd_input_tap_histograms(const float* x, const WinogradProblem& p, int tile,
                                                  const std::vector<float>& range, int bins) {
  const size_t taps = size_t((tile + 2) * (tile + 2));
  TESSERA_CHECK(range.size() == taps && bins > 0, "int8 Winograd: one histogram range per tap");
  std::vector<double> histograms(taps * size_t(bins), 0.0);
  for_each_transformed_input(x, p, tile, [&](int tap, float v) {
    const float r = range[size_t(tap)];
    const int bin = r > 0.f ? std::min(bins - 1, int(v / r * float(bins))) : 0;
    histograms[size_t(tap) * size_t(bins) + size_t(bin)] += 1.0;
  });
  return histograms;
}

std::vector<float> winograd_activation_scales_mse(const std::vector<float>& tap_max,
                                                  const std::vector<double>& histograms, int bins,
                                                  const WinogradInt8Scheme& scheme) {
  const size_t taps = tap_max.size();
  TESSERA_CHECK(histograms.size() == taps * size_t(bins), "int8 Winograd: histograms do not match the taps");
  // Estimated squared error of quantizing tap t's values with scale s.
  auto error = [&](size_t t, double s) {
    double total = 0;
    const double width = double(tap_max[t]) / bins, limit = 127.0 * s;
    for (int b = 0; b < bins; ++b) {
      const double count = histograms[t * size_t(bins) + size_t(b)];
      if (count == 0) continue;
      const double v = (b + 0.5) * width;
      total += count * (v > limit ? (v - limit) * (v - limit) : s * s / 12.0);
    }
    return total;
  };
  auto candidates = [&](float max_abs) {
    std::vector<float> out;
    const float top = winograd_int8_scale(max_abs, scheme.power_of_two);
    if (scheme.power_of_two)
      for (int k = 0; k <= 4; ++k) out.push_back(std::ldexp(top, -k));
    else
      for (int k = 0; k <= 20; ++k) out.push_back(top * std::pow(0.25f, float(k) / 20.f));
    return out;
  };
  std::vector<float> scales(taps);
  if (scheme.tap_wise) {
    for (size_t t = 0; t < taps; ++t) {
      double best = -1;
      for (float s : candidates(tap_max[t])) {
        const double e = error(t, s);
        if (best < 0 || e < best) {
          best = e;
          scales[t] = s;
        }
      }
    }
  } else {
    const float overall = taps ? *std::max_element(tap_max.begin(), tap_max.end()) : 0.f;
    double best = -1;
    float chosen = winograd_int8_scale(overall, scheme.power_of_two);
    for (float s : candidates(overall)) {
      double e = 0;
      for (size_t t = 0; t < taps; ++t) e += error(t, s);
      if (best < 0 || e < best) {
        best = e;
        chosen = s;
      }
    }
    std::fill(scales.begin(), scales.end(), chosen);
  }
  return scales;
}

std::vector<float> winograd_activation_scales(const std::vector<float>& tap_max, const WinogradInt8Scheme& scheme) {
  std::vector<float> scales(tap_max.size());
  const float overall = tap_max.empty() ? 0.f : *std::max_element(tap_max.begin(), tap_max.end());
  for (size_t t = 0; t < tap_max.size(); ++t)
    scales[t] = winograd_int8_scale(scheme.tap_wise ? tap_max[t] : overall, scheme.power_of_two);
  return scales;
}

WinogradInt8Convolution::WinogradInt8Convolution(const WinogradProblem& problem, int tile, const int8_t* codes,
                                                 const float* weight_scales, const float* activation_scales)
    : p_(problem) {
  check_tile(tile);
  TESSERA_CHECK(p_.batch >= 0 && p_.in_channels > 0 && p_.out_channels > 0 && p_.out_h > 0 && p_.out_w > 0,
                "int8 Winograd: empty convolution");
  tile_ = tile;
  alpha_ = tile + 2;
  taps_ = alpha_ * alpha_;
  tiles_h_ = (p_.out_h + tile_ - 1) / tile_;
  tiles_w_ = (p_.out_w + tile_ - 1) / tile_;
  cin_padded_ = round_up(p_.in_channels, kWinogradLanes);
  cout_padded_ = round_up(p_.out_channels, kWinogradLanes);
  lda_ = round_up(p_.in_channels, 4);
  activation_scales_.assign(activation_scales, activation_scales + taps_);
  for (float s : activation_scales_)
    TESSERA_CHECK(s > 0.f && std::isfinite(s), "int8 Winograd: activation scales must be positive and finite");
  const int64_t cin = p_.in_channels, cout = p_.out_channels;
  packed_.reserve(size_t(taps_));
  epilogues_.reserve(size_t(taps_));
  std::vector<float> dequant(static_cast<size_t>(cout));
  for (int64_t t = 0; t < taps_; ++t) {
    packed_.emplace_back(cin, cout, codes + t * cin * cout, cout, false);
    for (int64_t co = 0; co < cout; ++co) {
      const float sw = weight_scales[t * cout + co];
      TESSERA_CHECK(sw > 0.f && std::isfinite(sw), "int8 Winograd: weight scales must be positive and finite");
      dequant[size_t(co)] = activation_scales_[size_t(t)] * sw;
    }
    primitives::Int8Epilogue e;
    e.output = primitives::Int8Epilogue::Output::f32;
    e.scale = dequant.data();
    e.a_zero_point = 128;  // signed codes stored as code + 128
    epilogues_.emplace_back(packed_.back(), e);
  }
}

double WinogradInt8Convolution::gemm_ops() const {
  return 2.0 * double(p_.batch * tiles_h_ * tiles_w_) * double(taps_) * double(p_.in_channels) *
         double(p_.out_channels);
}

void WinogradInt8Convolution::run_image(const float* x, const float* padded_bias, bool relu, float* y,
                                        ThreadPool* gemm_pool) const {
  const int64_t tiles = tiles_h_ * tiles_w_;
  const int64_t in_rows = tiles_h_ * tile_ + 2, in_cols = tiles_w_ * tile_ + 2;
  const int64_t row_stride = in_cols * cin_padded_;
  const size_t in_floats = size_t(in_rows * row_stride);
  const size_t v_floats = size_t(taps_ * tiles * cin_padded_);
  const size_t m_floats = size_t(taps_ * tiles * cout_padded_);
  float* band = float_scratch.get(in_floats + v_floats + m_floats);
  float* v = band + in_floats;
  float* m = v + v_floats;
  uint8_t* codes = code_scratch.get(size_t(taps_ * tiles * lda_));

  // 1. Channel-last copy of the whole image with its zero border (the input transform reads every
  //    patch without bounds checks).
  const int64_t in_plane = p_.in_h * p_.in_w;
  const int64_t left = std::min(p_.pad_left, in_cols), right = std::min(in_cols, p_.pad_left + p_.in_w);
  for (int64_t r = 0; r < in_rows; ++r) {
    float* dst = band + r * row_stride;
    const int64_t ih = r - p_.pad_top;
    if (ih < 0 || ih >= p_.in_h || right <= left) {
      std::memset(dst, 0, size_t(row_stride) * sizeof(float));
      continue;
    }
    if (left > 0) std::memset(dst, 0, size_t(left * cin_padded_) * sizeof(float));
    if (right < in_cols)
      std::memset(dst + right * cin_padded_, 0, size_t((in_cols - right) * cin_padded_) * sizeof(float));
    primitives::transpose_2d(p_.in_channels, right - left, x + ih * p_.in_w + (left - p_.pad_left), in_plane,
                             dst + left * cin_padded_, cin_padded_, sizeof(float));
  }

  // 2. V[tap][tile][C_in] = B^T d B in f32.
  const WinogradTransformKernels& kernels = transform_kernels();
  WinogradInputArgs in_args;
  in_args.band = band;
  in_args.row_stride = row_stride;
  in_args.channel_stride = cin_padded_;
  in_args.channel_blocks = cin_padded_ / kWinogradLanes;
  in_args.tile_rows = tiles_h_;
  in_args.tile_cols = tiles_w_;
  in_args.v = v;
  in_args.point_stride = tiles * cin_padded_;
  in_args.ldv = cin_padded_;
  (tile_ == 2 ? kernels.input_f2x2 : kernels.input_f4x4)(in_args);

  // 3. Per tap: quantize V with that tap's scale, then M = sa * sw * (codes x weight codes).
  for (int64_t t = 0; t < taps_; ++t) {
    uint8_t* a = codes + t * tiles * lda_;
    quantize_tap(v + t * tiles * cin_padded_, tiles, p_.in_channels, cin_padded_, activation_scales_[size_t(t)], a,
                 lda_);
    primitives::gemm_u8s8_packed(tiles, a, lda_, packed_[size_t(t)], m + t * tiles * cout_padded_, cout_padded_,
                                 epilogues_[size_t(t)], nullptr, 0, gemm_pool);
  }

  // 4. y = A^T M A + bias in f32, scattered into the NCHW planes.
  WinogradOutputArgs out_args;
  out_args.m = m;
  out_args.point_stride = tiles * cout_padded_;
  out_args.ldm = cout_padded_;
  out_args.channels = p_.out_channels;
  out_args.tile_rows = tiles_h_;
  out_args.tile_cols = tiles_w_;
  out_args.bias = padded_bias;
  out_args.plane = p_.out_h * p_.out_w;
  out_args.width = p_.out_w;
  out_args.y = y;
  out_args.valid_rows = p_.out_h;
  out_args.valid_cols = p_.out_w;
  (tile_ == 2 ? kernels.output_f2x2 : kernels.output_f4x4)(out_args);
  if (relu) {
    const int64_t count = p_.out_channels * p_.out_h * p_.out_w;
    for (int64_t i = 0; i < count; ++i) y[i] = std::max(y[i], 0.f);
  }
}

void WinogradInt8Convolution::run(const float* x, const float* bias, bool relu, float* y, ThreadPool& pool) const {
  std::vector<float> padded_bias;  // the output transform reads bias a whole lane block at a time
  if (bias) {
    padded_bias.assign(size_t(cout_padded_), 0.f);
    std::copy(bias, bias + p_.out_channels, padded_bias.begin());
  }
  const float* b = bias ? padded_bias.data() : nullptr;
  const int64_t image_in = p_.in_channels * p_.in_h * p_.in_w, image_out = p_.out_channels * p_.out_h * p_.out_w;
  // Many images: one per task with single-threaded GEMMs; few: each GEMM takes the pool.
  if (p_.batch >= pool.size() && pool.size() > 1) {
    pool.run_tasks(int(p_.batch), [&](int n) { run_image(x + n * image_in, b, relu, y + n * image_out, nullptr); });
  } else {
    for (int64_t n = 0; n < p_.batch; ++n) run_image(x + n * image_in, b, relu, y + n * image_out, &pool);
  }
}

}  // namespace tessera::compression
