// Fast path for 2-D planes (any kernel, stride and dilation up to a bound): the padded input is
// split once into stride phases so every tap becomes a flat, unit-stride shift of one small buffer.
// Included by conv_depthwise_impl.h inside its per-ISA anonymous namespace (after immintrin.h).

#if defined(__AVX512F__)
constexpr int64_t kLanes = 16;
#elif defined(__AVX2__)
constexpr int64_t kLanes = 8;
#else
constexpr int64_t kLanes = 4;
#endif
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t LaneIndex __attribute__((vector_size(kLanes * sizeof(int32_t))));

// Phase planes, accumulators and one padded row share this stack buffer; 24 KiB keeps them all in
// L1 next to the input rows being read.
constexpr int64_t kBufferFloats = 6144;
constexpr int64_t kMaxTaps = 64;
constexpr int64_t kMaxStride = 4;

inline __attribute__((always_inline)) Vec load(const float* p) {
  Vec v;
  __builtin_memcpy(&v, p, sizeof v);  // unaligned; one vector move
  return v;
}
inline __attribute__((always_inline)) void store(float* p, Vec v) { __builtin_memcpy(p, &v, sizeof v); }
inline __attribute__((always_inline)) Vec splat(float x) { return Vec{} + x; }

inline __attribute__((always_inline)) Vec apply_clamp(Vec v, Vec low, Vec high) {
  v = v < low ? low : v;  // NaN compares false and passes through, as in the unary primitive
  return v > high ? high : v;
}

inline float clamp_scalar(float v, const DepthwiseEpilogue& e) {
  if (!e.clamp) return v;
  v = v < e.clamp_low ? e.clamp_low : v;
  return v > e.clamp_high ? e.clamp_high : v;
}

// Writes n (< kLanes) outputs of `values` (plus the residual) without touching memory past them:
// the plane ends there and the next one may belong to another thread.
inline void store_partial(float* out, const float* residual, Vec values, int64_t n,
                          const DepthwiseEpilogue& e) {
  // max/min return their second operand on NaN, so NaN passes through as in apply_clamp.
#if defined(__AVX512F__)
  const __mmask16 mask = __mmask16((1u << n) - 1);
  __m512 v = (__m512)values;
  if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, residual));
  if (e.clamp)
    v = _mm512_min_ps(_mm512_set1_ps(e.clamp_high), _mm512_max_ps(_mm512_set1_ps(e.clamp_low), v));
  _mm512_mask_storeu_ps(out, mask, v);
#elif defined(__AVX2__)
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)),
                                          _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  __m256 v = (__m256)values;
  if (residual) v = _mm256_add_ps(v, _mm256_maskload_ps(residual, mask));
  if (e.clamp)
    v = _mm256_min_ps(_mm256_set1_ps(e.clamp_high), _mm256_max_ps(_mm256_set1_ps(e.clamp_low), v));
  _mm256_maskstore_ps(out, mask, v);
#else
  float lanes[kLanes];
  __builtin_memcpy(lanes, &values, sizeof values);
  for (int64_t i = 0; i < n; ++i) out[i] = clamp_scalar(lanes[i] + (residual ? residual[i] : 0.f), e);
#endif
}

// Where each tap reads in the phase buffer, fixed for the whole plane.
struct FlatPlan {
  int64_t in_h, in_w, out_h, out_w;
  int64_t stride_h, stride_w, pad_h, pad_w;
  int64_t row_width;      // Wq: floats per phase-plane row (output width + extra columns the taps reach)
  int64_t extra_rows;     // phase-plane rows beyond the output rows of a chunk
  int64_t chunk_rows;     // output rows per pass through the buffer
  int64_t plane_floats;   // one phase plane including its zeroed slack
  int64_t taps;
  int64_t tap_offset[kMaxTaps];  // from the accumulator index into the phase buffer
};

// False when the shape is outside what the flat path handles (3-D, large strides or kernels, or
// rows too wide for the buffer); the row kernels then run instead.
inline bool make_flat_plan(const DepthwisePlaneShape& s, FlatPlan* p) {
  if (s.input[0] != 1 || s.output[0] != 1 || s.kernel[0] != 1) return false;
  const int64_t kh = s.kernel[1], kw = s.kernel[2];
  if (kh * kw > kMaxTaps || s.stride[1] > kMaxStride || s.stride[2] > kMaxStride) return false;
  p->in_h = s.input[1];
  p->in_w = s.input[2];
  p->out_h = s.output[1];
  p->out_w = s.output[2];
  p->stride_h = s.stride[1];
  p->stride_w = s.stride[2];
  p->pad_h = s.pad_begin[1];
  p->pad_w = s.pad_begin[2];
  const int64_t reach_h = (kh - 1) * s.dilation[1] / p->stride_h;
  const int64_t reach_w = (kw - 1) * s.dilation[2] / p->stride_w;
  p->row_width = p->out_w + reach_w;
  p->extra_rows = reach_h;
  const int64_t phases = p->stride_h * p->stride_w;
  // Slack after each phase plane: the last accumulator vector runs up to kLanes - 1 past the
  // outputs, and the stride-2 split writes whole vectors past a row's end.
  const int64_t slack = (reach_w + 2 * kLanes + kLanes - 1) / kLanes * kLanes;
  // The padded row holds Wq * stride_w floats, two vectors the split reads past them, and one
  // more for pad_row's overrun.
  const int64_t padded_row = (p->row_width * p->stride_w + 3 * kLanes + kLanes - 1) / kLanes * kLanes;
  // Budget: phases * ((rows + extra) * Wq + slack) + rows * Wq + kLanes + padded_row.
  const int64_t fixed =
      phases * (p->extra_rows * p->row_width + slack + kLanes) + 2 * kLanes + padded_row;
  const int64_t rows = (kBufferFloats - fixed) / ((phases + 1) * p->row_width);
  if (rows < 1) return false;
  p->chunk_rows = rows < p->out_h ? rows : p->out_h;
  p->plane_floats =
      ((p->chunk_rows + p->extra_rows) * p->row_width + slack + kLanes - 1) / kLanes * kLanes;
  p->taps = kh * kw;
  for (int64_t y = 0; y < kh; ++y)
    for (int64_t x = 0; x < kw; ++x) {
      const int64_t ry = y * s.dilation[1], rx = x * s.dilation[2];
      const int64_t phase = (ry % p->stride_h) * p->stride_w + rx % p->stride_w;
      p->tap_offset[y * kw + x] =
          phase * p->plane_floats + (ry / p->stride_h) * p->row_width + rx / p->stride_w;
    }
  return true;
}

// Loads n (< kLanes) floats and zeros the other lanes, without reading past them: the input
// tensor may end right there.
inline Vec load_partial(const float* p, int64_t n) {
#if defined(__AVX512F__)
  return (Vec)_mm512_maskz_loadu_ps(__mmask16((1u << n) - 1), p);
#elif defined(__AVX2__)
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)),
                                          _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return (Vec)_mm256_maskload_ps(p, mask);
#else
  Vec v = {};
  for (int64_t i = 0; i < n; ++i) v[i] = p[i];
  return v;
#endif
}

// dst[0, width) = the zero-padded row: zeros, then src[0, count) at dst + offset, then zeros.
// Whole-vector stores may run up to kLanes - 1 floats past `width` (callers leave room); inline
// vector code rather than memset/memcpy calls, which cost more than the copy on 7..16-float rows.
inline void pad_row(float* dst, int64_t width, const float* src, int64_t offset, int64_t count) {
  const Vec zero = {};
  for (int64_t x = 0; x < width; x += kLanes) store(dst + x, zero);
  float* out = dst + offset;
  int64_t x = 0;
  for (; x + kLanes <= count; x += kLanes) store(out + x, load(src + x));
  if (x < count) store(out + x, load_partial(src + x, count - x));  // its zero lanes are padding
}

// Fills the phase planes for output rows [y0, y0 + rows): phase (a, b) row r column c holds
// padded input (r * stride_h + a, c * stride_w + b), zero outside the image. Rows are written in
// increasing order, so a store that runs past a row's end is overwritten by the next row (the
// last row's overrun lands in the plane's slack).
inline void fill_phases(const FlatPlan& p, const float* input, int64_t y0, int64_t rows,
                        float* phases, float* padded_row) {
  const int64_t wq = p.row_width, sw = p.stride_w;
  const int64_t plane_rows = rows + p.extra_rows;
  // Padded columns [lo, hi) come from the image; the rest are zero.
  const int64_t padded_width = wq * sw;
  int64_t lo = p.pad_w < padded_width ? p.pad_w : padded_width;
  int64_t hi = p.pad_w + p.in_w < padded_width ? p.pad_w + p.in_w : padded_width;
  if (hi < lo) hi = lo;
  for (int64_t a = 0; a < p.stride_h; ++a) {
    float* plane_a = phases + a * sw * p.plane_floats;
    for (int64_t r = 0; r < plane_rows; ++r) {
      const int64_t iy = (y0 + r) * p.stride_h + a - p.pad_h;
      const bool inside = iy >= 0 && iy < p.in_h && hi > lo;
      const float* src = input + (inside ? iy * p.in_w + (lo - p.pad_w) : 0);
      if (sw == 1) {
        pad_row(plane_a + r * wq, wq, src, lo, inside ? hi - lo : 0);
        continue;
      }
      // Pad the row once, then split it into its column phases.
      pad_row(padded_row, padded_width + 2 * kLanes, src, lo, inside ? hi - lo : 0);
      if (sw == 2) {
        LaneIndex even, odd;
        for (int i = 0; i < kLanes; ++i) {
          even[i] = 2 * i;
          odd[i] = 2 * i + 1;
        }
        float* dst_even = plane_a + r * wq;
        float* dst_odd = plane_a + p.plane_floats + r * wq;
        for (int64_t c = 0; c < wq; c += kLanes) {
          const Vec first = load(padded_row + 2 * c), second = load(padded_row + 2 * c + kLanes);
          store(dst_even + c, __builtin_shuffle(first, second, even));
          store(dst_odd + c, __builtin_shuffle(first, second, odd));
        }
      } else {
        for (int64_t b = 0; b < sw; ++b) {
          float* dst = plane_a + b * p.plane_floats + r * wq;
          for (int64_t c = 0; c < wq; ++c) dst[c] = padded_row[c * sw + b];
        }
      }
    }
  }
}

// acc[v] = bias + sum_t w[t] * phases[tap_offset[t] + v] over `vectors` vectors; kTaps > 0
// unrolls the tap loop (3x3), 0 reads the count from the plan.
template <int kTaps>
inline void accumulate(const FlatPlan& p, const float* phases, const float* weights, float bias,
                       int64_t vectors, float* acc) {
  const int64_t taps = kTaps > 0 ? kTaps : p.taps;
  const float* source[kMaxTaps];
  for (int64_t t = 0; t < taps; ++t) source[t] = phases + p.tap_offset[t];
  const Vec b = splat(bias);
  if (kTaps > 0) {
    Vec w[kTaps > 0 ? kTaps : 1];
    for (int t = 0; t < kTaps; ++t) w[t] = splat(weights[t]);
    for (int64_t v = 0; v < vectors * kLanes; v += kLanes) {
      Vec sum = b;
      for (int t = 0; t < kTaps; ++t) sum += w[t] * load(source[t] + v);
      store(acc + v, sum);
    }
    return;
  }
  for (int64_t v = 0; v < vectors * kLanes; v += kLanes) {
    Vec sum = b;
    for (int64_t t = 0; t < taps; ++t) sum += splat(weights[t]) * load(source[t] + v);
    store(acc + v, sum);
  }
}

// Copies output rows [y0, y0 + rows) out of the accumulators (row pitch Wq) with the epilogue.
inline void store_rows(const FlatPlan& p, const float* acc, int64_t y0, int64_t rows,
                       const DepthwiseEpilogue& e, float* output) {
  const Vec low = splat(e.clamp ? e.clamp_low : 0.f), high = splat(e.clamp ? e.clamp_high : 0.f);
  const int64_t w = p.out_w;
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = acc + r * p.row_width;
    float* out = output + (y0 + r) * w;
    const float* residual = e.residual ? e.residual + (y0 + r) * w : nullptr;
    int64_t x = 0;
    for (; x + kLanes <= w; x += kLanes) {
      Vec v = load(a + x);
      if (residual) v += load(residual + x);
      if (e.clamp) v = apply_clamp(v, low, high);
      store(out + x, v);
    }
    if (x < w) store_partial(out + x, residual ? residual + x : nullptr, load(a + x), w - x, e);
  }
}

inline void flat_plane(const FlatPlan& p, const float* input, const float* weights, float bias,
                       const DepthwiseEpilogue& e, float* output) {
  alignas(64) float buffer[kBufferFloats];
  const int64_t phase_count = p.stride_h * p.stride_w;
  float* phases = buffer;
  float* acc = phases + phase_count * p.plane_floats;
  float* padded_row = acc + (p.chunk_rows * p.row_width + kLanes - 1) / kLanes * kLanes;
  for (int64_t y0 = 0; y0 < p.out_h; y0 += p.chunk_rows) {
    const int64_t rows = p.out_h - y0 < p.chunk_rows ? p.out_h - y0 : p.chunk_rows;
    fill_phases(p, input, y0, rows, phases, padded_row);
    const int64_t used = (rows + p.extra_rows) * p.row_width;
    // Zero each plane's slack (at least two vectors); the last store overlaps rather than
    // running into the next plane.
    for (int64_t k = 0; k < phase_count; ++k) {
      float* plane = phases + k * p.plane_floats;
      for (int64_t i = used; i + kLanes <= p.plane_floats; i += kLanes) store(plane + i, Vec{});
      store(plane + p.plane_floats - kLanes, Vec{});
    }
    const int64_t vectors = (rows * p.row_width + kLanes - 1) / kLanes;
    if (p.taps == 9) accumulate<9>(p, phases, weights, bias, vectors, acc);
    else accumulate<0>(p, phases, weights, bias, vectors, acc);
    store_rows(p, acc, y0, rows, e, output);
  }
}
