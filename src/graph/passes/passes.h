// Graph passes: each is one rewrite in its own file, run in a fixed order by run_graph_passes.
// Passes may rely on value shapes and constants filled in by shape specialization.
#pragma once
#include "tessera/graph.h"

namespace tessera {

// Identity and inference-mode Dropout nodes are bypassed (their readers read the input).
int remove_identity_nodes(Graph& graph);
// Conv/Gemm followed by BatchNormalization with constant parameters: the BN is folded into
// the weights and bias.
int fold_batchnorm(Graph& graph);
// Conv + Add(residual of the same shape): the add moves into the convolution's epilogue.
int fuse_residual_add(Graph& graph);
// Conv/Gemm/MatMul followed by a pointwise activation: the activation becomes the epilogue.
int fuse_activation(Graph& graph);

// MatMul(Q, K^T) [-> scale] [-> mask] -> Softmax -> MatMul(V) becomes one tessera.Attention node,
// with the head split/merge Transposes around it absorbed into its operand layouts.
int fuse_attention(Graph& graph);

// The element-wise GELU subgraphs (erf and tanh forms) become one Gelu node.
int fuse_gelu(Graph& graph);
// The decomposed layer normalization (ReduceMean, Sub, Pow, Sqrt, Div, Mul, Add) becomes one
// LayerNormalization node.
int fuse_layer_norm(Graph& graph);
// LayerNormalization(a + b) becomes tessera.AddLayerNorm (which also writes a + b if it is read).
int fuse_add_layer_norm(Graph& graph);
// MatMul + Add(constant bias over the last axis) becomes MatMul with a bias input (epilogue).
int fuse_matmul_bias(Graph& graph);
// MatMuls reading the same input with constant weights (Q, K, V projections) become one MatMul
// over the concatenated weights and a Split.
int merge_parallel_matmuls(Graph& graph);

// QDQ-quantized convolutions, residual adds and pools become integer operators on u8 NHWC
// activations (tessera.Int8Conv ...), with layout changes only at the region's edges.
int lower_qdq_to_int8(Graph& graph);

// A CNN's activations to channels-last between its first convolution and its global pooling
// (tessera.ConvNhwc, MaxPoolNhwc, GlobalAveragePoolNhwc; Relu and Add as they are), when every
// 2-D convolution has a channels-last kernel. Not in run_graph_passes: SessionOptions asks for it.
int convert_to_channels_last(Graph& graph);

struct PassReport {
  int int8_lowered = 0;
  int identities_removed = 0, batchnorms_folded = 0, residuals_fused = 0, activations_fused = 0;
  int attentions_fused = 0, gelus_fused = 0, layer_norms_fused = 0, add_layer_norms_fused = 0;
  int matmul_biases_fused = 0, matmuls_merged = 0;
};
PassReport run_graph_passes(Graph& graph);

}  // namespace tessera
