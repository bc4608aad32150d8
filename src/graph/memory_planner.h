// Static memory planner: places every intermediate tensor in one arena so that tensors whose
// lifetimes (first producing step .. last reading step) overlap never share bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tessera {

struct BufferRequest {
  size_t bytes = 0;
  int first_step = 0;  // step that writes it
  int last_step = 0;   // last step that reads it (inclusive)
  // Index of another request whose bytes this one is (a Reshape's output is its input's bytes
  // under a new shape), or -1. Both get the same offset and the shared buffer lives from the
  // first writer to the last reader of either; it is as large as the larger of the two.
  int same_buffer_as = -1;
};

struct MemoryPlan {
  std::vector<size_t> offsets;  // one per request, 64-byte aligned
  size_t arena_bytes = 0;       // peak: the arena size needed
  size_t naive_bytes = 0;       // sum of all requests (no reuse, no sharing)
  // The most bytes live at any one step: no placement of these buffers can use a smaller arena.
  size_t live_bytes_lower_bound = 0;
};

// Tries a few greedy placements and keeps the one with the smallest arena (stopping early when
// one reaches live_bytes_lower_bound). Each takes buffers in one order (largest first, as in
// TFLite's arena planner; largest size x lifetime first; earliest first) and puts each at either
// the lowest offset free over its lifetime or the smallest free gap that holds it (best fit).
MemoryPlan plan_memory(const std::vector<BufferRequest>& requests);

}  // namespace tessera
