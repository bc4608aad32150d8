// Greedy-by-size placement of buffers with known lifetimes into one arena.
#include "graph/memory_planner.h"

#include <algorithm>
#include <numeric>

namespace tessera {

namespace {
constexpr size_t kAlignment = 64;
size_t align_up(size_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }
}  // namespace

MemoryPlan plan_memory(const std::vector<BufferRequest>& requests) {
  MemoryPlan plan;
  plan.offsets.assign(requests.size(), 0);
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return requests[a].bytes > requests[b].bytes; });
  std::vector<size_t> placed;
  for (size_t r : order) {
    const BufferRequest& req = requests[r];
    plan.naive_bytes += align_up(req.bytes);
    // Collect the placed buffers that are alive at the same time, by offset.
    std::vector<size_t> conflicts;
    for (size_t p : placed)
      if (requests[p].first_step <= req.last_step && req.first_step <= requests[p].last_step)
        conflicts.push_back(p);
    std::sort(conflicts.begin(), conflicts.end(),
              [&](size_t a, size_t b) { return plan.offsets[a] < plan.offsets[b]; });
    size_t size = align_up(std::max<size_t>(req.bytes, 1));
    size_t offset = 0;
    for (size_t c : conflicts) {
      size_t c_begin = plan.offsets[c], c_end = c_begin + align_up(std::max<size_t>(requests[c].bytes, 1));
      if (offset + size <= c_begin) break;  // fits in the gap before c
      offset = std::max(offset, c_end);
    }
    plan.offsets[r] = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + size);
    placed.push_back(r);
  }
  return plan;
}

}  // namespace tessera
