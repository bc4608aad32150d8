// Graph rewrite of the sparse compression method: prunes Conv/Gemm/MatMul weights (magnitude per
// layer or global, or N:M) and replaces layers by tessera.SparseConv / tessera.SparseMatMul nodes.
#pragma once
#include <string>
#include <vector>

#include "tessera/graph.h"

namespace tessera {

// Node types and attributes of the compressed form. Inputs of both nodes:
//   0 the activations; 1 values (f32); 2 indices: column per value (i32, csr) or offset inside the
//   group of m (u8, n_of_m); 3 row offsets (i64 [outputs + 1], csr only; absent for n_of_m);
//   4 bias per output (optional); SparseConv: a residual input named by tessera.residual_input.
// The weights are the [outputs, reduction] matrix: Conv's W [C_out, C_in*kh*kw], MatMul's B^T.
constexpr const char* kSparseConvOp = "SparseConv";
constexpr const char* kSparseMatMulOp = "SparseMatMul";
constexpr const char* kSparseFormatAttribute = "format";  // "csr" or "n_of_m" (with ints n, m)
constexpr const char* kSparseFormatCsr = "csr";
constexpr const char* kSparseFormatNOfM = "n_of_m";
// The dense weight's shape: Conv's [C_out, C_in, kh, kw], MatMul's B [K, N].
constexpr const char* kSparseWeightShapeAttribute = "weight_shape";

struct SparsityOptions {
  enum class Method {
    magnitude,         // each layer to `sparsity`
    global_magnitude,  // one magnitude threshold over all layers, `sparsity` of all their weights
    n_of_m,            // n of every m along the reduction axis
  };
  Method method = Method::magnitude;
  double sparsity = 0.5;
  int n = 2, m = 4;
  // Which layers get a sparse kernel: `automatic` only where the benchmarks found it faster than
  // the dense GEMM (see sparse_kernel_pays_off), `always`, or `never` (weights pruned, kernels dense).
  enum class Kernels { automatic, always, never };
  Kernels kernels = Kernels::automatic;
  // Layers with fewer weights than this are neither pruned nor rewritten.
  int64_t min_weights = 0;
};

struct SparseLayerReport {
  std::string node, op_type;
  std::vector<int64_t> weight_shape;
  int64_t weights = 0, zeros = 0;
  std::string kernel;  // "csr", "n_of_m" or "dense"
};

struct SparsityReport {
  std::vector<SparseLayerReport> layers;
  int64_t weights = 0, zeros = 0;  // over the pruned layers
};

// Prunes every eligible layer (Conv with group 1 and 1 or 2 spatial dims, Gemm with constant B,
// alpha 1 and transA 0, MatMul with a constant 2-D B), folds BatchNormalization and activations
// into them (the standard graph passes: BN scales rows, so zeros and N:M patterns survive), then
// rewrites the chosen layers into sparse nodes. The graph stays runnable by Session.
SparsityReport apply_sparsity(Graph& graph, const SparsityOptions& options);

// The measured rule (docs/COMPRESSION_SPARSITY.md): on this machine's AVX-512 cores the CSR
// kernel beats the dense GEMM from about 80% sparsity, N:M only when n/m <= 1/4.
bool sparse_kernel_pays_off(bool n_of_m, double density);

}  // namespace tessera
