// AVX-512 kernels for MobileNet's depthwise 3x3 with pads of 1: they read the input plane in
// place with masked loads (no padded copy, whose stores would stall the shifted loads behind them).
// Included by conv_depthwise_impl.h inside its per-ISA anonymous namespace, after the flat path.

#if defined(__AVX512F__)

// Stride 1, pads 1 on every side, so the output plane has the input's shape and output i reads
// input i + dy * W + dx: the plane is one flat vector loop, whole vectors across row ends. A
// lane's left (right) taps are dropped in column 0 (W - 1); the rows above and below are dropped
// only in the first and last vectors, which take a fully masked path.
// Outputs [first, last) of the plane only: the vectors stay where a whole-plane call puts them
// (at multiples of 16), with the lanes outside the range masked off, so every output is computed
// by the same path and instructions as in the whole-plane call, to the bit.
inline void same_3x3_stride1(int64_t h, int64_t w, const float* input, const float* weights,
                             float bias, const DepthwiseEpilogue& e, float* output, int64_t first,
                             int64_t last) {
  const int64_t n = h * w;
  __m512 k[9];
  for (int t = 0; t < 9; ++t) k[t] = _mm512_set1_ps(weights[t]);
  const __m512 b = _mm512_set1_ps(bias);
  const __m512 low = _mm512_set1_ps(e.clamp_low), high = _mm512_set1_ps(e.clamp_high);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i width = _mm512_set1_epi32(int(w)), last_column = _mm512_set1_epi32(int(w - 1));
  const int64_t start = first / 16 * 16;
  // Column of each lane's output, advanced by 16 (mod W) per vector; by repeated subtraction,
  // since integer division (or a data-dependent scalar loop) costs as much as a 7x7 plane.
  __m512i column = _mm512_add_epi32(lane, _mm512_set1_epi32(int(start % w)));
  for (__mmask16 over; (over = _mm512_cmpge_epi32_mask(column, width)) != 0;)
    column = _mm512_mask_sub_epi32(column, over, column, width);
  __m512i step = _mm512_set1_epi32(16);
  for (__mmask16 over; (over = _mm512_cmpge_epi32_mask(step, width)) != 0;)
    step = _mm512_mask_sub_epi32(step, over, step, width);
  // Addresses as integers: masked-off lanes of the edge vectors point outside the plane.
  const uintptr_t base = reinterpret_cast<uintptr_t>(input);
  auto at = [base](int64_t index) { return reinterpret_cast<const float*>(base + uintptr_t(index) * 4); };
  const __m512i range_first = _mm512_set1_epi32(int(first)), range_last = _mm512_set1_epi32(int(last));
  for (int64_t i = start; i < last; i += 16) {
    const __mmask16 left = _mm512_cmpneq_epi32_mask(column, _mm512_setzero_si512());
    const __mmask16 right = _mm512_cmpneq_epi32_mask(column, last_column);
    __m512 acc;
    __mmask16 valid = 0xFFFF;
    if (i >= w + 1 && i + 16 + w + 1 <= n) {
      __m512 center = _mm512_fmadd_ps(k[4], _mm512_loadu_ps(at(i)), b);
      center = _mm512_fmadd_ps(k[1], _mm512_loadu_ps(at(i - w)), center);
      center = _mm512_fmadd_ps(k[7], _mm512_loadu_ps(at(i + w)), center);
      __m512 west = _mm512_mul_ps(k[3], _mm512_loadu_ps(at(i - 1)));
      west = _mm512_fmadd_ps(k[0], _mm512_loadu_ps(at(i - w - 1)), west);
      west = _mm512_fmadd_ps(k[6], _mm512_loadu_ps(at(i + w - 1)), west);
      __m512 east = _mm512_mul_ps(k[5], _mm512_loadu_ps(at(i + 1)));
      east = _mm512_fmadd_ps(k[2], _mm512_loadu_ps(at(i - w + 1)), east);
      east = _mm512_fmadd_ps(k[8], _mm512_loadu_ps(at(i + w + 1)), east);
      acc = _mm512_mask_add_ps(center, left, center, west);
      acc = _mm512_mask_add_ps(acc, right, acc, east);
    } else {
      const __m512i index = _mm512_add_epi32(_mm512_set1_epi32(int(i)), lane);
      const __m512i size = _mm512_set1_epi32(int(n));
      valid = _mm512_cmplt_epi32_mask(index, size);
      __mmask16 rows[3];
      rows[0] = valid & _mm512_cmpge_epi32_mask(index, width);  // a row above exists
      rows[1] = valid;
      rows[2] = valid & _mm512_cmplt_epi32_mask(_mm512_add_epi32(index, width), size);  // below
      const __mmask16 columns[3] = {left, 0xFFFF, right};
      acc = b;
      for (int dy = 0; dy < 3; ++dy)
        for (int dx = 0; dx < 3; ++dx) {
          const __mmask16 m = rows[dy] & columns[dx];
          const __m512 x = _mm512_maskz_loadu_ps(m, at(i + (dy - 1) * w + dx - 1));
          acc = _mm512_fmadd_ps(k[dy * 3 + dx], x, acc);
        }
    }
    if (i < first || i + 16 > last) {
      const __m512i index = _mm512_add_epi32(_mm512_set1_epi32(int(i)), lane);
      valid &= _mm512_cmpge_epi32_mask(index, range_first) & _mm512_cmplt_epi32_mask(index, range_last);
    }
    if (e.residual) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(valid, e.residual + i));
    if (e.clamp) acc = _mm512_min_ps(high, _mm512_max_ps(low, acc));
    _mm512_mask_storeu_ps(output + i, valid, acc);
    column = _mm512_add_epi32(column, step);
    column = _mm512_mask_sub_epi32(column, _mm512_cmpge_epi32_mask(column, width), column, width);
  }
}

// Stride 2, pads of 1 before (any after): each output row takes 16 outputs at a time from 32
// input columns, split into even and odd columns in registers; the left tap (column 2x - 1) is
// the odd vector shifted by one lane, with the previous chunk's last odd column in lane 0.
// Output rows [row_begin, row_end) only (each row is computed on its own).
inline void pad1_3x3_stride2(int64_t h, int64_t w, int64_t row_begin, int64_t row_end, int64_t out_w,
                             const float* input, const float* weights, float bias,
                             const DepthwiseEpilogue& e, float* output) {
  __m512 k[9];
  for (int t = 0; t < 9; ++t) k[t] = _mm512_set1_ps(weights[t]);
  const __m512 b = _mm512_set1_ps(bias);
  const __m512 low = _mm512_set1_ps(e.clamp_low), high = _mm512_set1_ps(e.clamp_high);
  const __m512i even_index =
      _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd_index = _mm512_add_epi32(even_index, _mm512_set1_epi32(1));
  const __m512i shift_index =
      _mm512_setr_epi32(15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  auto load_mask = [](int64_t count) -> __mmask16 {
    return count >= 16 ? __mmask16(0xFFFF) : count <= 0 ? __mmask16(0) : __mmask16((1u << count) - 1);
  };
  for (int64_t y = row_begin; y < row_end; ++y) {
    const float* rows[3];
    for (int dy = 0; dy < 3; ++dy) {
      const int64_t r = 2 * y + dy - 1;
      rows[dy] = r >= 0 && r < h ? input + r * w : nullptr;
    }
    __m512 previous_odd[3] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t x0 = 0; x0 < out_w; x0 += 16) {
      const int64_t column = 2 * x0;
      const __mmask16 first = load_mask(w - column), second = load_mask(w - column - 16);
      __m512 acc = b;
      for (int dy = 0; dy < 3; ++dy) {
        if (!rows[dy]) continue;
        const __m512 a = _mm512_maskz_loadu_ps(first, rows[dy] + (first ? column : 0));
        const __m512 c = _mm512_maskz_loadu_ps(second, rows[dy] + (second ? column + 16 : 0));
        const __m512 even = _mm512_permutex2var_ps(a, even_index, c);
        const __m512 odd = _mm512_permutex2var_ps(a, odd_index, c);
        const __m512 west = _mm512_permutex2var_ps(previous_odd[dy], shift_index, odd);
        previous_odd[dy] = odd;
        acc = _mm512_fmadd_ps(k[dy * 3], west, acc);
        acc = _mm512_fmadd_ps(k[dy * 3 + 1], even, acc);
        acc = _mm512_fmadd_ps(k[dy * 3 + 2], odd, acc);
      }
      const __mmask16 valid = load_mask(out_w - x0);
      float* out = output + y * out_w + x0;
      if (e.residual)
        acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(valid, e.residual + y * out_w + x0));
      if (e.clamp) acc = _mm512_min_ps(high, _mm512_max_ps(low, acc));
      _mm512_mask_storeu_ps(out, valid, acc);
    }
  }
}

// Runs output rows [row_begin, row_end) of the shape on one of the kernels above if it is one
// they serve (input and output are the whole planes).
inline bool special_3x3(const DepthwisePlaneShape& s, const float* input, const float* weights,
                        float bias, const DepthwiseEpilogue& e, float* output, int64_t row_begin,
                        int64_t row_end) {
  const bool plain_3x3 = s.input[0] == 1 && s.output[0] == 1 && s.kernel[0] == 1 &&
                         s.kernel[1] == 3 && s.kernel[2] == 3 && s.dilation[1] == 1 &&
                         s.dilation[2] == 1 && s.pad_begin[1] == 1 && s.pad_begin[2] == 1 &&
                         s.input[1] * s.input[2] < (int64_t(1) << 30);
  if (!plain_3x3) return false;
  const bool same_stride1 = s.stride[1] == 1 && s.stride[2] == 1 && s.output[1] == s.input[1] &&
                            s.output[2] == s.input[2] && s.input[2] >= 2;
  const bool stride2 = s.stride[1] == 2 && s.stride[2] == 2;
  if (!same_stride1 && !stride2) return false;
  if (row_begin >= row_end) return true;  // served, nothing to do (nothing is read)
  if (same_stride1) {
    same_3x3_stride1(s.input[1], s.input[2], input, weights, bias, e, output, row_begin * s.input[2],
                     row_end * s.input[2]);
    return true;
  }
  pad1_3x3_stride2(s.input[1], s.input[2], row_begin, row_end, s.output[2], input, weights, bias, e, output);
  return true;
}

#else

inline bool special_3x3(const DepthwisePlaneShape&, const float*, const float*, float,
                        const DepthwiseEpilogue&, float*, int64_t, int64_t) {
  return false;
}

#endif
