// Broadcast shape rules and the collapsed N-D -> (outer loop x 2-D block) iteration used by
// the operators; see broadcast.h for the contract.
#include "ops/broadcast.h"

#include "ops/operator.h"

#include <algorithm>
#include <cstring>

namespace tessera {

Shape broadcast_shapes(const std::vector<Shape>& shapes, const std::string& who) {
  size_t rank = 0;
  for (const auto& s : shapes) rank = std::max(rank, s.size());
  Shape out(rank, 1);
  for (const auto& s : shapes) {
    size_t shift = rank - s.size();
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t& o = out[shift + i];
      if (s[i] == o || s[i] == 1) continue;
      if (o == 1) {
        o = s[i];
        continue;
      }
      std::string list;
      for (const auto& t : shapes) list += (list.empty() ? "" : ", ") + shape_to_string(t);
      throw Error(who + ": shapes " + list + " cannot be broadcast together");
    }
  }
  return out;
}

Shape broadcast_strides(const Shape& input, const Shape& output) {
  Shape strides(output.size(), 0);
  Shape contiguous = contiguous_strides(input);
  size_t shift = output.size() - input.size();
  for (size_t i = 0; i < input.size(); ++i)
    strides[shift + i] = (input[i] == 1 && output[shift + i] != 1) ? 0 : contiguous[i];
  return strides;
}

int64_t IterationPlan::outer_count() const {
  int64_t n = 1;
  for (int64_t d : outer_dims) n *= d;
  return n;
}

IterationPlan make_strided_plan(const Shape& output_shape, const std::vector<Shape>& operand_strides) {
  IterationPlan plan;
  size_t operands = operand_strides.size();
  plan.total = shape_numel(output_shape);
  // Collected dims, outermost first, after dropping 1s and merging uniform neighbours.
  std::vector<int64_t> dims;
  std::vector<std::vector<int64_t>> strides(operands);
  for (size_t d = 0; d < output_shape.size(); ++d) {
    if (output_shape[d] == 1) continue;
    dims.push_back(output_shape[d]);
    for (size_t k = 0; k < operands; ++k) strides[k].push_back(operand_strides[k][d]);
  }
  // Merge from the inside out: dim i folds into dim i+1 when each operand's stride for i is
  // exactly the extent of dim i+1 (so the pair walks memory like one longer dim).
  for (size_t i = dims.size(); i-- > 1;) {
    bool mergeable = true;
    for (size_t k = 0; k < operands && mergeable; ++k)
      mergeable = strides[k][i - 1] == strides[k][i] * dims[i];
    if (!mergeable) continue;
    dims[i - 1] *= dims[i];
    for (size_t k = 0; k < operands; ++k) strides[k][i - 1] = strides[k][i];
    dims.erase(dims.begin() + std::ptrdiff_t(i));
    for (size_t k = 0; k < operands; ++k) strides[k].erase(strides[k].begin() + std::ptrdiff_t(i));
  }
  plan.row_stride.assign(operands, 0);
  plan.col_stride.assign(operands, 0);
  plan.outer_strides.assign(operands, {});
  size_t n = dims.size();
  if (n >= 1) {
    plan.cols = dims[n - 1];
    for (size_t k = 0; k < operands; ++k) plan.col_stride[k] = strides[k][n - 1];
  }
  if (n >= 2) {
    plan.rows = dims[n - 2];
    for (size_t k = 0; k < operands; ++k) plan.row_stride[k] = strides[k][n - 2];
  }
  if (n > 2) {
    plan.outer_dims.assign(dims.begin(), dims.end() - 2);
    for (size_t k = 0; k < operands; ++k)
      plan.outer_strides[k].assign(strides[k].begin(), strides[k].end() - 2);
  }
  return plan;
}

IterationPlan make_broadcast_plan(const Shape& output_shape, const std::vector<Shape>& operand_shapes) {
  std::vector<Shape> strides;
  for (const auto& s : operand_shapes) strides.push_back(broadcast_strides(s, output_shape));
  return make_strided_plan(output_shape, strides);
}

void parallel_range(ThreadPool* pool, int64_t n, int64_t min_chunk,
                    const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (!pool || pool->size() <= 1 || n <= min_chunk) {
    fn(0, n);
    return;
  }
  pool->parallel_for(n, fn, std::max<int64_t>(1, min_chunk));
}

namespace {
// Below this many elements per chunk the thread hand-off costs more than it saves.
constexpr int64_t kElementsPerChunk = 16384;
}  // namespace

void for_each_block(const IterationPlan& plan, ThreadPool* pool, const BlockFn& block) {
  if (plan.total == 0) return;
  size_t operands = plan.operands();
  if (plan.rows == 1 && plan.outer_dims.empty()) {
    // One long run: split its columns instead so that flat problems still parallelize.
    parallel_range(pool, plan.cols, kElementsPerChunk, [&](int64_t begin, int64_t end) {
      std::vector<int64_t> offsets(operands);
      for (size_t k = 0; k < operands; ++k) offsets[k] = begin * plan.col_stride[k];
      block(offsets.data(), begin, 1, end - begin);
    });
    return;
  }
  int64_t units = plan.outer_count() * plan.rows;
  int64_t grain = std::max<int64_t>(1, kElementsPerChunk / std::max<int64_t>(1, plan.cols));
  parallel_range(pool, units, grain, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> offsets(operands);
    for (int64_t unit = begin; unit < end;) {
      int64_t outer = unit / plan.rows, row = unit % plan.rows;
      int64_t count = std::min(end - unit, plan.rows - row);
      for (size_t k = 0; k < operands; ++k) offsets[k] = row * plan.row_stride[k];
      int64_t rest = outer;
      for (size_t d = plan.outer_dims.size(); d-- > 0;) {
        int64_t index = rest % plan.outer_dims[d];
        rest /= plan.outer_dims[d];
        for (size_t k = 0; k < operands; ++k) offsets[k] += index * plan.outer_strides[k][d];
      }
      block(offsets.data(), unit * plan.cols, count, plan.cols);
      unit += count;
    }
  });
}

namespace {
template <typename T>
void gather_row(const T* src, int64_t stride, int64_t n, T* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i * stride];
}
}  // namespace

void strided_copy(const void* source, const Shape& shape, const Shape& strides, void* destination,
                  size_t element_size, ThreadPool* pool) {
  IterationPlan plan = make_strided_plan(shape, {strides});
  const char* src = static_cast<const char*>(source);
  char* dst = static_cast<char*>(destination);
  int64_t es = int64_t(element_size);
  for_each_block(plan, pool, [&](const int64_t* offsets, int64_t out, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; ++r) {
      const char* s = src + (offsets[0] + r * plan.row_stride[0]) * es;
      char* d = dst + (out + r * plan.cols) * es;
      int64_t cs = plan.col_stride[0];
      if (cs == 1) {
        std::memcpy(d, s, size_t(cols * es));
        continue;
      }
      switch (element_size) {
        case 1: gather_row(reinterpret_cast<const uint8_t*>(s), cs, cols, reinterpret_cast<uint8_t*>(d)); break;
        case 2: gather_row(reinterpret_cast<const uint16_t*>(s), cs, cols, reinterpret_cast<uint16_t*>(d)); break;
        case 4: gather_row(reinterpret_cast<const uint32_t*>(s), cs, cols, reinterpret_cast<uint32_t*>(d)); break;
        case 8: gather_row(reinterpret_cast<const uint64_t*>(s), cs, cols, reinterpret_cast<uint64_t*>(d)); break;
        default:
          for (int64_t c = 0; c < cols; ++c) std::memcpy(d + c * es, s + c * cs * es, element_size);
      }
    }
  });
}

int64_t normalize_axis(int64_t axis, int64_t rank, const std::string& who) {
  if (axis < -rank || axis >= rank)
    throw Error(who + ": axis " + std::to_string(axis) + " is out of range for rank " +
                std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

}  // namespace tessera

namespace tessera {

void copy_tensor_bytes(const Tensor& from, Tensor& to, ThreadPool* pool) {
  TESSERA_CHECK(from.nbytes() == to.nbytes(), "copy between tensors of different sizes " +
                                                  shape_to_string(from.shape()) + " and " +
                                                  shape_to_string(to.shape()));
  const char* src = static_cast<const char*>(from.raw_data());
  char* dst = static_cast<char*>(to.raw_data());
  if (src == dst) return;  // the executor may run data-movement ops in place
  parallel_range(pool, int64_t(from.nbytes()), int64_t(1) << 20, [&](int64_t begin, int64_t end) {
    std::memcpy(dst + begin, src + begin, size_t(end - begin));
  });
}

const ValueInfo& required_input(const KernelCreateContext& ctx, size_t i) {
  if (!ctx.has_input(i))
    throw Error(ctx.describe() + ": required input " + std::to_string(i) + " is missing");
  return ctx.inputs[i];
}

}  // namespace tessera
