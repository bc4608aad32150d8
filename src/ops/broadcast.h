// Broadcasting and strided iteration shared by the elementwise, shape and reduce operators:
// N-D problems are collapsed into an outer loop around a 2-D block that the primitives take.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tessera/tensor.h"
#include "tessera/thread_pool.h"

namespace tessera {

struct ValueInfo;
struct KernelCreateContext;

// Numpy-style multidirectional broadcast of shapes; throws naming `who` when incompatible.
Shape broadcast_shapes(const std::vector<Shape>& shapes, const std::string& who);
// Element strides that read `input` as if it had `output`'s shape (0 on broadcast dims).
// The input must be broadcastable to the output (checked by broadcast_shapes).
Shape broadcast_strides(const Shape& input, const Shape& output);

// A contiguous output of some shape computed from several strided operands. Dims of size 1
// are dropped and neighbouring dims that every operand walks uniformly are merged, so most
// problems end up as a single 2-D block [rows, cols] repeated over a short outer loop.
struct IterationPlan {
  int64_t total = 0;                                // output elements
  std::vector<int64_t> outer_dims;                  // dims looped over outside the block
  std::vector<std::vector<int64_t>> outer_strides;  // [operand][outer dim]
  int64_t rows = 1, cols = 1;
  std::vector<int64_t> row_stride, col_stride;      // per operand
  int64_t outer_count() const;
  size_t operands() const { return row_stride.size(); }
};

// Plan for operands given explicitly by their element strides over `output_shape`.
IterationPlan make_strided_plan(const Shape& output_shape, const std::vector<Shape>& operand_strides);
// Plan for operands of the given shapes broadcast to `output_shape`.
IterationPlan make_broadcast_plan(const Shape& output_shape, const std::vector<Shape>& operand_shapes);

// Calls block(operand_offsets, output_offset, rows, cols) over disjoint 2-D blocks covering the
// output: element (r, c) of a block is output[output_offset + r * plan.cols + c] and operand k's
// element at offsets[k] + r * row_stride[k] + c * col_stride[k]. Parallel over the pool (if any)
// when the problem is large enough to pay for it.
using BlockFn = std::function<void(const int64_t* operand_offsets, int64_t output_offset,
                                   int64_t rows, int64_t cols)>;
void for_each_block(const IterationPlan& plan, ThreadPool* pool, const BlockFn& block);

// Copies a strided view (element strides, element offset into `source`) of elements of
// `element_size` bytes into contiguous `destination`.
void strided_copy(const void* source, const Shape& shape, const Shape& strides, void* destination,
                  size_t element_size, ThreadPool* pool);

// Runs fn(begin, end) over [0, n) on the pool when n is big enough, else inline.
void parallel_range(ThreadPool* pool, int64_t n, int64_t min_chunk,
                    const std::function<void(int64_t, int64_t)>& fn);

// Normalizes a possibly negative axis against a rank; throws with `who` when out of range.
int64_t normalize_axis(int64_t axis, int64_t rank, const std::string& who);

}  // namespace tessera

namespace tessera {

// Copies the bytes of `from` into `to` (same byte size; both contiguous).
void copy_tensor_bytes(const Tensor& from, Tensor& to, ThreadPool* pool);
// Throws naming the node when input i is absent.
const ValueInfo& required_input(const KernelCreateContext& ctx, size_t i);

}  // namespace tessera
