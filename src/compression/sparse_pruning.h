// Pruning for the sparse compression method: magnitude pruning (per layer or global) to a target
// sparsity, N:M pruning along the reduction axis, and k-winners-take-all activation sparsity.
#pragma once
#include <cstdint>
#include <vector>

namespace tessera::sparse {

// Tie rule shared by every selection here: of two candidates with the same key (magnitude for
// weights, value for k-WTA) the one with the lower flat index is kept. It makes the result a
// function of the values alone, reproducible by any other implementation (the PyTorch reference
// uses a stable sort on (-key, index)).

// How many of `count` elements a target sparsity removes: round(sparsity * count), half up.
int64_t pruned_count(int64_t count, double sparsity);

// Zeroes the pruned_count(n, sparsity) smallest-magnitude elements of w[0, n) (ties above).
// sparsity must lie in [0, 1]. Returns the number of elements set to zero by this call.
int64_t magnitude_prune(float* weights, int64_t count, double sparsity);

// One threshold over several tensors: the pruned_count(total, sparsity) smallest magnitudes of
// the concatenation (in the order given, ties by position in it) are zeroed; layers keep
// different sparsities. Returns the number zeroed in each layer.
struct WeightSpan {
  float* data = nullptr;
  int64_t count = 0;
};
std::vector<int64_t> global_magnitude_prune(const std::vector<WeightSpan>& layers, double sparsity);

// N:M structured pruning of a [rows, reduction] row-major matrix along the reduction axis: in each
// group of m consecutive elements of a row at most n are non-zero, the n largest magnitudes.
// A last group shorter than m (reduction % m != 0) keeps min(n, its length). 1 <= n <= m <= 255.
void prune_n_of_m(float* weights, int64_t rows, int64_t reduction, int n, int m);
// True when every group of m along the reduction axis holds at most n non-zeros.
bool satisfies_n_of_m(const float* weights, int64_t rows, int64_t reduction, int n, int m);

// Complementary pruning (Numenta): rows are taken in sets of `set_size` consecutive rows (the
// last set may be shorter); in each set, every reduction position keeps its weight in exactly
// one row, the one with the largest magnitude there (ties: lower row). The rows of a set then
// have disjoint non-zero positions and can be overlaid into one dense row.
void prune_complementary(float* weights, int64_t rows, int64_t reduction, int set_size);

// k-winners-take-all on x[batch, features]: per sample, the k largest values (ties: lower index)
// are kept and the rest set to zero in y (x and y may alias). 0 <= k <= features.
void k_winners_take_all(const float* x, int64_t batch, int64_t features, int64_t k, float* y);
// The same winners as sparse vectors: per sample, k indices (ascending) and their values, at
// [sample * k, sample * k + k).
void k_winners_indices(const float* x, int64_t batch, int64_t features, int64_t k,
                       int32_t* indices, float* values);

}  // namespace tessera::sparse
