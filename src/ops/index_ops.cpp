// Index-driven data movement: GatherND, ScatterND, ScatterElements (and the older Scatter),
// OneHot, EyeLike, ReverseSequence, DepthToSpace and SpaceToDepth.
#include <algorithm>
#include <cstring>

#include "ops/broadcast.h"
#include "ops/dtype_dispatch.h"
#include "ops/index_util.h"
#include "ops/operator.h"

namespace tessera {
namespace {

using Ints = std::vector<int64_t>;

int64_t product(const Shape& shape, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end && i < shape.size(); ++i) p *= shape[i];
  return p;
}

// ---- GatherND -------------------------------------------------------------------------------

// Output = indices.shape[:-1] + data.shape[b + m:], each index tuple (length m = last dim of the
// indices) picking a contiguous slice of data within its batch (the first b dims are shared).
std::unique_ptr<Kernel> make_gather_nd(KernelCreateContext& ctx) {
  const ValueInfo& data = required_input(ctx, 0);
  const ValueInfo& indices = required_input(ctx, 1);
  if (!is_index_dtype(indices.dtype)) throw Error(ctx.describe() + ": indices must be int32 or int64");
  size_t r = data.shape.size(), q = indices.shape.size();
  int64_t b = ctx.node.attributes.get_int("batch_dims", 0);
  if (q < 1 || r < 1) throw Error(ctx.describe() + ": data and indices need rank >= 1");
  if (b < 0 || size_t(b) >= std::min(q, r))
    throw Error(ctx.describe() + ": batch_dims must be smaller than both ranks");
  for (size_t i = 0; i < size_t(b); ++i)
    if (data.shape[i] != indices.shape[i])
      throw Error(ctx.describe() + ": the first batch_dims dims of data and indices must match");
  int64_t m = indices.shape.back();
  if (m < 1 || size_t(b + m) > r)
    throw Error(ctx.describe() + ": the last indices dim (" + std::to_string(m) +
                ") must be in [1, rank(data) - batch_dims]");
  Shape out(indices.shape.begin(), indices.shape.end() - 1);
  out.insert(out.end(), data.shape.begin() + b + m, data.shape.end());
  ctx.set_output(0, data.dtype, out);

  int64_t batches = product(data.shape, 0, size_t(b));
  int64_t tuples_per_batch = product(indices.shape, size_t(b), q - 1);
  int64_t slice = product(data.shape, size_t(b + m), r);
  int64_t batch_stride = product(data.shape, size_t(b), r);
  Shape data_strides = contiguous_strides(data.shape);
  Shape dims = data.shape;
  size_t es = dtype_size(data.dtype);
  std::string who = ctx.describe();
  return std::make_unique<LambdaKernel>(
      [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext&) {
        const char* src = static_cast<const char*>(in[0]->raw_data());
        char* dst = static_cast<char*>(o[0]->raw_data());
        const Tensor& index = *in[1];
        for (int64_t batch = 0; batch < batches; ++batch)
          for (int64_t t = 0; t < tuples_per_batch; ++t) {
            int64_t tuple = batch * tuples_per_batch + t, offset = batch * batch_stride;
            for (int64_t j = 0; j < m; ++j) {
              size_t d = size_t(b + j);
              offset += wrap_index(read_integer(index, tuple * m + j), dims[d], who) * data_strides[d];
            }
            std::memcpy(dst + tuple * slice * int64_t(es), src + offset * int64_t(es), size_t(slice) * es);
          }
      });
}

// ---- ScatterND / ScatterElements / Scatter ----------------------------------------------------

enum class ScatterReduction { none, add, mul, max, min };

ScatterReduction scatter_reduction(const KernelCreateContext& ctx) {
  std::string r = ctx.node.attributes.get_string("reduction", "none");
  if (r == "none") return ScatterReduction::none;
  if (r == "add") return ScatterReduction::add;
  if (r == "mul") return ScatterReduction::mul;
  if (r == "max") return ScatterReduction::max;
  if (r == "min") return ScatterReduction::min;
  throw Error(ctx.describe() + ": unknown reduction '" + r + "' (none, add, mul, max or min)");
}

template <typename T>
void combine(ScatterReduction reduction, T& into, T update) {
  if constexpr (std::is_same_v<T, bool>) {
    switch (reduction) {
      case ScatterReduction::add:
      case ScatterReduction::max:
        into = into || update;
        break;
      case ScatterReduction::mul:
      case ScatterReduction::min:
        into = into && update;
        break;
      case ScatterReduction::none:
        into = update;
        break;
    }
  } else {
    using E = Element<T>;
    auto a = E::load(into), u = E::load(update);
    switch (reduction) {
      case ScatterReduction::none:
        into = update;
        return;
      case ScatterReduction::add:
        into = E::store(a + u);
        return;
      case ScatterReduction::mul:
        into = E::store(a * u);
        return;
      case ScatterReduction::max:
        into = E::store(std::max(a, u));
        return;
      case ScatterReduction::min:
        into = E::store(std::min(a, u));
        return;
    }
  }
}

// Output = data with the slices named by the index tuples of `indices` replaced (or combined) by
// `updates`; updates are applied in index order, so with duplicates the last one wins.
std::unique_ptr<Kernel> make_scatter_nd(KernelCreateContext& ctx) {
  const ValueInfo& data = required_input(ctx, 0);
  const ValueInfo& indices = required_input(ctx, 1);
  const ValueInfo& updates = required_input(ctx, 2);
  if (!is_index_dtype(indices.dtype)) throw Error(ctx.describe() + ": indices must be int32 or int64");
  if (updates.dtype != data.dtype) throw Error(ctx.describe() + ": updates must have the data's dtype");
  size_t r = data.shape.size(), q = indices.shape.size();
  if (q < 1) throw Error(ctx.describe() + ": indices need rank >= 1");
  int64_t m = indices.shape.back();
  if (m < 1 || size_t(m) > r)
    throw Error(ctx.describe() + ": the last indices dim must be in [1, rank(data)]");
  Shape expected(indices.shape.begin(), indices.shape.end() - 1);
  expected.insert(expected.end(), data.shape.begin() + m, data.shape.end());
  if (updates.shape != expected)
    throw Error(ctx.describe() + ": updates shape " + shape_to_string(updates.shape) + " should be " +
                shape_to_string(expected));
  ScatterReduction reduction = scatter_reduction(ctx);
  ctx.set_output(0, data.dtype, data.shape);
  int64_t tuples = product(indices.shape, 0, q - 1), slice = product(data.shape, size_t(m), r);
  Shape strides = contiguous_strides(data.shape), dims = data.shape;
  DType dtype = data.dtype;
  std::string who = ctx.describe();
  return std::make_unique<LambdaKernel>([=](const std::vector<const Tensor*>& in,
                                            const std::vector<Tensor*>& o, ExecContext& e) {
    copy_tensor_bytes(*in[0], *o[0], &e.pool);
    visit_dtype(dtype, [&](auto tag) {
      using T = decltype(tag);
      T* dst = o[0]->data<T>();
      const T* upd = in[2]->data<T>();
      for (int64_t t = 0; t < tuples; ++t) {
        int64_t offset = 0;
        for (int64_t j = 0; j < m; ++j)
          offset += wrap_index(read_integer(*in[1], t * m + j), dims[size_t(j)], who) * strides[size_t(j)];
        for (int64_t i = 0; i < slice; ++i) combine(reduction, dst[offset + i], upd[t * slice + i]);
      }
    });
  });
}

// output[... indices[i] (on axis) ...] = updates[i] for every position i of indices/updates.
std::unique_ptr<Kernel> make_scatter_elements(KernelCreateContext& ctx) {
  const ValueInfo& data = required_input(ctx, 0);
  const ValueInfo& indices = required_input(ctx, 1);
  const ValueInfo& updates = required_input(ctx, 2);
  if (!is_index_dtype(indices.dtype)) throw Error(ctx.describe() + ": indices must be int32 or int64");
  if (updates.dtype != data.dtype) throw Error(ctx.describe() + ": updates must have the data's dtype");
  if (updates.shape != indices.shape || indices.shape.size() != data.shape.size())
    throw Error(ctx.describe() + ": indices and updates must have one shape and the data's rank");
  int64_t rank = int64_t(data.shape.size());
  int64_t axis = normalize_axis(ctx.node.attributes.get_int("axis", 0), rank, ctx.describe());
  ScatterReduction reduction =
      ctx.node.op_type == "Scatter" ? ScatterReduction::none : scatter_reduction(ctx);
  ctx.set_output(0, data.dtype, data.shape);
  Shape strides = contiguous_strides(data.shape), dims = data.shape, index_shape = indices.shape;
  DType dtype = data.dtype;
  std::string who = ctx.describe();
  return std::make_unique<LambdaKernel>(
      [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext& e) {
        copy_tensor_bytes(*in[0], *o[0], &e.pool);
        visit_dtype(dtype, [&](auto tag) {
          using T = decltype(tag);
          T* dst = o[0]->data<T>();
          const T* upd = in[2]->data<T>();
          Ints position(size_t(rank), 0);
          for (int64_t i = 0; i < in[1]->numel(); ++i) {
            int64_t offset = 0;
            for (int64_t d = 0; d < rank; ++d) {
              int64_t coordinate =
                  d == axis ? wrap_index(read_integer(*in[1], i), dims[size_t(d)], who) : position[size_t(d)];
              offset += coordinate * strides[size_t(d)];
            }
            combine(reduction, dst[offset], upd[i]);
            for (int64_t d = rank - 1; d >= 0; --d) {
              if (++position[size_t(d)] < index_shape[size_t(d)]) break;
              position[size_t(d)] = 0;
            }
          }
        });
      });
}

// ---- OneHot / EyeLike -------------------------------------------------------------------------

// A new axis of size `depth` (known at plan time) holding values[1] where the index matches and
// values[0] elsewhere; negative indices count from the end, out-of-range ones match nothing.
std::unique_ptr<Kernel> make_one_hot(KernelCreateContext& ctx) {
  const ValueInfo& indices = required_input(ctx, 0);
  const Tensor& depth_tensor = ctx.constant_input(1, "depth");
  const ValueInfo& values = required_input(ctx, 2);
  if (depth_tensor.numel() != 1) throw Error(ctx.describe() + ": depth must hold one value");
  if (shape_numel(values.shape) != 2) throw Error(ctx.describe() + ": values must hold [off, on]");
  if (indices.dtype == DType::boolean) throw Error(ctx.describe() + ": indices must be numeric");
  double depth_value = depth_tensor.value_as_double(0);
  int64_t depth = int64_t(depth_value);
  if (depth < 1) throw Error(ctx.describe() + ": depth must be positive");
  int64_t out_rank = int64_t(indices.shape.size()) + 1;
  int64_t axis = normalize_axis(ctx.node.attributes.get_int("axis", -1), out_rank, ctx.describe());
  Shape out = indices.shape;
  out.insert(out.begin() + axis, depth);
  ctx.set_output(0, values.dtype, out);
  int64_t outer = product(indices.shape, 0, size_t(axis));
  int64_t inner = product(indices.shape, size_t(axis), indices.shape.size());
  size_t es = dtype_size(values.dtype);
  return std::make_unique<LambdaKernel>(
      [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext&) {
        const char* off_on = static_cast<const char*>(in[2]->raw_data());
        char* dst = static_cast<char*>(o[0]->raw_data());
        for (int64_t i = 0; i < o[0]->numel(); ++i) std::memcpy(dst + i * int64_t(es), off_on, es);
        for (int64_t a = 0; a < outer; ++a)
          for (int64_t c = 0; c < inner; ++c) {
            int64_t index = int64_t(in[0]->value_as_double(a * inner + c));
            if (index < 0) index += depth;
            if (index < 0 || index >= depth) continue;
            std::memcpy(dst + ((a * depth + index) * inner + c) * int64_t(es), off_on + es, es);
          }
      });
}

// A 2-D tensor like the input (or of the `dtype` attribute) with ones on diagonal k.
std::unique_ptr<Kernel> make_eye_like(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  if (x.shape.size() != 2) throw Error(ctx.describe() + ": the input must be 2-D");
  DType dtype = ctx.node.attributes.has("dtype")
                    ? dtype_from_onnx(int(ctx.node.attributes.get_int("dtype", 1)))
                    : x.dtype;
  int64_t k = ctx.node.attributes.get_int("k", 0);
  ctx.set_output(0, dtype, x.shape);
  int64_t rows = x.shape[0], cols = x.shape[1];
  return std::make_unique<LambdaKernel>(
      [=](const std::vector<const Tensor*>&, const std::vector<Tensor*>& o, ExecContext&) {
        std::memset(o[0]->raw_data(), 0, o[0]->nbytes());
        visit_dtype(dtype, [&](auto tag) {
          using T = decltype(tag);
          T* y = o[0]->data<T>();
          for (int64_t i = 0; i < rows; ++i)
            if (i + k >= 0 && i + k < cols) y[i * cols + i + k] = convert_element<T>(int32_t(1));
        });
      });
}

// ---- ReverseSequence --------------------------------------------------------------------------

// Reverses the first sequence_lens[b] steps along time_axis for each batch entry b.
std::unique_ptr<Kernel> make_reverse_sequence(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  const ValueInfo& lens = required_input(ctx, 1);
  if (!is_index_dtype(lens.dtype)) throw Error(ctx.describe() + ": sequence_lens must be int32 or int64");
  if (x.shape.size() < 2) throw Error(ctx.describe() + ": the input needs rank >= 2");
  int64_t batch_axis = ctx.node.attributes.get_int("batch_axis", 1);
  int64_t time_axis = ctx.node.attributes.get_int("time_axis", 0);
  if (!((batch_axis == 0 && time_axis == 1) || (batch_axis == 1 && time_axis == 0)))
    throw Error(ctx.describe() + ": batch_axis and time_axis must be 0 and 1 in some order");
  int64_t batch = x.shape[size_t(batch_axis)], time = x.shape[size_t(time_axis)];
  if (lens.shape != Shape{batch})
    throw Error(ctx.describe() + ": sequence_lens must have shape [" + std::to_string(batch) + "]");
  ctx.set_output(0, x.dtype, x.shape);
  int64_t inner = product(x.shape, 2, x.shape.size());
  int64_t batch_stride = (batch_axis == 0 ? time : 1) * inner;
  int64_t time_stride = (time_axis == 0 ? batch : 1) * inner;
  size_t es = dtype_size(x.dtype);
  std::string who = ctx.describe();
  return std::make_unique<LambdaKernel>(
      [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext&) {
        const char* src = static_cast<const char*>(in[0]->raw_data());
        char* dst = static_cast<char*>(o[0]->raw_data());
        size_t row = size_t(inner) * es;
        for (int64_t b = 0; b < batch; ++b) {
          int64_t length = read_integer(*in[1], b);
          if (length < 0 || length > time)
            throw Error(who + ": sequence length " + std::to_string(length) + " is outside [0, " +
                        std::to_string(time) + "]");
          for (int64_t t = 0; t < time; ++t) {
            int64_t from = t < length ? length - 1 - t : t;
            std::memcpy(dst + (b * batch_stride + t * time_stride) * int64_t(es),
                        src + (b * batch_stride + from * time_stride) * int64_t(es), row);
          }
        }
      });
}

// ---- DepthToSpace / SpaceToDepth --------------------------------------------------------------

// Both are a 6-D transpose: the output is read from the input through `source_strides`.
std::unique_ptr<Kernel> six_dim_transpose(KernelCreateContext& ctx, const Shape& out, const Shape& view_shape,
                                          const Shape& view_strides) {
  const ValueInfo& x = ctx.input(0);
  ctx.set_output(0, x.dtype, out);
  size_t es = dtype_size(x.dtype);
  return std::make_unique<LambdaKernel>(
      [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext& e) {
        strided_copy(in[0]->raw_data(), view_shape, view_strides, o[0]->raw_data(), es, &e.pool);
      });
}

std::unique_ptr<Kernel> make_depth_to_space(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  if (x.shape.size() != 4) throw Error(ctx.describe() + ": the input must be [N, C, H, W]");
  int64_t block = ctx.node.attributes.get_int("blocksize", 0);
  int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
  if (block < 1 || c % (block * block) != 0)
    throw Error(ctx.describe() + ": channels (" + std::to_string(c) +
                ") must be a multiple of blocksize^2 (blocksize " + std::to_string(block) + ")");
  std::string mode = ctx.opset >= 11 ? ctx.node.attributes.get_string("mode", "DCR") : "DCR";
  int64_t depth = c / (block * block);
  // Output viewed as [N, C', H, b, W, b]; the input's channel splits as [b, b, C'] (DCR) or
  // [C', b, b] (CRD).
  Shape view{n, depth, h, block, w, block};
  Shape strides;
  if (mode == "DCR") {
    Shape s = contiguous_strides({n, block, block, depth, h, w});
    strides = {s[0], s[3], s[4], s[1], s[5], s[2]};
  } else if (mode == "CRD") {
    Shape s = contiguous_strides({n, depth, block, block, h, w});
    strides = {s[0], s[1], s[4], s[2], s[5], s[3]};
  } else {
    throw Error(ctx.describe() + ": unknown mode '" + mode + "' (DCR or CRD)");
  }
  return six_dim_transpose(ctx, {n, depth, h * block, w * block}, view, strides);
}

std::unique_ptr<Kernel> make_space_to_depth(KernelCreateContext& ctx) {
  const ValueInfo& x = required_input(ctx, 0);
  if (x.shape.size() != 4) throw Error(ctx.describe() + ": the input must be [N, C, H, W]");
  int64_t block = ctx.node.attributes.get_int("blocksize", 0);
  int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
  if (block < 1 || h % block != 0 || w % block != 0)
    throw Error(ctx.describe() + ": height and width must be multiples of blocksize " +
                std::to_string(block));
  // Input viewed as [N, C, H/b, b, W/b, b]; output [N, b, b, C, H/b, W/b].
  Shape s = contiguous_strides({n, c, h / block, block, w / block, block});
  Shape view{n, block, block, c, h / block, w / block};
  Shape strides{s[0], s[3], s[5], s[1], s[2], s[4]};
  return six_dim_transpose(ctx, {n, c * block * block, h / block, w / block}, view, strides);
}

}  // namespace

void register_index_operators(OperatorRegistry& registry) {
  registry.add("GatherND", 11, 18, make_gather_nd);
  registry.add("ScatterND", 11, 18, make_scatter_nd);
  registry.add("ScatterElements", 11, 18, make_scatter_elements);
  registry.add("Scatter", 9, 18, make_scatter_elements);
  registry.add("OneHot", 9, 18, make_one_hot);
  registry.add("EyeLike", 9, 18, make_eye_like);
  registry.add("ReverseSequence", 10, 18, make_reverse_sequence);
  registry.add("DepthToSpace", 1, 18, make_depth_to_space);
  registry.add("SpaceToDepth", 1, 18, make_space_to_depth);
}

}  // namespace tessera
