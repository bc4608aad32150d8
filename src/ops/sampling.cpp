// Operators that read an image at computed positions: GridSample (bilinear, nearest, bicubic with
// zeros/border/reflection padding) and MaxUnpool (scatter of pooled values back to their argmax).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/broadcast.h"
#include "ops/dtype_dispatch.h"
#include "ops/index_util.h"
#include "ops/operator.h"
#include "ops/spatial_geometry.h"

namespace tessera {
namespace {

enum class Padding { zeros, border, reflection };
enum class Interpolation { bilinear, nearest, bicubic };

struct GridSampleOptions {
  Interpolation mode = Interpolation::bilinear;
  Padding padding = Padding::zeros;
  bool align_corners = false;
};

// Grid value in [-1, 1] to a pixel coordinate: -1 and 1 are the centres of the corner pixels
// with align_corners, else their outer edges.
double unnormalize(double g, int64_t size, bool align_corners) {
  return align_corners ? (g + 1) / 2 * double(size - 1) : ((g + 1) * double(size) - 1) / 2;
}

// Mirrors x into [low, high] (given doubled so that half-pixel bounds stay integers).
double reflect(double x, double twice_low, double twice_high) {
  if (twice_low == twice_high) return 0;
  double low = twice_low / 2, span = (twice_high - twice_low) / 2;
  x = std::fabs(x - low);
  double extra = std::fmod(x, span);
  int64_t flips = int64_t(std::floor(x / span));
  return flips % 2 == 0 ? extra + low : span - extra + low;
}

// Applies border/reflection padding to a coordinate (zeros padding leaves it alone: taps outside
// the image then read 0).
double pad_coordinate(double x, int64_t size, const GridSampleOptions& o) {
  if (o.padding == Padding::zeros) return x;
  if (o.padding == Padding::reflection)
    x = o.align_corners ? reflect(x, 0, 2 * double(size - 1)) : reflect(x, -1, 2 * double(size) - 1);
  return std::clamp(x, 0.0, double(size - 1));
}

// Cubic convolution weights (A = -0.75) for taps at floor(x) - 1 .. floor(x) + 2.
void cubic_weights(double t, double w[4]) {
  const double A = -0.75;
  auto near = [&](double d) { return ((A + 2) * d - (A + 3)) * d * d + 1; };
  auto far = [&](double d) { return ((A * d - 5 * A) * d + 8 * A) * d - 4 * A; };
  w[0] = far(t + 1);
  w[1] = near(t);
  w[2] = near(1 - t);
  w[3] = far(2 - t);
}

// One output sample of one channel image [H, W].
template <typename T>
double sample(const T* image, int64_t H, int64_t W, double gx, double gy, const GridSampleOptions& o) {
  double x = unnormalize(gx, W, o.align_corners), y = unnormalize(gy, H, o.align_corners);
  auto pixel = [&](int64_t r, int64_t c) -> double {
    if (r < 0 || r >= H || c < 0 || c >= W) return 0;
    return double(Element<T>::load(image[r * W + c]));
  };
  if (o.mode == Interpolation::bicubic) {
    // Padding applies to each tap, not to the sample position.
    int64_t x0 = int64_t(std::floor(x)), y0 = int64_t(std::floor(y));
    double wx[4], wy[4];
    cubic_weights(x - double(x0), wx);
    cubic_weights(y - double(y0), wy);
    double sum = 0;
    for (int i = 0; i < 4; ++i) {
      int64_t r = int64_t(pad_coordinate(double(y0 - 1 + i), H, o));
      for (int j = 0; j < 4; ++j) {
        int64_t c = int64_t(pad_coordinate(double(x0 - 1 + j), W, o));
        sum += wy[i] * wx[j] * pixel(r, c);
      }
    }
    return sum;
  }
  x = pad_coordinate(x, W, o);
  y = pad_coordinate(y, H, o);
  if (o.mode == Interpolation::nearest) return pixel(int64_t(std::nearbyint(y)), int64_t(std::nearbyint(x)));
  int64_t x0 = int64_t(std::floor(x)), y0 = int64_t(std::floor(y));
  double fx = x - double(x0), fy = y - double(y0);
  return (1 - fy) * ((1 - fx) * pixel(y0, x0) + fx * pixel(y0, x0 + 1)) +
         fy * ((1 - fx) * pixel(y0 + 1, x0) + fx * pixel(y0 + 1, x0 + 1));
}

std::unique_ptr<Kernel> make_grid_sample(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  const ValueInfo& grid = required_input(ctx, 1);
  if (x.shape.size() != 4)
    throw Error(ctx.describe() + ": only 2-D sampling ([N, C, H, W] input) is supported");
  if (grid.shape.size() != 4 || grid.shape[0] != x.shape[0] || grid.shape[3] != 2)
    throw Error(ctx.describe() + ": grid must be [N, H_out, W_out, 2], got " + shape_to_string(grid.shape));
  if (grid.dtype != x.dtype) throw Error(ctx.describe() + ": grid must have the input's dtype");
  GridSampleOptions o;
  std::string mode = ctx.node.attributes.get_string("mode", "bilinear");
  if (mode == "bilinear" || mode == "linear")
    o.mode = Interpolation::bilinear;
  else if (mode == "nearest")
    o.mode = Interpolation::nearest;
  else if (mode == "bicubic" || mode == "cubic")
    o.mode = Interpolation::bicubic;
  else
    throw Error(ctx.describe() + ": unknown mode '" + mode + "'");
  std::string padding = ctx.node.attributes.get_string("padding_mode", "zeros");
  if (padding == "zeros")
    o.padding = Padding::zeros;
  else if (padding == "border")
    o.padding = Padding::border;
  else if (padding == "reflection")
    o.padding = Padding::reflection;
  else
    throw Error(ctx.describe() + ": unknown padding_mode '" + padding + "'");
  o.align_corners = ctx.node.attributes.get_int("align_corners", 0) != 0;
  int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  int64_t out_h = grid.shape[1], out_w = grid.shape[2];
  ctx.set_output(0, x.dtype, {N, C, out_h, out_w});
  DType dtype = x.dtype;
  std::string who = ctx.describe();
  return std::make_unique<LambdaKernel>(
      [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, ExecContext& e) {
        visit_float(dtype, who, [&](auto tag) {
          using T = decltype(tag);
          const T* image = in[0]->data<T>();
          const T* g = in[1]->data<T>();
          T* y = out[0]->data<T>();
          parallel_range(&e.pool, N * C, 1, [&](int64_t begin, int64_t end) {
            for (int64_t nc = begin; nc < end; ++nc) {
              int64_t n = nc / C;
              for (int64_t p = 0; p < out_h * out_w; ++p) {
                const T* point = g + (n * out_h * out_w + p) * 2;
                double v = sample(image + nc * H * W, H, W, double(Element<T>::load(point[0])),
                                  double(Element<T>::load(point[1])), o);
                y[nc * out_h * out_w + p] = Element<T>::store(float(v));
              }
            }
          });
        });
      });
}

// MaxUnpool: zeros of the unpooled shape (from output_shape when given, else the pooling
// geometry inverted) with each input value written at its flat index from MaxPool.
std::unique_ptr<Kernel> make_max_unpool(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  const ValueInfo& indices = required_input(ctx, 1);
  if (indices.dtype != DType::i64) throw Error(ctx.describe() + ": indices must be int64");
  if (indices.shape != x.shape) throw Error(ctx.describe() + ": indices must have the input's shape");
  if (x.shape.size() < 3) throw Error(ctx.describe() + ": the input must be [N, C, spatial...]");
  // Indices from MaxPool are flat positions in the default unpooled shape (the pooling geometry
  // inverted); an explicit output_shape keeps each position's coordinates in a larger tensor.
  std::vector<int64_t> kernel = ctx.node.attributes.get_ints("kernel_shape");
  size_t spatial = x.shape.size() - 2;
  if (kernel.size() != spatial)
    throw Error(ctx.describe() + ": kernel_shape must have one entry per spatial dim");
  std::vector<int64_t> strides = ctx.node.attributes.get_ints("strides", std::vector<int64_t>(spatial, 1));
  std::vector<int64_t> pads = ctx.node.attributes.get_ints("pads", std::vector<int64_t>(2 * spatial, 0));
  if (strides.size() != spatial || pads.size() != 2 * spatial)
    throw Error(ctx.describe() + ": strides and pads do not match the spatial rank");
  Shape natural{x.shape[0], x.shape[1]};
  for (size_t d = 0; d < spatial; ++d)
    natural.push_back((x.shape[d + 2] - 1) * strides[d] - pads[d] - pads[d + spatial] + kernel[d]);
  Shape out = natural;
  if (ctx.has_input(2)) {
    std::vector<int64_t> requested = ctx.constant_input(2, "output_shape").to_int64_vector();
    out.assign(requested.begin(), requested.end());
  }
  bool fits = out.size() == natural.size();
  for (size_t d = 0; fits && d < out.size(); ++d) fits = d < 2 ? out[d] == natural[d] : out[d] >= natural[d];
  if (!fits)
    throw Error(ctx.describe() + ": output_shape " + shape_to_string(out) + " is smaller than the unpooled " +
                shape_to_string(natural));
  bool remap = out != natural;
  Shape out_strides = contiguous_strides(out);
  ctx.set_output(0, x.dtype, out);
  int64_t total = shape_numel(natural);
  size_t es = dtype_size(x.dtype);
  std::string who = ctx.describe();
  return std::make_unique<LambdaKernel>(
      [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext&) {
        std::memset(o[0]->raw_data(), 0, o[0]->nbytes());
        const char* src = static_cast<const char*>(in[0]->raw_data());
        char* dst = static_cast<char*>(o[0]->raw_data());
        const int64_t* index = in[1]->data<int64_t>();
        for (int64_t i = 0; i < in[0]->numel(); ++i) {
          int64_t at = index[i];
          if (at < 0 || at >= total)
            throw Error(who + ": index " + std::to_string(at) + " is outside the unpooled tensor of " +
                        std::to_string(total) + " elements");
          if (remap) {
            int64_t rest = at;
            at = 0;
            for (size_t d = natural.size(); d-- > 0;) {
              at += (rest % natural[d]) * out_strides[d];
              rest /= natural[d];
            }
          }
          std::memcpy(dst + at * int64_t(es), src + i * int64_t(es), es);
        }
      });
}

}  // namespace

void register_sampling_operators(OperatorRegistry& registry) {
  registry.add("GridSample", 16, 18, make_grid_sample);
  registry.add("MaxUnpool", 9, 18, make_max_unpool);
}

}  // namespace tessera
