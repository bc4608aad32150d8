// The fixed order of graph passes (each pass lives in its own file).
#include "graph/passes/passes.h"

namespace tessera {

PassReport run_graph_passes(Graph& graph) {
  PassReport report;
  // First, while the QDQ patterns are intact (the later passes would fuse their Relus).
  report.int8_lowered = lower_qdq_to_int8(graph);
  report.identities_removed = remove_identity_nodes(graph);
  report.batchnorms_folded = fold_batchnorm(graph);
  report.residuals_fused = fuse_residual_add(graph);
  // Transformer blocks: element-wise subgraphs into single nodes first, then the MatMul epilogues
  // (bias, then the activation below), the projections sharing an input, attention, and
  // residual sums into the layer norms after them.
  report.gelus_fused = fuse_gelu(graph);
  report.layer_norms_fused = fuse_layer_norm(graph);
  report.matmul_biases_fused = fuse_matmul_bias(graph);
  report.matmuls_merged = merge_parallel_matmuls(graph);
  report.attentions_fused = fuse_attention(graph);
  report.add_layer_norms_fused = fuse_add_layer_norm(graph);
  report.activations_fused = fuse_activation(graph);
  graph.remove_dead_nodes();
  graph.topological_sort();
  return report;
}

}  // namespace tessera
