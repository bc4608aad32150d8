// Placement of buffers with known lifetimes into one arena: a few greedy orders and fits are
// tried and the smallest arena wins, since no single heuristic is best on every graph.
#include "graph/memory_planner.h"

#include <algorithm>
#include <numeric>

#include "tessera/error.h"

namespace tessera {

namespace {
constexpr size_t kAlignment = 64;
size_t align_up(size_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

// One buffer of the arena: a request, or the requests that share their bytes.
struct Buffer {
  size_t bytes = 0;          // aligned, at least kAlignment
  size_t request_bytes = 0;  // largest unaligned request, for ordering as the requests ask
  int first_step = 0, last_step = 0;
};

bool live_together(const Buffer& a, const Buffer& b) {
  return a.first_step <= b.last_step && b.first_step <= a.last_step;
}

enum class Fit { lowest_offset, smallest_gap };

// Places the buffers one by one in `order`, each where `fit` says among the bytes not used by
// already placed buffers of overlapping lifetime. Returns the arena size.
size_t place(const std::vector<Buffer>& buffers, const std::vector<size_t>& order, Fit fit,
             std::vector<size_t>& offsets) {
  offsets.assign(buffers.size(), 0);
  std::vector<size_t> placed;
  std::vector<std::pair<size_t, size_t>> taken;  // [begin, end) of conflicting placed buffers
  size_t arena = 0;
  for (size_t b : order) {
    taken.clear();
    for (size_t p : placed)
      if (live_together(buffers[p], buffers[b])) taken.emplace_back(offsets[p], offsets[p] + buffers[p].bytes);
    std::sort(taken.begin(), taken.end());
    const size_t size = buffers[b].bytes;
    size_t chosen = SIZE_MAX, chosen_gap = SIZE_MAX;
    size_t gap_begin = 0;  // lowest byte above every conflicting buffer seen so far
    for (const auto& [begin, end] : taken) {
      if (begin >= gap_begin + size) {
        size_t gap = begin - gap_begin;
        if (fit == Fit::lowest_offset) {
          chosen = gap_begin;
          break;
        }
        if (gap < chosen_gap) {
          chosen_gap = gap;
          chosen = gap_begin;
        }
      }
      gap_begin = std::max(gap_begin, end);
    }
    if (chosen == SIZE_MAX) chosen = gap_begin;  // above everything alive at the same time
    offsets[b] = chosen;
    arena = std::max(arena, chosen + size);
    placed.push_back(b);
  }
  return arena;
}

// Union-find root of request r over same_buffer_as links.
size_t root_of(std::vector<size_t>& parent, size_t r) {
  while (parent[r] != r) r = parent[r] = parent[parent[r]];
  return r;
}
}  // namespace

MemoryPlan plan_memory(const std::vector<BufferRequest>& requests) {
  MemoryPlan plan;
  plan.offsets.assign(requests.size(), 0);
  if (requests.empty()) return plan;

  // Requests that share bytes become one buffer.
  std::vector<size_t> parent(requests.size());
  std::iota(parent.begin(), parent.end(), 0);
  for (size_t r = 0; r < requests.size(); ++r) {
    int other = requests[r].same_buffer_as;
    if (other < 0) continue;
    TESSERA_CHECK(size_t(other) < requests.size() && size_t(other) != r,
                  "memory plan: request " + std::to_string(r) + " shares the buffer of invalid request " +
                      std::to_string(other));
    parent[root_of(parent, r)] = root_of(parent, size_t(other));
  }
  std::vector<size_t> buffer_of(requests.size());
  std::vector<Buffer> buffers;
  std::vector<size_t> buffer_of_root(requests.size(), SIZE_MAX);
  for (size_t r = 0; r < requests.size(); ++r) {
    const BufferRequest& req = requests[r];
    TESSERA_CHECK(req.first_step <= req.last_step, "memory plan: request " + std::to_string(r) +
                                                       " is read before it is written");
    size_t root = root_of(parent, r);
    if (buffer_of_root[root] == SIZE_MAX) {
      buffer_of_root[root] = buffers.size();
      buffers.push_back(Buffer{0, 0, req.first_step, req.last_step});
    }
    Buffer& buffer = buffers[buffer_of_root[root]];
    buffer.bytes = std::max(buffer.bytes, align_up(std::max<size_t>(req.bytes, 1)));
    buffer.request_bytes = std::max(buffer.request_bytes, req.bytes);
    buffer.first_step = std::min(buffer.first_step, req.first_step);
    buffer.last_step = std::max(buffer.last_step, req.last_step);
    buffer_of[r] = buffer_of_root[root];
    plan.naive_bytes += align_up(std::max<size_t>(req.bytes, 1));
  }

  // The bytes live at each step, from the change at each buffer's first and after its last step.
  int steps = 0;
  for (const Buffer& b : buffers) steps = std::max(steps, b.last_step + 1);
  int first = 0;
  for (const Buffer& b : buffers) first = std::min(first, b.first_step);
  std::vector<long long> change(size_t(steps - first + 1), 0);
  for (const Buffer& b : buffers) {
    change[size_t(b.first_step - first)] += (long long)b.bytes;
    change[size_t(b.last_step + 1 - first)] -= (long long)b.bytes;
  }
  long long live = 0;
  for (long long c : change) {
    live += c;
    plan.live_bytes_lower_bound = std::max(plan.live_bytes_lower_bound, size_t(live));
  }

  // Orders to try, each a stable sort so that equal keys keep the requests' order.
  auto sorted = [&](auto before) {
    std::vector<size_t> order(buffers.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), before);
    return order;
  };
  auto lifetime = [&](size_t b) { return size_t(buffers[b].last_step - buffers[b].first_step + 1); };
  std::vector<std::vector<size_t>> orders = {
      sorted([&](size_t a, size_t b) { return buffers[a].request_bytes > buffers[b].request_bytes; }),
      sorted([&](size_t a, size_t b) { return buffers[a].bytes * lifetime(a) > buffers[b].bytes * lifetime(b); }),
      sorted([&](size_t a, size_t b) {
        if (buffers[a].first_step != buffers[b].first_step) return buffers[a].first_step < buffers[b].first_step;
        return buffers[a].bytes > buffers[b].bytes;
      }),
  };
  std::vector<size_t> offsets, best_offsets;
  size_t best_arena = SIZE_MAX;
  for (const auto& order : orders) {
    for (Fit fit : {Fit::lowest_offset, Fit::smallest_gap}) {
      size_t arena = place(buffers, order, fit, offsets);
      if (arena < best_arena) {
        best_arena = arena;
        best_offsets = offsets;
      }
      if (best_arena == plan.live_bytes_lower_bound) break;
    }
    if (best_arena == plan.live_bytes_lower_bound) break;
  }
  plan.arena_bytes = best_arena;
  for (size_t r = 0; r < requests.size(); ++r) plan.offsets[r] = best_offsets[buffer_of[r]];
  return plan;
}

}  // namespace tessera
