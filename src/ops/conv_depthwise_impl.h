// Body of the depthwise plane kernel, included by one .cpp per ISA with DEPTHWISE_NAMESPACE set:
// 2-D planes take the flat phase-buffer path, anything else (3-D, wide rows) the row kernels.
// Uses no inline library templates, so the per-ISA copies cannot leak into each other at link time.
#include <immintrin.h>

#include "ops/conv_depthwise.h"

// 64-byte vectors in the helpers change the ABI without AVX-512; they are all inlined into this
// file's own entry points, so the warning does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
// GCC 12 reports the _mm512_undefined_* placeholders inside its own intrinsic headers as
// "may be used uninitialized" once they are inlined here; false positives.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace tessera::DEPTHWISE_NAMESPACE {

namespace {

#include "ops/conv_depthwise_flat.h"
#include "ops/conv_depthwise_3x3.h"

// One tap row: out[ow] += w * in_row[ow * stride + tap] for ow in [lo, hi).
inline void accumulate_tap(float* __restrict out, const float* __restrict in_row, float w,
                           int64_t stride, int64_t tap, int64_t lo, int64_t hi) {
  if (stride == 1) {
    const float* src = in_row + tap;
    for (int64_t ow = lo; ow < hi; ++ow) out[ow] += w * src[ow];
  } else if (stride == 2) {
    const float* src = in_row + tap;
    for (int64_t ow = lo; ow < hi; ++ow) out[ow] += w * src[2 * ow];
  } else {
    for (int64_t ow = lo; ow < hi; ++ow) out[ow] += w * in_row[ow * stride + tap];
  }
}

// Three horizontal taps of stride 1 and dilation 1 in one pass over the row: the interior
// (where all three taps are in range) keeps the accumulator in a register.
inline void accumulate_three_taps(float* __restrict out, const float* __restrict in_row,
                                  const float* w, int64_t input_width, int64_t output_width,
                                  int64_t pad) {
  const float w0 = w[0], w1 = w[1], w2 = w[2];
  // Input column for tap k at output ow: ow + k - pad.
  int64_t interior_lo = pad;                         // ow - pad >= 0
  int64_t interior_hi = input_width - 2 + pad;       // ow + 2 - pad < input_width
  if (interior_lo > output_width) interior_lo = output_width;
  if (interior_hi > output_width) interior_hi = output_width;
  if (interior_hi < interior_lo) interior_hi = interior_lo;
  for (int64_t ow = 0; ow < interior_lo; ++ow) {
    float acc = out[ow];
    for (int64_t k = 0; k < 3; ++k) {
      int64_t iw = ow + k - pad;
      if (iw >= 0 && iw < input_width) acc += w[k] * in_row[iw];
    }
    out[ow] = acc;
  }
  const float* src = in_row - pad;
  for (int64_t ow = interior_lo; ow < interior_hi; ++ow)
    out[ow] += w0 * src[ow] + w1 * src[ow + 1] + w2 * src[ow + 2];
  for (int64_t ow = interior_hi; ow < output_width; ++ow) {
    float acc = out[ow];
    for (int64_t k = 0; k < 3; ++k) {
      int64_t iw = ow + k - pad;
      if (iw >= 0 && iw < input_width) acc += w[k] * in_row[iw];
    }
    out[ow] = acc;
  }
}

// A whole 3x3 output row (stride 1 or 2, dilation 1) in one pass: nine taps accumulate in a
// register and each output is stored once. Rows outside the image come in as nullptr.
inline void row_3x3(float* __restrict out, const float* rows_in[3], const float* weights,
                    float bias, int64_t in_w, int64_t out_w, int64_t pad, int64_t stride) {
  // Missing rows read a valid row with zero weights, so the interior loop has no branches.
  const float* valid = rows_in[0] ? rows_in[0] : rows_in[1] ? rows_in[1] : rows_in[2];
  if (!valid) {
    for (int64_t ow = 0; ow < out_w; ++ow) out[ow] = bias;
    return;
  }
  float w[9];
  const float* r[3];
  for (int i = 0; i < 3; ++i) {
    r[i] = rows_in[i] ? rows_in[i] : valid;
    for (int k = 0; k < 3; ++k) w[i * 3 + k] = rows_in[i] ? weights[i * 3 + k] : 0.f;
  }
  // Interior: 0 <= ow * stride - pad and ow * stride - pad + 2 < in_w.
  int64_t lo = (pad + stride - 1) / stride;
  int64_t hi = in_w - 3 + pad < 0 ? 0 : (in_w - 3 + pad) / stride + 1;
  if (lo > out_w) lo = out_w;
  if (hi > out_w) hi = out_w;
  if (hi < lo) hi = lo;
  // Edges (taps partly in the padding) with bounds checks: [0, lo) and [hi, out_w).
  for (int part = 0; part < 2; ++part) {
    const int64_t begin = part == 0 ? 0 : hi, end = part == 0 ? lo : out_w;
    for (int64_t ow = begin; ow < end; ++ow) {
      float acc = bias;
      for (int i = 0; i < 3; ++i)
        for (int k = 0; k < 3; ++k) {
          const int64_t iw = ow * stride - pad + k;
          if (iw >= 0 && iw < in_w) acc += w[i * 3 + k] * r[i][iw];
        }
      out[ow] = acc;
    }
  }
  // Indices stay non-negative in the interior (ow >= lo), so no pointer goes before a row.
  const float *a = r[0], *b = r[1], *c = r[2];
  if (stride == 1) {
    for (int64_t ow = lo; ow < hi; ++ow) {
      const int64_t x = ow - pad;
      out[ow] = bias + w[0] * a[x] + w[1] * a[x + 1] + w[2] * a[x + 2] + w[3] * b[x] +
                w[4] * b[x + 1] + w[5] * b[x + 2] + w[6] * c[x] + w[7] * c[x + 1] + w[8] * c[x + 2];
    }
  } else {
    for (int64_t ow = lo; ow < hi; ++ow) {
      const int64_t x = ow * stride - pad;
      out[ow] = bias + w[0] * a[x] + w[1] * a[x + 1] + w[2] * a[x + 2] + w[3] * b[x] +
                w[4] * b[x + 1] + w[5] * b[x + 2] + w[6] * c[x] + w[7] * c[x + 1] + w[8] * c[x + 2];
    }
  }
}

// The row-by-row kernels: any 1-D/2-D/3-D window, used where the flat path does not apply.
void rows_plane(const DepthwisePlaneShape& s, const float* input, const float* weights, float bias,
                float* output) {
  const int64_t out_w = s.output[2], in_w = s.input[2];
  const bool three_taps = s.kernel[2] == 3 && s.stride[2] == 1 && s.dilation[2] == 1;
  // The common MobileNet case: 2-D 3x3, dilation 1, stride 1 or 2 (same in both dims).
  if (s.kernel[0] == 1 && s.kernel[1] == 3 && s.kernel[2] == 3 && s.dilation[1] == 1 &&
      s.dilation[2] == 1 && (s.stride[2] == 1 || s.stride[2] == 2)) {
    for (int64_t od = 0; od < s.output[0]; ++od) {
      const int64_t id = od * s.stride[0] - s.pad_begin[0];
      for (int64_t oh = 0; oh < s.output[1]; ++oh) {
        const float* rows[3];
        for (int64_t kh = 0; kh < 3; ++kh) {
          const int64_t ih = oh * s.stride[1] + kh - s.pad_begin[1];
          rows[kh] = id >= 0 && id < s.input[0] && ih >= 0 && ih < s.input[1]
                         ? input + (id * s.input[1] + ih) * in_w
                         : nullptr;
        }
        row_3x3(output + (od * s.output[1] + oh) * out_w, rows, weights, bias, in_w, out_w,
                s.pad_begin[2], s.stride[2]);
      }
    }
    return;
  }
  for (int64_t od = 0; od < s.output[0]; ++od) {
    for (int64_t oh = 0; oh < s.output[1]; ++oh) {
      float* out = output + (od * s.output[1] + oh) * out_w;
      for (int64_t ow = 0; ow < out_w; ++ow) out[ow] = bias;
      for (int64_t kd = 0; kd < s.kernel[0]; ++kd) {
        const int64_t id = od * s.stride[0] + kd * s.dilation[0] - s.pad_begin[0];
        if (id < 0 || id >= s.input[0]) continue;
        for (int64_t kh = 0; kh < s.kernel[1]; ++kh) {
          const int64_t ih = oh * s.stride[1] + kh * s.dilation[1] - s.pad_begin[1];
          if (ih < 0 || ih >= s.input[1]) continue;
          const float* in_row = input + (id * s.input[1] + ih) * in_w;
          const float* w = weights + (kd * s.kernel[1] + kh) * s.kernel[2];
          if (three_taps) {
            accumulate_three_taps(out, in_row, w, in_w, out_w, s.pad_begin[2]);
            continue;
          }
          for (int64_t kw = 0; kw < s.kernel[2]; ++kw) {
            const int64_t tap = kw * s.dilation[2] - s.pad_begin[2];
            // Valid ow: 0 <= ow * stride + tap < in_w.
            int64_t lo = tap >= 0 ? 0 : (-tap + s.stride[2] - 1) / s.stride[2];
            int64_t hi = in_w - tap <= 0 ? 0 : (in_w - tap - 1) / s.stride[2] + 1;
            if (hi > out_w) hi = out_w;
            if (lo >= hi) continue;
            accumulate_tap(out, in_row, w[kw], s.stride[2], tap, lo, hi);
          }
        }
      }
    }
  }
}

}  // namespace

void plane_fused(const DepthwisePlaneShape& s, const float* input, const float* weights, float bias,
                 const DepthwiseEpilogue& e, float* output) {
  if (special_3x3(s, input, weights, bias, e, output, 0, s.output[1])) return;
  FlatPlan plan;
  if (make_flat_plan(s, &plan)) return flat_plane(plan, input, weights, bias, e, output);
  rows_plane(s, input, weights, bias, output);
  if (!e.residual && !e.clamp) return;
  const int64_t size = s.output[0] * s.output[1] * s.output[2];
  for (int64_t i = 0; i < size; ++i)
    output[i] = clamp_scalar(output[i] + (e.residual ? e.residual[i] : 0.f), e);
}

bool plane_rows_fused(const DepthwisePlaneShape& s, const float* input, const float* weights, float bias,
                      const DepthwiseEpilogue& e, float* output, int64_t row_begin, int64_t row_end) {
  return special_3x3(s, input, weights, bias, e, output, row_begin, row_end);
}

void plane(const DepthwisePlaneShape& s, const float* input, const float* weights, float bias,
           float* output) {
  plane_fused(s, input, weights, bias, DepthwiseEpilogue{}, output);
}

}  // namespace tessera::DEPTHWISE_NAMESPACE
