// Pass: MatMul(A, W) followed by Add(bias) with a constant bias along the last axis (how
// PyTorch exports nn.Linear on 3-D input) becomes MatMul(A, W, bias): the bias is added in the
// GEMM's epilogue, on registers, instead of by a pass over the output.
#include "graph/passes/pass_utils.h"
#include "graph/passes/passes.h"
#include "ops/fused_activation.h"

namespace tessera {

int fuse_matmul_bias(Graph& graph) {
  const auto consumers = graph.consumers();
  const auto producers = graph.producers();
  std::vector<bool> remove(graph.nodes.size(), false);
  int fused = 0;
  for (size_t n = 0; n < graph.nodes.size(); ++n) {
    Node& add = graph.nodes[n];
    if (!add.domain.empty() || add.op_type != "Add" || add.inputs.size() != 2 || add.outputs.size() != 1) continue;
    for (int side = 0; side < 2; ++side) {
      const int product = add.inputs[size_t(side)], bias = add.inputs[size_t(1 - side)];
      const int p = product >= 0 ? producers[size_t(product)] : -1;
      if (p < 0 || remove[size_t(p)] || !pass_utils::single_consumer(graph, consumers, product)) continue;
      Node& matmul = graph.nodes[size_t(p)];
      if (!matmul.domain.empty() || matmul.op_type != "MatMul" || matmul.inputs.size() != 2 ||
          matmul.attributes.has(kFusedActivationAttribute))
        continue;
      const Value& out = graph.values[size_t(product)];
      const Tensor* b = pass_utils::constant_f32(graph, bias);
      if (!b || !pass_utils::all_dims_known(out) || out.dims.empty() || out.dtype != DType::f32) continue;
      // The bias must broadcast along the last axis only: [N] or [1, ..., 1, N], no wider than the output.
      const int64_t columns = out.dims.back().value;
      bool per_column = b->numel() == columns && b->rank() >= 1 && b->rank() <= int(out.dims.size());
      for (int d = 0; per_column && d + 1 < b->rank(); ++d) per_column = b->dim(d) == 1;
      if (!per_column) continue;
      matmul.inputs.push_back(bias);
      matmul.outputs[0] = add.outputs[0];
      remove[n] = true;
      ++fused;
      break;
    }
  }
  pass_utils::erase_nodes(graph, remove);
  return fused;
}

}  // namespace tessera
