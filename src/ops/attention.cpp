// tessera.Attention: the fused attention node made by the fuse_attention pass,
// softmax(scale * Q K^T + mask) V over [batch, heads, rows, head_size] operands.
//
// Inputs: Q, K, V, optional mask (float: added to the scores; bool: where it is not
// keep_where_true (attribute, default 1) the score becomes `fill`), the mask
// broadcast to [batch, heads, queries, keys] by numpy rules. Attributes: scale (float), causal
// (int), fill (float), and q_layout, k_layout, v_layout, out_layout: the order in which each
// stored tensor holds the axes b(atch), h(eads), s(equence) and d(head size), e.g. "bhsd" (the
// default), "bshd" (heads split but not transposed), "bhds" (K stored transposed). Reading and
// writing through these layouts is how the pass removes the transposes around attention.
// qkv_heads (int, optional): Q, K and V are one tensor [batch, sequence, 3 x heads x head size],
// the thirds of a merged QKV projection, read in place (the layouts are then "bshd").
#include <array>

#include "ops/operator.h"
#include "primitives/attention.h"

namespace tessera {

namespace {

struct Layout {
  std::array<int, 4> axis_of{};  // position in the stored tensor of b, h, s, d
};

Layout parse_layout(const std::string& text, const std::string& what, const std::string& where) {
  static const std::string letters = "bhsd";
  Layout l;
  std::array<bool, 4> seen{};
  if (text.size() != 4) throw Error(where + ": " + what + " must be a permutation of \"bhsd\", not '" + text + "'");
  for (int pos = 0; pos < 4; ++pos) {
    const size_t axis = letters.find(text[size_t(pos)]);
    if (axis == std::string::npos || seen[axis])
      throw Error(where + ": " + what + " must be a permutation of \"bhsd\", not '" + text + "'");
    seen[axis] = true;
    l.axis_of[axis] = pos;
  }
  return l;
}

// The stored shape's extent of logical axis a (b=0, h=1, s=2, d=3) and its contiguous stride.
struct View {
  std::array<int64_t, 4> extent{}, stride{};
  int64_t offset = 0;  // of the first element, in elements
};

// The three thirds of a packed [b, s, 3 h d] QKV tensor as [b, h, s, d] views.
std::array<View, 3> packed_qkv_views(const Shape& stored, int64_t heads, const std::string& where) {
  if (stored.size() != 3 || heads <= 0 || heads > stored[2] || stored[2] % (3 * heads) != 0)
    throw Error(where + ": with qkv_heads " + std::to_string(heads) + " the input must be [batch, sequence, 3 x " +
                std::to_string(heads) + " x head size], not " + shape_to_string(stored));
  const int64_t width = stored[2], head_size = width / (3 * heads);
  std::array<View, 3> views;
  for (int part = 0; part < 3; ++part) {
    views[size_t(part)].extent = {stored[0], heads, stored[1], head_size};
    views[size_t(part)].stride = {stored[1] * width, head_size, width, 1};
    views[size_t(part)].offset = part * heads * head_size;
  }
  return views;
}
View view_of(const Shape& stored, const Layout& l, const std::string& what, const std::string& where) {
  if (stored.size() != 4) throw Error(where + ": " + what + " must have rank 4, has " + shape_to_string(stored));
  const Shape strides = contiguous_strides(stored);
  View v;
  for (int a = 0; a < 4; ++a) {
    v.extent[size_t(a)] = stored[size_t(l.axis_of[size_t(a)])];
    v.stride[size_t(a)] = strides[size_t(l.axis_of[size_t(a)])];
  }
  return v;
}

}  // namespace

std::unique_ptr<Kernel> create_attention(KernelCreateContext& ctx) {
  const std::string where = ctx.describe();
  for (size_t i = 0; i < 3; ++i)
    if (!ctx.has_input(i) || ctx.input(i).dtype != DType::f32) throw Error(where + ": Q, K and V must be float32");
  const auto& at = ctx.node.attributes;
  View q, k, v;
  if (at.has("qkv_heads")) {
    if (ctx.input(1).shape != ctx.input(0).shape || ctx.input(2).shape != ctx.input(0).shape)
      throw Error(where + ": with qkv_heads, Q, K and V must be the same packed tensor");
    const auto views = packed_qkv_views(ctx.input(0).shape, at.get_int("qkv_heads", 0), where);
    q = views[0];
    k = views[1];
    v = views[2];
  } else {
    q = view_of(ctx.input(0).shape, parse_layout(at.get_string("q_layout", "bhsd"), "q_layout", where), "Q", where);
    k = view_of(ctx.input(1).shape, parse_layout(at.get_string("k_layout", "bhsd"), "k_layout", where), "K", where);
    v = view_of(ctx.input(2).shape, parse_layout(at.get_string("v_layout", "bhsd"), "v_layout", where), "V", where);
  }
  const Layout out_layout = parse_layout(at.get_string("out_layout", "bhsd"), "out_layout", where);
  const int64_t batch = q.extent[0], heads = q.extent[1], queries = q.extent[2], head_size = q.extent[3];
  const int64_t keys = k.extent[2], value_size = v.extent[3];
  if (k.extent[0] != batch || v.extent[0] != batch || k.extent[1] != heads || v.extent[1] != heads ||
      k.extent[3] != head_size || v.extent[2] != keys)
    throw Error(where + ": Q " + shape_to_string(ctx.input(0).shape) + ", K " + shape_to_string(ctx.input(1).shape) +
                " and V " + shape_to_string(ctx.input(2).shape) + " do not fit together");
  primitives::AttentionProblem base;
  base.batch = batch;
  base.heads = heads;
  base.query_length = queries;
  base.key_length = keys;
  base.head_size = head_size;
  base.value_size = value_size;
  base.scale = at.get_float("scale", 1.f);
  base.causal = at.get_int("causal", 0) != 0;
  base.fill = at.get_float("fill", -1e9f);
  base.keep_where_true = at.get_int("keep_where_true", 1) != 0;
  // Output: stored in out_layout.
  std::array<int64_t, 4> logical_out = {batch, heads, queries, value_size};
  Shape out_shape(4);
  for (int a = 0; a < 4; ++a) out_shape[size_t(out_layout.axis_of[size_t(a)])] = logical_out[size_t(a)];
  const Shape out_strides = contiguous_strides(out_shape);
  base.out_batch_stride = out_strides[size_t(out_layout.axis_of[0])];
  base.out_head_stride = out_strides[size_t(out_layout.axis_of[1])];
  base.out_row_stride = out_strides[size_t(out_layout.axis_of[2])];
  if (out_strides[size_t(out_layout.axis_of[3])] != 1)
    throw Error(where + ": out_layout must keep the head size innermost");
  // Mask: broadcast to [b, h, q, k] (right-aligned), as byte strides of its elements.
  DType mask_dtype = DType::f32;
  const bool has_mask = ctx.has_input(3);
  if (has_mask) {
    const Shape& ms = ctx.input(3).shape;
    mask_dtype = ctx.input(3).dtype;
    if (mask_dtype != DType::f32 && mask_dtype != DType::boolean)
      throw Error(where + ": the mask must be float32 (added) or bool (kept where true)");
    if (ms.size() > 4) throw Error(where + ": the mask has rank " + std::to_string(ms.size()) + " > 4");
    const Shape strides = contiguous_strides(ms);
    const std::array<int64_t, 4> target = {batch, heads, queries, keys};
    std::array<int64_t, 4> mask_strides{};
    for (size_t i = 0; i < ms.size(); ++i) {
      const size_t axis = 4 - ms.size() + i;
      if (ms[i] != 1 && ms[i] != target[axis])
        throw Error(where + ": mask " + shape_to_string(ms) + " does not broadcast to [" + std::to_string(batch) + "," +
                    std::to_string(heads) + "," + std::to_string(queries) + "," + std::to_string(keys) + "]");
      mask_strides[axis] = ms[i] == 1 ? 0 : strides[i];
    }
    base.mask_batch_stride = mask_strides[0];
    base.mask_head_stride = mask_strides[1];
    base.mask_row_stride = mask_strides[2];
    base.mask_column_stride = mask_strides[3];
  }
  ctx.set_output(0, DType::f32, out_shape);
  const double flops = 2.0 * double(batch * heads * queries * keys) * double(head_size + value_size) *
                       (base.causal && queries == keys ? 0.5 : 1.0);
  auto operand = [](const View& view, const float* data) {
    primitives::AttentionOperand o;
    o.data = data + view.offset;
    o.batch_stride = view.stride[0];
    o.head_stride = view.stride[1];
    o.row_stride = view.stride[2];
    o.column_stride = view.stride[3];
    return o;
  };
  auto run = [=](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, ExecContext& context) {
    primitives::AttentionProblem p = base;
    p.q = operand(q, in[0]->data<float>());
    p.k = operand(k, in[1]->data<float>());
    p.v = operand(v, in[2]->data<float>());
    p.out = out[0]->data<float>();
    if (has_mask) {
      if (mask_dtype == DType::f32)
        p.additive_mask = in[3]->data<float>();
      else
        p.keep_mask = in[3]->data<uint8_t>();
    }
    primitives::attention_f32(p, &context.pool);
  };
  return std::make_unique<LambdaKernel>(run, flops);
}

}  // namespace tessera
