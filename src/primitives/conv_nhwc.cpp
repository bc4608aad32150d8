// Direct NHWC convolution: register tiles of output pixels x output channels, each summed over
// the kernel taps by one batch-reduce call of the ISA's GEMM microkernel (see conv_nhwc.h).
#include "primitives/conv_nhwc.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "primitives/kernels.h"

namespace tessera::primitives {

namespace {

// Weights of at most this many bytes are read from L2 by every output row (rows outer, column
// tiles inner, so the input rows of an output row are read once); heavier ones are swept one
// column tile at a time over all of a thread's rows.
constexpr int64_t kWeightsInL2Bytes = 1 << 20;

// Output columns [lo, hi) of a row whose every horizontal tap lies inside the input row.
struct ColumnRange {
  int64_t lo, hi;
};
ColumnRange interior_columns(const ConvNhwcShape& s) {
  // ow * stride - pad >= 0 and ow * stride + (kernel_w - 1) * dilation - pad <= in_w - 1.
  const int64_t lo = std::min(s.out_w, (s.pad_left + s.stride_w - 1) / s.stride_w);
  const int64_t last = s.in_w - 1 - (s.kernel_w - 1) * s.dilation_w + s.pad_left;
  const int64_t hi = last < 0 ? 0 : std::min(s.out_w, last / s.stride_w + 1);
  return {lo, std::max(lo, hi)};
}

// The tile calls of one thread: pixels of output rows, columns of register tiles.
class ConvNhwcRunner {
 public:
  ConvNhwcRunner(const ConvNhwcShape& s, const ConvNhwcWeights& w, const float* x, const GemmEpilogue* e,
                 float* y)
      : s_(s),
        kernel_(detail::gemm_kernel(active_isa())),
        b_(w.packed()),
        x_(x),
        y_(y),
        interior_(interior_columns(s)),
        a_(size_t(s.taps())),
        b_pointers_(size_t(s.taps())) {
    args_.a_packed = false;
    args_.a_batch = a_.data();
    args_.a_row_stride = s.stride_w * s.in_channels;
    args_.b_padded = true;
    args_.b_batch = b_pointers_.data();
    args_.b_row_stride = b_.panel_width();
    args_.b_vector_offset =
        kernel_.vector_floats == b_.panel_width() ? b_.panel_stride() : kernel_.vector_floats;
    args_.ldc = s.out_channels;
    args_.epilogue = e;
  }

  // Output row `row` (= n * out_h + oh) for column tile `tile`: the pixels whose taps all lie
  // inside the input row in balanced tiles of up to mr, the edge pixels one by one with the taps
  // that do.
  void run_row(int64_t row, int64_t tile) {
    const int64_t n0 = tile * kernel_.nr;
    args_.cols = int(std::min<int64_t>(kernel_.nr, s_.out_channels - n0));
    args_.col0 = n0;
    args_.b_offset = (n0 / b_.panel_width()) * b_.panel_stride() + n0 % b_.panel_width();
    for (int64_t ow = 0; ow < interior_.lo; ++ow) run_pixels(row, ow, 1);
    const int64_t width = interior_.hi - interior_.lo;
    const int64_t tiles = (width + kernel_.mr - 1) / kernel_.mr;
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t begin = interior_.lo + width * t / tiles, end = interior_.lo + width * (t + 1) / tiles;
      run_pixels(row, begin, end - begin);
    }
    for (int64_t ow = interior_.hi; ow < s_.out_w; ++ow) run_pixels(row, ow, 1);
  }

 private:
  // Pixels [ow0, ow0 + count) of output row `row`, summed over the taps inside the input for
  // all of them (padding taps add nothing).
  void run_pixels(int64_t row, int64_t ow0, int64_t count) {
    const int64_t n = row / s_.out_h, oh = row % s_.out_h;
    const float* image = x_ + n * s_.in_h * s_.in_w * s_.in_channels;
    const int64_t iw0 = ow0 * s_.stride_w - s_.pad_left;  // the first pixel's input column at kw = 0
    // With dilation 1 and every horizontal tap inside the row, a kernel row's taps read kernel_w
    // neighbouring pixels: kernel_w x in_channels contiguous floats of input, and as many
    // consecutive rows of the packed weights (tap-major). So they are one batch entry of that
    // depth instead of kernel_w of depth in_channels (a stem's 3 channels: 7 calls of depth 21 in
    // place of 49 of depth 3).
    const bool merge_row =
        s_.dilation_w == 1 && iw0 >= 0 && iw0 + (count - 1) * s_.stride_w + s_.kernel_w <= s_.in_w;
    int64_t taps = 0;
    for (int64_t kh = 0; kh < s_.kernel_h; ++kh) {
      const int64_t ih = oh * s_.stride_h + kh * s_.dilation_h - s_.pad_top;
      if (ih < 0 || ih >= s_.in_h) continue;
      if (merge_row) {
        a_[size_t(taps)] = image + (ih * s_.in_w + iw0) * s_.in_channels;
        b_pointers_[size_t(taps)] = b_.panel(0) + kh * s_.kernel_w * s_.in_channels * b_.panel_width();
        ++taps;
        continue;
      }
      for (int64_t kw = 0; kw < s_.kernel_w; ++kw) {
        const int64_t iw_first = iw0 + kw * s_.dilation_w;
        if (iw_first < 0 || iw_first + (count - 1) * s_.stride_w >= s_.in_w) continue;
        a_[size_t(taps)] = image + (ih * s_.in_w + iw_first) * s_.in_channels;
        b_pointers_[size_t(taps)] = b_.panel(0) + (kh * s_.kernel_w + kw) * s_.in_channels * b_.panel_width();
        ++taps;
      }
    }
    args_.k = merge_row ? s_.kernel_w * s_.in_channels : s_.in_channels;
    args_.batch = taps;
    args_.rows = int(count);
    args_.row0 = row * s_.out_w + ow0;
    args_.c = y_ + args_.row0 * s_.out_channels + args_.col0;
    kernel_.tile(args_);
  }

  const ConvNhwcShape& s_;
  const detail::GemmKernel& kernel_;
  const PackedB& b_;
  const float* x_;
  float* y_;
  ColumnRange interior_;
  std::vector<const float*> a_, b_pointers_;
  detail::GemmTileArgs args_;
};

}  // namespace

void validate_conv_nhwc_shape(const ConvNhwcShape& s) {
  const int64_t positive[] = {s.batch,    s.in_h,         s.in_w,      s.in_channels, s.out_h,
                              s.out_w,    s.out_channels, s.kernel_h,  s.kernel_w,    s.stride_h,
                              s.stride_w, s.dilation_h,   s.dilation_w};
  for (int64_t v : positive)
    if (v <= 0) throw std::invalid_argument("conv_nhwc: sizes, strides and dilations must be positive");
  if (s.pad_top < 0 || s.pad_left < 0) throw std::invalid_argument("conv_nhwc: pads must not be negative");
  // Bounds that keep every index below 2^62 (absurd sizes are refused, not wrapped).
  constexpr int64_t kLimit = int64_t(1) << 31;
  for (int64_t v : positive)
    if (v >= kLimit) throw std::invalid_argument("conv_nhwc: a size of 2^31 or more");
  if (double(s.batch) * double(s.in_h) * double(s.in_w) * double(s.in_channels) > 1e15 ||
      double(s.output_pixels()) * double(s.out_channels) > 1e15 ||
      double(s.taps()) * double(s.in_channels) * double(s.out_channels) > 1e15)
    throw std::invalid_argument("conv_nhwc: tensor sizes past 10^15 elements");
}

ConvNhwcWeights::ConvNhwcWeights(const ConvNhwcShape& s, const float* weights) {
  validate_conv_nhwc_shape(s);
  // W^T with rows (tap, input channel): [out_channels][taps][in_channels], then packed.
  const int64_t taps = s.taps(), ci = s.in_channels;
  std::vector<float> transposed(size_t(s.out_channels * taps * ci));
  for (int64_t o = 0; o < s.out_channels; ++o)
    for (int64_t c = 0; c < ci; ++c)
      for (int64_t t = 0; t < taps; ++t)
        transposed[size_t((o * taps + t) * ci + c)] = weights[(o * ci + c) * taps + t];
  packed_ = PackedB(taps * ci, s.out_channels, transposed.data(), taps * ci, /*transposed=*/true);
}

void conv_nhwc_f32(const ConvNhwcShape& s, const ConvNhwcWeights& weights, const float* x,
                   const GemmEpilogue* epilogue, float* y, ThreadPool* pool) {
  validate_conv_nhwc_shape(s);
  if (weights.packed().K() != s.taps() * s.in_channels || weights.packed().N() != s.out_channels)
    throw std::invalid_argument("conv_nhwc: the packed weights are for another shape");
  const int64_t rows = s.batch * s.out_h;
  const double weight_bytes =
      double(s.taps()) * double(s.in_channels) * double(s.out_channels) * sizeof(float);
  const double input_bytes =
      double(s.batch) * double(s.in_h) * double(s.in_w) * double(s.in_channels) * sizeof(float);
  const int threads = pool ? pool->size() : 1;
  // Each thread reads all the weights and its share of the input (rows), or all the input and
  // its share of the weights (column tiles): the smaller total wins where both can be split.
  const int64_t nr = detail::gemm_kernel(active_isa()).nr;
  const int64_t column_tiles = (s.out_channels + nr - 1) / nr;
  const bool rows_split = rows >= threads, columns_split = column_tiles >= threads;
  const bool split_columns = threads > 1 && columns_split && (weight_bytes > input_bytes || !rows_split);
  const int workers = threads > 1 && (split_columns || rows_split) ? threads : 1;
  auto work = [&](int t) {
    ConvNhwcRunner runner(s, weights, x, epilogue, y);
    const int64_t r0 = split_columns ? 0 : rows * t / workers,
                  r1 = split_columns ? rows : rows * (t + 1) / workers;
    const int64_t c0 = split_columns ? column_tiles * t / workers : 0;
    const int64_t c1 = split_columns ? column_tiles * (t + 1) / workers : column_tiles;
    if (weight_bytes <= double(kWeightsInL2Bytes)) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) runner.run_row(r, c);
    } else {
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = r0; r < r1; ++r) runner.run_row(r, c);
    }
  };
  if (workers == 1) {
    work(0);
    return;
  }
  pool->run_pinned(work);
}

void conv_nhwc_reference_f32(const ConvNhwcShape& s, const float* weights, const float* x, const float* bias,
                             const float* residual, bool relu, float* y) {
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t oh = 0; oh < s.out_h; ++oh)
      for (int64_t ow = 0; ow < s.out_w; ++ow)
        for (int64_t o = 0; o < s.out_channels; ++o) {
          double sum = bias ? bias[o] : 0.0;
          for (int64_t kh = 0; kh < s.kernel_h; ++kh) {
            const int64_t ih = oh * s.stride_h + kh * s.dilation_h - s.pad_top;
            if (ih < 0 || ih >= s.in_h) continue;
            for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
              const int64_t iw = ow * s.stride_w + kw * s.dilation_w - s.pad_left;
              if (iw < 0 || iw >= s.in_w) continue;
              for (int64_t c = 0; c < s.in_channels; ++c)
                sum += double(x[((n * s.in_h + ih) * s.in_w + iw) * s.in_channels + c]) *
                       weights[((o * s.in_channels + c) * s.kernel_h + kh) * s.kernel_w + kw];
            }
          }
          const int64_t out = ((n * s.out_h + oh) * s.out_w + ow) * s.out_channels + o;
          if (residual) sum += residual[out];
          y[out] = float(relu ? std::max(sum, 0.0) : sum);
        }
}

}  // namespace tessera::primitives
