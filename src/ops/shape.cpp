// Shape and data-movement operators (Shape, Reshape, Transpose, Concat, Split, Slice, Gather,
// Expand, Tile, Constant, Range, ...): byte copies that work for every dtype.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "ops/broadcast.h"
#include "ops/dtype_dispatch.h"
#include "ops/operator.h"
#include "primitives/primitives.h"

namespace tessera {
namespace {

using Ints = std::vector<int64_t>;

// Output 0 is a byte copy of input 0 under a new shape (Reshape, Flatten, Squeeze, Unsqueeze).
std::unique_ptr<Kernel> reshape_kernel(KernelCreateContext& ctx, const Shape& out) {
  const ValueInfo& x = ctx.inputs[0];
  if (shape_numel(out) != shape_numel(x.shape))
    throw Error(ctx.describe() + ": cannot reshape " + shape_to_string(x.shape) + " to " +
                shape_to_string(out));
  ctx.set_output(0, x.dtype, out);
  return std::make_unique<LambdaKernel>(
      [](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext& e) {
        copy_tensor_bytes(*in[0], *o[0], &e.pool);
      });
}

// Output 0 is a value known at plan time.
std::unique_ptr<Kernel> constant_kernel(KernelCreateContext& ctx, const Tensor& value) {
  ctx.set_output(0, value.dtype(), value.shape());
  Tensor copy = value.clone();
  return std::make_unique<LambdaKernel>(
      [copy](const std::vector<const Tensor*>&, const std::vector<Tensor*>& o, ExecContext& e) {
        copy_tensor_bytes(copy, *o[0], &e.pool);
      });
}

// Integer list from an attribute (before `input_opset`) or a constant input (from it on).
// `present` says whether it was given at all.
Ints ints_from_attribute_or_input(const KernelCreateContext& ctx, const char* name, size_t input,
                                  int64_t input_opset, bool* present) {
  if (ctx.opset < input_opset) {
    *present = ctx.node.attributes.has(name);
    return ctx.node.attributes.get_ints(name);
  }
  *present = ctx.has_input(input);
  if (!*present) return {};
  return ctx.constant_input(input, name).to_int64_vector();
}

std::unique_ptr<Kernel> make_shape(KernelCreateContext& ctx) {
  const Shape& shape = required_input(ctx, 0).shape;
  int64_t rank = int64_t(shape.size());
  int64_t start = ctx.node.attributes.get_int("start", 0);
  int64_t end = ctx.node.attributes.get_int("end", rank);
  if (start < 0) start += rank;
  if (end < 0) end += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, 0, rank);
  Ints dims;
  for (int64_t i = start; i < end; ++i) dims.push_back(shape[size_t(i)]);
  return constant_kernel(ctx, Tensor::from_int64(dims, {int64_t(dims.size())}));
}

std::unique_ptr<Kernel> make_size(KernelCreateContext& ctx) {
  return constant_kernel(ctx, Tensor::from_int64({shape_numel(required_input(ctx, 0).shape)}, {}));
}

std::unique_ptr<Kernel> make_reshape(KernelCreateContext& ctx) {
  const Shape& in = required_input(ctx, 0).shape;
  Ints requested = ctx.constant_input(1, "shape").to_int64_vector();
  bool allow_zero = ctx.opset >= 14 && ctx.node.attributes.get_int("allowzero", 0) != 0;
  Shape out(requested.size());
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < requested.size(); ++i) {
    int64_t d = requested[i];
    if (d == 0 && !allow_zero) {
      if (i >= in.size())
        throw Error(ctx.describe() + ": shape entry 0 at " + std::to_string(i) +
                    " has no input dimension to copy");
      d = in[i];
    } else if (d == -1) {
      if (infer >= 0) throw Error(ctx.describe() + ": more than one -1 in the target shape");
      infer = int(i);
      continue;
    } else if (d < 0) {
      throw Error(ctx.describe() + ": invalid dimension " + std::to_string(d) + " in target shape");
    }
    out[i] = d;
    known *= d;
  }
  if (infer >= 0) {
    int64_t total = shape_numel(in);
    if (known == 0 || total % known != 0)
      throw Error(ctx.describe() + ": cannot infer -1 reshaping " + shape_to_string(in) + " to " +
                  shape_to_string(Shape(requested.begin(), requested.end())));
    out[size_t(infer)] = total / known;
  }
  return reshape_kernel(ctx, out);
}

std::unique_ptr<Kernel> make_flatten(KernelCreateContext& ctx) {
  const Shape& in = required_input(ctx, 0).shape;
  int64_t rank = int64_t(in.size());
  int64_t axis = ctx.node.attributes.get_int("axis", 1);
  if (axis < -rank || axis > rank)
    throw Error(ctx.describe() + ": axis " + std::to_string(axis) + " out of range");
  if (axis < 0) axis += rank;
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < rank; ++i) (i < axis ? outer : inner) *= in[size_t(i)];
  return reshape_kernel(ctx, {outer, inner});
}

std::unique_ptr<Kernel> make_squeeze(KernelCreateContext& ctx) {
  const Shape& in = required_input(ctx, 0).shape;
  bool given = false;
  Ints axes = ints_from_attribute_or_input(ctx, "axes", 1, 13, &given);
  std::vector<bool> drop(in.size(), false);
  if (axes.empty()) {
    for (size_t i = 0; i < in.size(); ++i) drop[i] = in[i] == 1;
  } else {
    for (int64_t a : axes) {
      int64_t axis = normalize_axis(a, int64_t(in.size()), ctx.describe());
      if (in[size_t(axis)] != 1)
        throw Error(ctx.describe() + ": cannot squeeze axis " + std::to_string(a) + " of size " +
                    std::to_string(in[size_t(axis)]));
      drop[size_t(axis)] = true;
    }
  }
  Shape out;
  for (size_t i = 0; i < in.size(); ++i)
    if (!drop[i]) out.push_back(in[i]);
  return reshape_kernel(ctx, out);
}

std::unique_ptr<Kernel> make_unsqueeze(KernelCreateContext& ctx) {
  const Shape& in = required_input(ctx, 0).shape;
  bool given = false;
  Ints axes = ints_from_attribute_or_input(ctx, "axes", 1, 13, &given);
  if (!given || axes.empty()) throw Error(ctx.describe() + ": axes are required");
  int64_t out_rank = int64_t(in.size() + axes.size());
  std::vector<bool> inserted(size_t(out_rank), false);
  for (int64_t a : axes) {
    int64_t axis = normalize_axis(a, out_rank, ctx.describe());
    if (inserted[size_t(axis)]) throw Error(ctx.describe() + ": repeated axis " + std::to_string(a));
    inserted[size_t(axis)] = true;
  }
  Shape out;
  size_t next = 0;
  for (int64_t i = 0; i < out_rank; ++i) out.push_back(inserted[size_t(i)] ? 1 : in[next++]);
  return reshape_kernel(ctx, out);
}

// Transpose. Dims are collapsed in output order; when the input's unit-stride dim stays last the
// copy is a row gather, otherwise each (last output dim x input unit-stride dim) plane is a 2-D
// transpose primitive call.
std::unique_ptr<Kernel> make_transpose(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  size_t rank = x.shape.size();
  Ints perm = ctx.node.attributes.get_ints("perm");
  if (perm.empty())
    for (size_t i = 0; i < rank; ++i) perm.push_back(int64_t(rank - 1 - i));
  if (perm.size() != rank) throw Error(ctx.describe() + ": perm length does not match input rank");
  std::vector<bool> seen(rank, false);
  for (auto& p : perm) {
    p = normalize_axis(p, int64_t(rank), ctx.describe());
    if (seen[size_t(p)]) throw Error(ctx.describe() + ": perm is not a permutation");
    seen[size_t(p)] = true;
  }
  Shape out(rank), in_strides = contiguous_strides(x.shape), source_strides(rank);
  for (size_t i = 0; i < rank; ++i) {
    out[i] = x.shape[size_t(perm[i])];
    source_strides[i] = in_strides[size_t(perm[i])];
  }
  ctx.set_output(0, x.dtype, out);
  size_t es = dtype_size(x.dtype);

  // Collapsed dims in output order: size, input stride, output stride.
  Shape out_strides = contiguous_strides(out);
  Ints sizes, istr, ostr;
  for (size_t i = 0; i < rank; ++i) {
    if (out[i] == 1) continue;
    if (!sizes.empty() && istr.back() == source_strides[i] * out[i]) {
      sizes.back() *= out[i];
      istr.back() = source_strides[i];
      ostr.back() = out_strides[i];
      continue;
    }
    sizes.push_back(out[i]);
    istr.push_back(source_strides[i]);
    ostr.push_back(out_strides[i]);
  }
  bool plane = !sizes.empty() && istr.back() != 1 && shape_numel(out) > 0;
  if (!plane) {
    return std::make_unique<LambdaKernel>(
        [out, source_strides, es](const std::vector<const Tensor*>& in,
                                  const std::vector<Tensor*>& o, ExecContext& e) {
          strided_copy(in[0]->raw_data(), out, source_strides, o[0]->raw_data(), es, &e.pool);
        });
  }
  size_t a = sizes.size() - 1;  // the output's last dim
  size_t b = size_t(std::find(istr.begin(), istr.end(), 1) - istr.begin());  // input's unit dim
  Ints outer_sizes, outer_istr, outer_ostr;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (i == a || i == b) continue;
    outer_sizes.push_back(sizes[i]);
    outer_istr.push_back(istr[i]);
    outer_ostr.push_back(ostr[i]);
  }
  int64_t size_a = sizes[a], size_b = sizes[b], ld_src = istr[a], ld_dst = ostr[b];
  int64_t outer_count = 1;
  for (int64_t s : outer_sizes) outer_count *= s;
  constexpr int64_t kRowsPerTask = 64;  // rows of the plane per parallel task
  int64_t chunks = (size_a + kRowsPerTask - 1) / kRowsPerTask;
  return std::make_unique<LambdaKernel>([=](const std::vector<const Tensor*>& in,
                                            const std::vector<Tensor*>& o, ExecContext& e) {
    const char* src = static_cast<const char*>(in[0]->raw_data());
    char* dst = static_cast<char*>(o[0]->raw_data());
    int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, kRowsPerTask * size_b));
    parallel_range(&e.pool, outer_count * chunks, grain, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        int64_t outer = task / chunks, chunk = task % chunks;
        int64_t in_offset = 0, out_offset = 0, rest = outer;
        for (size_t d = outer_sizes.size(); d-- > 0;) {
          int64_t index = rest % outer_sizes[d];
          rest /= outer_sizes[d];
          in_offset += index * outer_istr[d];
          out_offset += index * outer_ostr[d];
        }
        int64_t row0 = chunk * kRowsPerTask, rows = std::min(kRowsPerTask, size_a - row0);
        // Plane rows walk the output's last dim (input stride ld_src), columns the input's
        // unit-stride dim (output stride ld_dst).
        primitives::transpose_2d(rows, size_b, src + (in_offset + row0 * ld_src) * int64_t(es),
                                 ld_src, dst + (out_offset + row0) * int64_t(es), ld_dst, es);
      }
    });
  });
}

std::unique_ptr<Kernel> make_concat(KernelCreateContext& ctx) {
  if (ctx.inputs.empty()) throw Error(ctx.describe() + ": needs at least one input");
  if (!ctx.node.attributes.has("axis")) throw Error(ctx.describe() + ": missing attribute 'axis'");
  const ValueInfo& first = required_input(ctx, 0);
  int64_t rank = int64_t(first.shape.size());
  int64_t axis = normalize_axis(ctx.node.attributes.get_int("axis", 0), rank, ctx.describe());
  Shape out = first.shape;
  out[size_t(axis)] = 0;
  Ints extents;
  for (size_t i = 0; i < ctx.inputs.size(); ++i) {
    const ValueInfo& v = required_input(ctx, i);
    bool same = v.dtype == first.dtype && int64_t(v.shape.size()) == rank;
    for (int64_t d = 0; same && d < rank; ++d)
      same = d == axis || v.shape[size_t(d)] == first.shape[size_t(d)];
    if (!same)
      throw Error(ctx.describe() + ": input " + std::to_string(i) + " " + shape_to_string(v.shape) +
                  " does not match " + shape_to_string(first.shape) + " off axis " +
                  std::to_string(axis));
    extents.push_back(v.shape[size_t(axis)]);
    out[size_t(axis)] += v.shape[size_t(axis)];
  }
  ctx.set_output(0, first.dtype, out);
  int64_t outer = 1, inner = int64_t(dtype_size(first.dtype));
  for (int64_t d = 0; d < rank; ++d)
    if (d < axis) outer *= out[size_t(d)];
    else if (d > axis) inner *= out[size_t(d)];
  int64_t out_row = out[size_t(axis)] * inner;
  return std::make_unique<LambdaKernel>([=](const std::vector<const Tensor*>& in,
                                            const std::vector<Tensor*>& o, ExecContext& e) {
    char* dst = static_cast<char*>(o[0]->raw_data());
    parallel_range(&e.pool, outer, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, out_row)),
                   [&](int64_t begin, int64_t end) {
                     for (int64_t r = begin; r < end; ++r) {
                       int64_t offset = r * out_row;
                       for (size_t i = 0; i < in.size(); ++i) {
                         int64_t bytes = extents[i] * inner;
                         if (bytes == 0) continue;
                         std::memcpy(dst + offset, static_cast<const char*>(in[i]->raw_data()) + r * bytes,
                                     size_t(bytes));
                         offset += bytes;
                       }
                     }
                   });
  });
}

std::unique_ptr<Kernel> make_split(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  int64_t rank = int64_t(x.shape.size());
  int64_t axis = normalize_axis(ctx.node.attributes.get_int("axis", 0), rank, ctx.describe());
  int64_t dim = x.shape[size_t(axis)];
  size_t outputs = ctx.node.outputs.size();
  bool given = false;
  Ints sizes = ints_from_attribute_or_input(ctx, "split", 1, 13, &given);
  if (given && sizes.empty() && ctx.opset >= 13) given = false;  // an empty tensor means "absent"
  if (!given) {
    int64_t parts = ctx.opset >= 18 && ctx.node.attributes.has("num_outputs")
                        ? ctx.node.attributes.get_int("num_outputs", 1)
                        : int64_t(outputs);
    if (parts <= 0) throw Error(ctx.describe() + ": needs at least one output");
    if (ctx.opset >= 18) {
      // Split-18: ceil-sized chunks, the last one smaller when the axis does not divide evenly.
      int64_t chunk = (dim + parts - 1) / parts;
      for (int64_t p = 0; p < parts; ++p) sizes.push_back(std::clamp<int64_t>(dim - p * chunk, 0, chunk));
    } else {
      if (dim % parts != 0)
        throw Error(ctx.describe() + ": axis of size " + std::to_string(dim) +
                    " does not split evenly into " + std::to_string(parts));
      sizes.assign(size_t(parts), dim / parts);
    }
  }
  if (sizes.size() != outputs)
    throw Error(ctx.describe() + ": " + std::to_string(sizes.size()) + " split sizes for " +
                std::to_string(outputs) + " outputs");
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0) throw Error(ctx.describe() + ": negative split size");
    total += s;
  }
  if (total != dim)
    throw Error(ctx.describe() + ": split sizes sum to " + std::to_string(total) + ", axis has " +
                std::to_string(dim));
  for (size_t i = 0; i < outputs; ++i) {
    Shape s = x.shape;
    s[size_t(axis)] = sizes[i];
    ctx.set_output(i, x.dtype, s);
  }
  int64_t outer = 1, inner = int64_t(dtype_size(x.dtype));
  for (int64_t d = 0; d < rank; ++d)
    if (d < axis) outer *= x.shape[size_t(d)];
    else if (d > axis) inner *= x.shape[size_t(d)];
  return std::make_unique<LambdaKernel>([=](const std::vector<const Tensor*>& in,
                                            const std::vector<Tensor*>& o, ExecContext& e) {
    const char* src = static_cast<const char*>(in[0]->raw_data());
    const int64_t in_row = dim * inner;
    auto copy_rows = [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        int64_t offset = r * in_row;
        for (size_t i = 0; i < o.size(); ++i) {
          int64_t bytes = sizes[i] * inner;
          if (o[i] && bytes > 0)
            std::memcpy(static_cast<char*>(o[i]->raw_data()) + r * bytes, src + offset, size_t(bytes));
          offset += bytes;
        }
      }
    };
    // Rows of at least 64 KiB per chunk (BERT's merged QKV: 1.2 MB split per layer), so only
    // copies worth a wake-up are shared.
    e.pool.parallel_for(outer, copy_rows, std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, in_row)));
  });
}

std::unique_ptr<Kernel> make_slice(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  int64_t rank = int64_t(x.shape.size());
  Ints starts, ends, axes, steps;
  if (ctx.opset < 10) {
    starts = ctx.node.attributes.get_ints("starts");
    ends = ctx.node.attributes.get_ints("ends");
    axes = ctx.node.attributes.get_ints("axes");
  } else {
    starts = ctx.constant_input(1, "starts").to_int64_vector();
    ends = ctx.constant_input(2, "ends").to_int64_vector();
    if (ctx.has_input(3)) axes = ctx.constant_input(3, "axes").to_int64_vector();
    if (ctx.has_input(4)) steps = ctx.constant_input(4, "steps").to_int64_vector();
  }
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(int64_t(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    throw Error(ctx.describe() + ": starts, ends, axes and steps must have the same length");
  Shape out = x.shape, strides = contiguous_strides(x.shape), view_strides = strides;
  Ints begin(size_t(rank), 0);
  std::vector<bool> seen(size_t(rank), false);
  for (size_t i = 0; i < starts.size(); ++i) {
    size_t axis = size_t(normalize_axis(axes[i], rank, ctx.describe()));
    if (seen[axis]) throw Error(ctx.describe() + ": repeated axis " + std::to_string(axes[i]));
    seen[axis] = true;
    int64_t dim = x.shape[axis], step = steps[i];
    if (step == 0) throw Error(ctx.describe() + ": step must not be 0");
    int64_t start = starts[i], end = ends[i];
    if (start < 0) start += dim;
    if (end < 0) end += dim;
    int64_t count;
    if (step > 0) {
      start = std::clamp<int64_t>(start, 0, dim);
      end = std::clamp<int64_t>(end, 0, dim);
      count = end > start ? (end - start + step - 1) / step : 0;
    } else {
      start = std::clamp<int64_t>(start, 0, dim - 1);
      end = std::clamp<int64_t>(end, -1, dim - 1);
      count = start > end ? (start - end + (-step) - 1) / (-step) : 0;
    }
    out[axis] = count;
    begin[axis] = count > 0 ? start : 0;
    view_strides[axis] = strides[axis] * step;
  }
  ctx.set_output(0, x.dtype, out);
  int64_t offset = 0;
  for (int64_t d = 0; d < rank; ++d) offset += begin[size_t(d)] * strides[size_t(d)];
  size_t es = dtype_size(x.dtype);
  return std::make_unique<LambdaKernel>([=](const std::vector<const Tensor*>& in,
                                            const std::vector<Tensor*>& o, ExecContext& e) {
    if (o[0]->numel() == 0) return;
    strided_copy(static_cast<const char*>(in[0]->raw_data()) + offset * int64_t(es), out,
                 view_strides, o[0]->raw_data(), es, &e.pool);
  });
}

// Reads index i of an i32/i64 tensor and wraps negatives; throws when out of [-dim, dim).
int64_t read_index(const Tensor& indices, int64_t i, int64_t dim, const char* op) {
  int64_t v = indices.dtype() == DType::i64 ? indices.data<int64_t>()[i]
                                            : int64_t(indices.data<int32_t>()[i]);
  if (v < -dim || v >= dim)
    throw Error(std::string(op) + ": index " + std::to_string(v) + " is out of range for size " +
                std::to_string(dim));
  return v < 0 ? v + dim : v;
}

std::unique_ptr<Kernel> make_gather(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  const ValueInfo& indices = required_input(ctx, 1);
  if (indices.dtype != DType::i64 && indices.dtype != DType::i32)
    throw Error(ctx.describe() + ": indices must be int32 or int64");
  int64_t rank = int64_t(x.shape.size());
  int64_t axis = normalize_axis(ctx.node.attributes.get_int("axis", 0), rank, ctx.describe());
  Shape out(x.shape.begin(), x.shape.begin() + axis);
  out.insert(out.end(), indices.shape.begin(), indices.shape.end());
  out.insert(out.end(), x.shape.begin() + axis + 1, x.shape.end());
  ctx.set_output(0, x.dtype, out);
  int64_t outer = 1, inner = int64_t(dtype_size(x.dtype)), dim = x.shape[size_t(axis)];
  for (int64_t d = 0; d < rank; ++d)
    if (d < axis) outer *= x.shape[size_t(d)];
    else if (d > axis) inner *= x.shape[size_t(d)];
  int64_t count = shape_numel(indices.shape);
  std::string who = ctx.describe();
  return std::make_unique<LambdaKernel>([=](const std::vector<const Tensor*>& in,
                                            const std::vector<Tensor*>& o, ExecContext&) {
    const char* src = static_cast<const char*>(in[0]->raw_data());
    char* dst = static_cast<char*>(o[0]->raw_data());
    Ints rows(static_cast<size_t>(count));
    for (int64_t j = 0; j < count; ++j) rows[size_t(j)] = read_index(*in[1], j, dim, who.c_str());
    for (int64_t r = 0; r < outer; ++r)
      for (int64_t j = 0; j < count; ++j)
        std::memcpy(dst + (r * count + j) * inner, src + (r * dim + rows[size_t(j)]) * inner,
                    size_t(inner));
  });
}

std::unique_ptr<Kernel> make_gather_elements(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  const ValueInfo& indices = required_input(ctx, 1);
  if (indices.dtype != DType::i64 && indices.dtype != DType::i32)
    throw Error(ctx.describe() + ": indices must be int32 or int64");
  int64_t rank = int64_t(x.shape.size());
  if (int64_t(indices.shape.size()) != rank)
    throw Error(ctx.describe() + ": indices must have the data's rank");
  int64_t axis = normalize_axis(ctx.node.attributes.get_int("axis", 0), rank, ctx.describe());
  ctx.set_output(0, x.dtype, indices.shape);
  Shape data_strides = contiguous_strides(x.shape), index_shape = indices.shape;
  size_t es = dtype_size(x.dtype);
  std::string who = ctx.describe();
  return std::make_unique<LambdaKernel>([=](const std::vector<const Tensor*>& in,
                                            const std::vector<Tensor*>& o, ExecContext&) {
    const char* src = static_cast<const char*>(in[0]->raw_data());
    char* dst = static_cast<char*>(o[0]->raw_data());
    int64_t n = o[0]->numel();
    Ints position(size_t(rank), 0);
    for (int64_t i = 0; i < n; ++i) {
      int64_t offset = 0;
      for (int64_t d = 0; d < rank; ++d)
        offset += (d == axis ? read_index(*in[1], i, x.shape[size_t(d)], who.c_str())
                             : position[size_t(d)]) * data_strides[size_t(d)];
      std::memcpy(dst + i * int64_t(es), src + offset * int64_t(es), es);
      for (int64_t d = rank - 1; d >= 0; --d) {
        if (++position[size_t(d)] < index_shape[size_t(d)]) break;
        position[size_t(d)] = 0;
      }
    }
  });
}

std::unique_ptr<Kernel> make_expand(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  Ints target = ctx.constant_input(1, "shape").to_int64_vector();
  Shape out = broadcast_shapes({x.shape, Shape(target.begin(), target.end())}, ctx.describe());
  ctx.set_output(0, x.dtype, out);
  Shape strides = broadcast_strides(x.shape, out);
  size_t es = dtype_size(x.dtype);
  return std::make_unique<LambdaKernel>([=](const std::vector<const Tensor*>& in,
                                            const std::vector<Tensor*>& o, ExecContext& e) {
    strided_copy(in[0]->raw_data(), out, strides, o[0]->raw_data(), es, &e.pool);
  });
}

// Tile as a strided copy: the output [r0*d0, r1*d1, ...] is laid out like [r0, d0, r1, d1, ...]
// whose repeat dims read the input with stride 0.
std::unique_ptr<Kernel> make_tile(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  Ints repeats = ctx.constant_input(1, "repeats").to_int64_vector();
  if (repeats.size() != x.shape.size())
    throw Error(ctx.describe() + ": repeats has " + std::to_string(repeats.size()) +
                " entries for rank " + std::to_string(x.shape.size()));
  Shape out, view_shape, view_strides, in_strides = contiguous_strides(x.shape);
  for (size_t d = 0; d < repeats.size(); ++d) {
    if (repeats[d] < 0) throw Error(ctx.describe() + ": negative repeat");
    out.push_back(x.shape[d] * repeats[d]);
    view_shape.insert(view_shape.end(), {repeats[d], x.shape[d]});
    view_strides.insert(view_strides.end(), {0, in_strides[d]});
  }
  ctx.set_output(0, x.dtype, out);
  size_t es = dtype_size(x.dtype);
  return std::make_unique<LambdaKernel>([=](const std::vector<const Tensor*>& in,
                                            const std::vector<Tensor*>& o, ExecContext& e) {
    strided_copy(in[0]->raw_data(), view_shape, view_strides, o[0]->raw_data(), es, &e.pool);
  });
}

std::unique_ptr<Kernel> make_constant_of_shape(KernelCreateContext& ctx) {
  Ints dims = ctx.constant_input(0, "shape").to_int64_vector();
  Tensor value(DType::f32, {1});
  if (const Tensor* v = ctx.node.attributes.get_tensor("value")) {
    if (v->numel() != 1) throw Error(ctx.describe() + ": value must hold exactly one element");
    value = v->clone();
  }
  Shape out(dims.begin(), dims.end());
  ctx.set_output(0, value.dtype(), out);
  size_t es = dtype_size(value.dtype());
  return std::make_unique<LambdaKernel>([value, es](const std::vector<const Tensor*>&,
                                                    const std::vector<Tensor*>& o, ExecContext&) {
    char* dst = static_cast<char*>(o[0]->raw_data());
    for (int64_t i = 0; i < o[0]->numel(); ++i) std::memcpy(dst + i * int64_t(es), value.raw_data(), es);
  });
}

std::unique_ptr<Kernel> make_constant(KernelCreateContext& ctx) {
  const Attributes& a = ctx.node.attributes;
  if (const Tensor* t = a.get_tensor("value")) return constant_kernel(ctx, *t);
  if (a.has("value_float")) {
    Tensor t(DType::f32, {});
    t.data<float>()[0] = a.get_float("value_float", 0.f);
    return constant_kernel(ctx, t);
  }
  if (a.has("value_floats")) {
    std::vector<float> v = a.get_floats("value_floats");
    Tensor t(DType::f32, {int64_t(v.size())});
    std::copy(v.begin(), v.end(), t.data<float>());
    return constant_kernel(ctx, t);
  }
  if (a.has("value_int")) return constant_kernel(ctx, Tensor::from_int64({a.get_int("value_int", 0)}, {}));
  if (a.has("value_ints")) {
    Ints v = a.get_ints("value_ints");
    return constant_kernel(ctx, Tensor::from_int64(v, {int64_t(v.size())}));
  }
  throw Error(ctx.describe() + ": only value, value_float(s) and value_int(s) are supported");
}

std::unique_ptr<Kernel> make_range(KernelCreateContext& ctx) {
  const Tensor& start = ctx.constant_input(0, "start");
  const Tensor& limit = ctx.constant_input(1, "limit");
  const Tensor& delta = ctx.constant_input(2, "delta");
  DType dtype = start.dtype();
  if (limit.dtype() != dtype || delta.dtype() != dtype)
    throw Error(ctx.describe() + ": start, limit and delta must have the same dtype");
  Tensor values;
  if (dtype == DType::i64 || dtype == DType::i32) {
    int64_t s = start.to_int64_vector()[0], l = limit.to_int64_vector()[0], d = delta.to_int64_vector()[0];
    if (d == 0) throw Error(ctx.describe() + ": delta must not be 0");
    int64_t n = std::max<int64_t>(0, d > 0 ? (l - s + d - 1) / d : (s - l + (-d) - 1) / (-d));
    Ints v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[size_t(i)] = s + i * d;
    values = Tensor::from_int64(v, {n}).cast(dtype);
  } else if (dtype_is_float(dtype)) {
    double s = start.value_as_double(0), l = limit.value_as_double(0), d = delta.value_as_double(0);
    if (d == 0) throw Error(ctx.describe() + ": delta must not be 0");
    int64_t n = std::max<int64_t>(0, int64_t(std::ceil((l - s) / d)));
    Tensor f(DType::f32, {n});
    for (int64_t i = 0; i < n; ++i) f.data<float>()[i] = float(s + double(i) * d);
    values = f.cast(dtype);
  } else {
    throw Error(ctx.describe() + ": unsupported dtype " + dtype_name(dtype));
  }
  return constant_kernel(ctx, values);
}

std::unique_ptr<Kernel> make_trilu(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  if (x.shape.size() < 2) throw Error(ctx.describe() + ": input must have rank >= 2");
  bool upper = ctx.node.attributes.get_int("upper", 1) != 0;
  ctx.set_output(0, x.dtype, x.shape);
  int64_t rows = x.shape[x.shape.size() - 2], cols = x.shape.back();
  size_t es = dtype_size(x.dtype);
  return std::make_unique<LambdaKernel>([=](const std::vector<const Tensor*>& in,
                                            const std::vector<Tensor*>& o, ExecContext& e) {
    int64_t k = in.size() > 1 && in[1] ? in[1]->to_int64_vector()[0] : 0;
    copy_tensor_bytes(*in[0], *o[0], &e.pool);
    char* y = static_cast<char*>(o[0]->raw_data());
    int64_t matrices = rows * cols == 0 ? 0 : o[0]->numel() / (rows * cols);
    for (int64_t m = 0; m < matrices; ++m)
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) {
          bool keep = upper ? j - i >= k : j - i <= k;
          if (!keep) std::memset(y + ((m * rows + i) * cols + j) * int64_t(es), 0, es);
        }
  });
}

}  // namespace

void register_shape_operators(OperatorRegistry& registry) {
  registry.add("Shape", 1, 18, make_shape);
  registry.add("Size", 1, 18, make_size);
  registry.add("Reshape", 5, 18, make_reshape);
  registry.add("Flatten", 1, 18, make_flatten);
  registry.add("Squeeze", 1, 18, make_squeeze);
  registry.add("Unsqueeze", 1, 18, make_unsqueeze);
  registry.add("Transpose", 1, 18, make_transpose);
  registry.add("Concat", 4, 18, make_concat);
  registry.add("Split", 2, 18, make_split);
  registry.add("Slice", 1, 18, make_slice);
  registry.add("Gather", 1, 18, make_gather);
  registry.add("GatherElements", 11, 18, make_gather_elements);
  registry.add("Expand", 8, 18, make_expand);
  registry.add("Tile", 6, 18, make_tile);
  registry.add("ConstantOfShape", 9, 18, make_constant_of_shape);
  registry.add("Constant", 1, 18, make_constant);
  registry.add("Range", 11, 18, make_range);
  registry.add("Trilu", 14, 18, make_trilu);
}

}  // namespace tessera
