// Winograd F(2x2,3x3) / F(4x4,3x3) convolution driver: plan-time weight transform and packing,
// band tiling that keeps the transformed buffers in L2, the batched GEMMs and the cost model.
#include "ops/winograd.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

namespace tessera {

namespace {

// Per band: transformed input V and GEMM output M (points x tiles x channels each) plus the
// channel-last input rows. Sized to about half of the 2 MiB L2 so that the streamed weights
// of one transform point (C_in x C_out) still fit beside them.
constexpr int64_t kBandBudgetBytes = 1024 * 1024;
constexpr int64_t kMinTilesPerBand = 28;

int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// Row strides that are multiples of 1 KiB put the GEMM's 14 A rows in a few L1 sets (the GEMM
// then copies A instead of reading it in place); one extra vector breaks the pattern.
int64_t padded_stride(int64_t channels) {
  const int64_t padded = round_up(std::max<int64_t>(channels, 1), kWinogradLanes);
  return padded % 256 == 0 ? padded + kWinogradLanes : padded;
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

// A grow-only buffer per thread (pool workers live as long as the pool), so repeated runs do
// not allocate and fault in fresh pages. Cleared when it grows: lanes past the real channel
// count are read by the vector transforms (and discarded), and must not be denormal garbage.
class ThreadScratch {
 public:
  ~ThreadScratch() { std::free(data_); }
  float* get(size_t count) {
    if (count > capacity_) {
      std::free(data_);
      capacity_ = count;
      const size_t bytes = (capacity_ * sizeof(float) + 63) / 64 * 64;
      data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!data_) {
        capacity_ = 0;
        throw std::bad_alloc();
      }
      std::memset(data_, 0, bytes);
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  size_t capacity_ = 0;
};
thread_local ThreadScratch winograd_scratch;

// G of F(2,3) and F(4,3): U = G g G^T maps a 3x3 kernel to the alpha x alpha transform domain.
constexpr double kG2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
constexpr double kG4[6][3] = {{1.0 / 4, 0, 0},
                              {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                              {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                              {1.0 / 24, 1.0 / 12, 1.0 / 6},
                              {1.0 / 24, -1.0 / 12, 1.0 / 6},
                              {0, 0, 1}};

}  // namespace

WinogradConvolution::WinogradConvolution(const WinogradProblem& problem, WinogradVariant variant,
                                         const float* weights, int threads)
    : p_(problem), variant_(variant) {
  tile_ = int64_t(variant);
  alpha_ = tile_ + 2;
  points_ = alpha_ * alpha_;
  tiles_h_ = (p_.out_h + tile_ - 1) / tile_;
  tiles_w_ = (p_.out_w + tile_ - 1) / tile_;
  cin_padded_ = round_up(p_.in_channels, kWinogradLanes);
  cout_padded_ = round_up(p_.out_channels, kWinogradLanes);
  ldv_ = padded_stride(p_.in_channels);
  ldm_ = padded_stride(p_.out_channels);

  // Weight transform in double (the transform matrices have fractions like 1/6 and 1/24), laid
  // out per point as B = U_p[C_in x C_out] for the GEMM [tiles x C_in] x [C_in x C_out].
  const double* g = variant == WinogradVariant::f2x2 ? &kG2[0][0] : &kG4[0][0];
  const int64_t cin = p_.in_channels, cout = p_.out_channels;
  std::vector<float> transformed(size_t(points_ * cin * cout));
  for (int64_t co = 0; co < cout; ++co)
    for (int64_t ci = 0; ci < cin; ++ci) {
      const float* k = weights + (co * cin + ci) * 9;
      double gk[6][3];  // G g
      for (int64_t i = 0; i < alpha_; ++i)
        for (int j = 0; j < 3; ++j)
          gk[i][j] = g[i * 3 + 0] * k[0 * 3 + j] + g[i * 3 + 1] * k[1 * 3 + j] + g[i * 3 + 2] * k[2 * 3 + j];
      for (int64_t i = 0; i < alpha_; ++i)
        for (int64_t j = 0; j < alpha_; ++j) {
          const double u = gk[i][0] * g[j * 3 + 0] + gk[i][1] * g[j * 3 + 1] + gk[i][2] * g[j * 3 + 2];
          transformed[size_t(((i * alpha_ + j) * cin + ci) * cout + co)] = float(u);
        }
    }
  transformed_weights_.reserve(size_t(points_));
  for (int64_t point = 0; point < points_; ++point)
    transformed_weights_.emplace_back(cin, cout, transformed.data() + point * cin * cout, cout, false);

  // Band height: as many tile rows as fit the budget, but at least one band per thread.
  const int64_t bytes_per_tile =
      points_ * (ldv_ + ldm_) * int64_t(sizeof(float)) + tile_ * tile_ * cin_padded_ * int64_t(sizeof(float));
  int64_t rows = std::clamp<int64_t>(kBandBudgetBytes / (bytes_per_tile * tiles_w_), 1, tiles_h_);
  // But at least two GEMM row tiles per band: fewer rows leave the 14-row microkernel mostly
  // empty and stream the transformed weights once per tiny band.
  rows = std::clamp<int64_t>(std::max(rows, (kMinTilesPerBand + tiles_w_ - 1) / tiles_w_), 1, tiles_h_);
  const int64_t bands_wanted = (threads + p_.batch - 1) / std::max<int64_t>(p_.batch, 1);
  if (threads > 1 && (tiles_h_ + rows - 1) / rows < bands_wanted)
    rows = std::max<int64_t>(1, (tiles_h_ + bands_wanted - 1) / bands_wanted);
  bands_ = (tiles_h_ + rows - 1) / rows;
  // Bands go to the threads in contiguous chunks, so their count must divide evenly among them
  // (5 bands on 2 threads run 3 against 2); band_start() spreads the rows so that bands differ by
  // at most one tile row.
  if (threads > 1)
    while ((p_.batch * bands_) % threads != 0 && bands_ < tiles_h_) ++bands_;
  band_tile_rows_ = (tiles_h_ + bands_ - 1) / bands_;  // the tallest band
}

double WinogradConvolution::gemm_flops() const {
  return 2.0 * double(p_.batch * tiles_h_ * tiles_w_) * double(points_) * double(p_.in_channels) *
         double(p_.out_channels);
}

void WinogradConvolution::run_band(int64_t image, int64_t band, const float* x, const float* bias, float* y,
                                   ThreadPool* gemm_pool, const primitives::GemmCheck* check) const {
  const int64_t tr0 = band_start(band), tr1 = band_start(band + 1);
  const int64_t band_rows = tr1 - tr0, tiles = band_rows * tiles_w_;
  const int64_t max_tiles = band_tile_rows_ * tiles_w_;
  const int64_t in_rows = band_rows * tile_ + 2, in_cols = tiles_w_ * tile_ + 2;
  const int64_t row_stride = in_cols * cin_padded_;
  const size_t in_floats = size_t(band_tile_rows_ * tile_ + 2) * size_t(row_stride);
  const size_t v_floats = size_t(points_ * max_tiles * ldv_);
  const size_t m_floats = size_t(points_ * max_tiles * ldm_);
  float* scratch = winograd_scratch.get(in_floats + v_floats + m_floats);
  float* band_input = scratch;
  float* v = band_input + in_floats;
  float* m = v + v_floats;

  // 1. Channel-last copy of the input rows this band reads, zero where the window leaves the
  //    image, so the transform reads every patch without bounds checks (from NHWC a copy of
  //    each pixel's channels, from NCHW a transpose).
  const int64_t in_plane = p_.in_h * p_.in_w;
  const float* x_image = x + image * p_.in_channels * in_plane;
  const int64_t oh0 = tr0 * tile_;
  const int64_t left = std::min(p_.pad_left, in_cols), right = std::min(in_cols, p_.pad_left + p_.in_w);
  for (int64_t r = 0; r < in_rows; ++r) {
    float* dst = band_input + r * row_stride;
    const int64_t ih = oh0 + r - p_.pad_top;
    if (ih < 0 || ih >= p_.in_h) {
      std::memset(dst, 0, size_t(row_stride) * sizeof(float));
      continue;
    }
    if (left > 0) std::memset(dst, 0, size_t(left * cin_padded_) * sizeof(float));
    if (right < in_cols)
      std::memset(dst + right * cin_padded_, 0, size_t((in_cols - right) * cin_padded_) * sizeof(float));
    if (p_.channels_last) {
      const float* src = x_image + (ih * p_.in_w + (left - p_.pad_left)) * p_.in_channels;
      for (int64_t col = left; col < right; ++col, src += p_.in_channels)
        std::memcpy(dst + col * cin_padded_, src, size_t(p_.in_channels) * sizeof(float));
    } else {
      primitives::transpose_2d(p_.in_channels, right - left, x_image + ih * p_.in_w + (left - p_.pad_left),
                               in_plane, dst + left * cin_padded_, cin_padded_, sizeof(float));
    }
  }

  // 2. V[point][tile][C_in] = B^T d B for every patch.
  const WinogradTransformKernels& kernels = transform_kernels();
  WinogradInputArgs in_args;
  in_args.band = band_input;
  in_args.row_stride = row_stride;
  in_args.channel_stride = cin_padded_;
  in_args.channel_blocks = cin_padded_ / kWinogradLanes;
  in_args.tile_rows = band_rows;
  in_args.tile_cols = tiles_w_;
  in_args.v = v;
  in_args.point_stride = max_tiles * ldv_;
  in_args.ldv = ldv_;
  (tile_ == 2 ? kernels.input_f2x2 : kernels.input_f4x4)(in_args);

  // 3. One GEMM per transform point: M_p[tiles x C_out] = V_p[tiles x C_in] * U_p.
  // ABFT checks these GEMMs (the bulk of the work); the transforms around them are not covered.
  primitives::GemmEpilogue epilogue;
  epilogue.check = check;
  auto gemm = [&](int64_t point) {
    primitives::gemm_packed_f32(tiles, v + point * max_tiles * ldv_, ldv_,
                                transformed_weights_[size_t(point)], m + point * max_tiles * ldm_, ldm_,
                                epilogue, nullptr);
  };
  if (gemm_pool && gemm_pool->size() > 1) {
    gemm_pool->parallel_for(points_, [&](int64_t begin, int64_t end) {
      for (int64_t point = begin; point < end; ++point) gemm(point);
    });
  } else {
    for (int64_t point = 0; point < points_; ++point) gemm(point);
  }

  // 4. y = A^T m A + bias, scattered into the NCHW planes or stored per NHWC pixel.
  WinogradOutputArgs out_args;
  out_args.m = m;
  out_args.point_stride = max_tiles * ldm_;
  out_args.ldm = ldm_;
  out_args.channels = p_.out_channels;
  out_args.tile_rows = band_rows;
  out_args.tile_cols = tiles_w_;
  out_args.bias = bias;
  out_args.plane = p_.out_h * p_.out_w;
  out_args.width = p_.out_w;
  out_args.y = y + image * p_.out_channels * out_args.plane +
               oh0 * p_.out_w * (p_.channels_last ? p_.out_channels : 1);
  out_args.pixel_stride = p_.channels_last ? p_.out_channels : 0;
  out_args.valid_rows = std::min(p_.out_h - oh0, band_rows * tile_);
  out_args.valid_cols = p_.out_w;
  (tile_ == 2 ? kernels.output_f2x2 : kernels.output_f4x4)(out_args);
}

void WinogradConvolution::run(const float* x, const float* bias, const float* residual,
                              const primitives::UnaryParams& activation, float* y, ThreadPool& pool,
                              const primitives::GemmCheck* check) const {
  // The vector output step reads bias a whole channel block at a time.
  std::vector<float> padded_bias;
  if (bias) {
    padded_bias.assign(size_t(cout_padded_), 0.f);
    std::copy(bias, bias + p_.out_channels, padded_bias.begin());
  }
  const float* b = bias ? padded_bias.data() : nullptr;
  const int64_t out_plane = p_.out_h * p_.out_w;
  const bool has_activation = activation.kind != primitives::UnaryKind::identity;
  // Residual and activation per band while its rows are still in cache: each channel's band
  // rows are contiguous in NCHW.
  auto finish_band = [&](int64_t image, int64_t band) {
    if (!residual && !has_activation) return;
    const int64_t oh0 = band_start(band) * tile_;
    const int64_t oh1 = std::min(p_.out_h, band_start(band + 1) * tile_);
    const int64_t count = (oh1 - oh0) * p_.out_w;
    const int64_t offset = image * p_.out_channels * out_plane + oh0 * p_.out_w;
    if (p_.channels_last) {  // the band's pixels, all their channels, are one contiguous run
      const int64_t first = (image * out_plane + oh0 * p_.out_w) * p_.out_channels,
                    n = count * p_.out_channels;
      if (residual)
        primitives::binary_f32(primitives::BinaryKind::add, 1, n, y + first, n, 1, residual + first, n, 1,
                               y + first, n);
      if (has_activation) primitives::unary_f32(activation, n, y + first, y + first);
      return;
    }
    if (residual)
      primitives::binary_f32(primitives::BinaryKind::add, p_.out_channels, count, y + offset, out_plane, 1,
                             residual + offset, out_plane, 1, y + offset, out_plane);
    if (has_activation)
      for (int64_t c = 0; c < p_.out_channels; ++c)
        primitives::unary_f32(activation, count, y + offset + c * out_plane, y + offset + c * out_plane);
  };
  const int64_t tasks = p_.batch * bands_;
  if (tasks >= pool.size() && pool.size() > 1) {
    pool.parallel_for(tasks, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        run_band(t / bands_, t % bands_, x, b, y, nullptr, check);
        finish_band(t / bands_, t % bands_);
      }
    });
  } else {
    // Fewer bands than threads (small images): the GEMMs of each band share the pool instead.
    for (int64_t t = 0; t < tasks; ++t) {
      run_band(t / bands_, t % bands_, x, b, y, &pool, check);
      finish_band(t / bands_, t % bands_);
    }
  }
}

WinogradProblem channels_last_winograd_problem(const primitives::ConvNhwcShape& s) {
  WinogradProblem p;
  p.batch = s.batch;
  p.in_channels = s.in_channels;
  p.out_channels = s.out_channels;
  p.in_h = s.in_h;
  p.in_w = s.in_w;
  p.out_h = s.out_h;
  p.out_w = s.out_w;
  p.pad_top = s.pad_top;
  p.pad_left = s.pad_left;
  p.channels_last = true;
  return p;
}

// The arithmetic divides over the threads; streaming the weights from memory does not (it is
// bound by latency more than by bandwidth): at 2 threads F(2x2)'s 16.8 MB of transformed weights
// for ResNet-50's 512-channel 7x7 layers took 1.66-1.75 ms against 1.35 for im2col + GEMM, which
// reads 9.4 MB, though both ran about 2.1 ms on one thread.
double estimate_conv3x3_seconds(const WinogradProblem& p, int variant, int threads) {
  const double parallel = double(std::max(1, threads));
  const double direct_flops =
      2.0 * 9.0 * double(p.batch * p.out_h * p.out_w) * double(p.in_channels) * double(p.out_channels);
  // Measured single-thread rate of the im2col + GEMM path on ResNet-50's 3x3 layers.
  constexpr double kDirectRate = 100e9;
  // Weights stream from L3 or memory once per run when they do not fit in L2, for either algorithm.
  constexpr double kWeightBandwidth = 20e9;
  constexpr double kL2Bytes = 1024.0 * 1024.0;
  if (variant == 0) {
    const double weight_bytes = 9.0 * double(p.in_channels * p.out_channels) * 4.0;
    const double streaming = weight_bytes > kL2Bytes ? weight_bytes / kWeightBandwidth : 0.0;
    return direct_flops / kDirectRate / parallel + streaming;
  }
  const int64_t tile = variant, alpha = tile + 2, points = alpha * alpha;
  const int64_t tiles_h = (p.out_h + tile - 1) / tile, tiles_w = (p.out_w + tile - 1) / tile;
  const double tiles = double(p.batch * tiles_h * tiles_w);
  const double gemm_flops = 2.0 * tiles * double(points) * double(p.in_channels) * double(p.out_channels);
  // The GEMM microkernel is 14 rows x 32 columns: short tile counts or channel counts that are
  // not multiples of 32 run partly empty tiles; short K pays the C load/store per tile.
  auto fill = [](double n, double block) { return n / (std::ceil(n / block) * block); };
  const double rows = std::min<double>(tiles, 56);
  const double efficiency = fill(rows, 14) * fill(double(p.out_channels), 32) *
                            (double(p.in_channels) / (double(p.in_channels) + 16.0));
  constexpr double kGemmRate = 150e9;
  double seconds = gemm_flops / (kGemmRate * efficiency);
  // Transforms: each transformed value is written once and read once (input: alpha^2 per tile and
  // input channel, plus the channel-last copy; output: alpha^2 per tile and output channel).
  constexpr double kSecondsPerValue = 0.25e-9;
  seconds += kSecondsPerValue * tiles * double(points) * double(p.in_channels + p.out_channels);
  seconds /= parallel;
  // Transformed weights are streamed once per band; from L3 when they do not fit in L2.
  const double weight_bytes = double(points) * double(p.in_channels * p.out_channels) * 4.0;
  const double bands = std::max(1.0, tiles / 56.0);
  if (weight_bytes > kL2Bytes) seconds += bands * weight_bytes / kWeightBandwidth;
  return seconds;
}

}  // namespace tessera
