// The fixed order of graph passes (each pass lives in its own file).
#include "graph/passes/passes.h"

namespace tessera {

PassReport run_graph_passes(Graph& graph) {
  PassReport report;
  report.identities_removed = remove_identity_nodes(graph);
  report.batchnorms_folded = fold_batchnorm(graph);
  report.residuals_fused = fuse_residual_add(graph);
  report.attentions_fused = fuse_attention(graph);
  report.activations_fused = fuse_activation(graph);
  graph.remove_dead_nodes();
  graph.topological_sort();
  return report;
}

}  // namespace tessera
