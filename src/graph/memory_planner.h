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
};

struct MemoryPlan {
  std::vector<size_t> offsets;  // one per request, 64-byte aligned
  size_t arena_bytes = 0;       // peak: the arena size needed
  size_t naive_bytes = 0;       // sum of all requests (no reuse)
};

// Greedy by size (largest first, each placed at the lowest offset that does not collide with
// an already placed buffer of overlapping lifetime), as in TFLite's arena planner.
MemoryPlan plan_memory(const std::vector<BufferRequest>& requests);

}  // namespace tessera
