// The memory planner never lets two simultaneously live buffers overlap, reuses memory, shares
// bytes where asked, never does worse than plain greedy-by-size, and its arena is never below
// the most bytes live at one step (checked against plain reference code written here).
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "graph/memory_planner.h"
#include "tessera/error.h"

using namespace tessera;

namespace {

size_t aligned(size_t bytes) { return (std::max<size_t>(bytes, 1) + 63) / 64 * 64; }

// Requests that share bytes, by a plain fixed-point merge of same_buffer_as links.
std::vector<int> group_of_requests(const std::vector<BufferRequest>& requests) {
  std::vector<int> group(requests.size());
  std::iota(group.begin(), group.end(), 0);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < requests.size(); ++r) {
      int other = requests[r].same_buffer_as;
      if (other < 0 || group[r] == group[size_t(other)]) continue;
      int from = std::max(group[r], group[size_t(other)]), to = std::min(group[r], group[size_t(other)]);
      for (int& g : group)
        if (g == from) g = to;
      changed = true;
    }
  }
  return group;
}

struct GroupSpan {
  size_t bytes = 0;
  int first_step = 1 << 30, last_step = -1;
};

// Each group's bytes (the largest member's, aligned) and lifetime (union of its members').
std::vector<GroupSpan> group_spans(const std::vector<BufferRequest>& requests, const std::vector<int>& group) {
  std::vector<GroupSpan> spans(requests.size());
  for (size_t r = 0; r < requests.size(); ++r) {
    GroupSpan& s = spans[size_t(group[r])];
    s.bytes = std::max(s.bytes, aligned(requests[r].bytes));
    s.first_step = std::min(s.first_step, requests[r].first_step);
    s.last_step = std::max(s.last_step, requests[r].last_step);
  }
  return spans;
}

// The most bytes live at one step, step by step.
size_t most_live_bytes(const std::vector<BufferRequest>& requests) {
  std::vector<int> group = group_of_requests(requests);
  std::vector<GroupSpan> spans = group_spans(requests, group);
  int last = 0;
  for (const auto& r : requests) last = std::max(last, r.last_step);
  size_t most = 0;
  for (int step = 0; step <= last; ++step) {
    size_t live = 0;
    for (const GroupSpan& s : spans)
      if (s.first_step <= step && step <= s.last_step) live += s.bytes;
    most = std::max(most, live);
  }
  return most;
}

// Every property a plan must have, checked step by step without the planner's own structures.
void expect_valid_plan(const std::vector<BufferRequest>& requests, const MemoryPlan& plan) {
  ASSERT_EQ(plan.offsets.size(), requests.size());
  std::vector<int> group = group_of_requests(requests);
  std::vector<GroupSpan> spans = group_spans(requests, group);
  size_t naive = 0;
  for (const auto& r : requests) naive += aligned(r.bytes);
  EXPECT_EQ(plan.naive_bytes, naive);
  EXPECT_EQ(plan.live_bytes_lower_bound, most_live_bytes(requests));
  EXPECT_GE(plan.arena_bytes, plan.live_bytes_lower_bound);  // a lower bound any planner must meet
  EXPECT_LE(plan.arena_bytes, naive);
  int last = 0;
  for (const auto& r : requests) last = std::max(last, r.last_step);
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(plan.offsets[i] % 64, 0u);
    EXPECT_LE(plan.offsets[i] + aligned(requests[i].bytes), plan.arena_bytes);
    if (group[i] != int(i)) {
      EXPECT_EQ(plan.offsets[i], plan.offsets[size_t(group[i])]) << "request " << i;
    }
  }
  for (int step = 0; step <= last; ++step) {
    // The buffers live now: [begin, end) per group.
    std::vector<std::pair<size_t, size_t>> live;
    for (size_t g = 0; g < spans.size(); ++g)
      if (spans[g].first_step <= step && step <= spans[g].last_step)
        live.emplace_back(plan.offsets[g], plan.offsets[g] + spans[g].bytes);
    std::sort(live.begin(), live.end());
    for (size_t k = 1; k < live.size(); ++k)
      EXPECT_LE(live[k - 1].second, live[k].first) << "two buffers overlap at step " << step;
  }
}

// Greedy by size: largest first, each at the lowest offset free over its lifetime (the planner
// before it tried other orders and fits), as plainly as possible.
size_t greedy_by_size_arena(const std::vector<BufferRequest>& requests) {
  std::vector<size_t> order(requests.size()), offsets(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return requests[a].bytes > requests[b].bytes; });
  std::vector<size_t> placed;
  size_t arena = 0;
  for (size_t r : order) {
    size_t size = aligned(requests[r].bytes);
    for (size_t offset = 0;; offset += 64) {
      bool free = true;
      for (size_t p : placed) {
        bool together = requests[p].first_step <= requests[r].last_step && requests[r].first_step <= requests[p].last_step;
        bool overlap = offset < offsets[p] + aligned(requests[p].bytes) && offsets[p] < offset + size;
        free = free && !(together && overlap);
      }
      if (free) {
        offsets[r] = offset;
        break;
      }
    }
    arena = std::max(arena, offsets[r] + size);
    placed.push_back(r);
  }
  return arena;
}

std::vector<BufferRequest> random_requests(std::mt19937& rng, bool share) {
  std::vector<BufferRequest> requests(size_t(1 + rng() % 40));
  for (size_t i = 0; i < requests.size(); ++i) {
    BufferRequest& r = requests[i];
    r.bytes = rng() % 8 == 0 ? 0 : 1 + rng() % 5000;
    r.first_step = int(rng() % 30);
    r.last_step = r.first_step + int(rng() % 10);
    // As the executor asks: a byte copy of an earlier buffer, made while that one is live.
    if (share && i > 0 && rng() % 3 == 0) {
      size_t source = rng() % i;
      r.same_buffer_as = int(source);
      r.bytes = requests[source].bytes;
      r.first_step = requests[source].first_step + int(rng() % size_t(requests[source].last_step - requests[source].first_step + 1));
      r.last_step = r.first_step + int(rng() % 10);
    }
  }
  return requests;
}

}  // namespace

TEST(MemoryPlanner, ChainReusesBuffers) {
  // A chain a->b->c->d: each buffer lives two steps, so two slots suffice.
  std::vector<BufferRequest> requests = {{1000, 0, 1}, {1000, 1, 2}, {1000, 2, 3}, {1000, 3, 4}};
  MemoryPlan plan = plan_memory(requests);
  EXPECT_EQ(plan.arena_bytes, 2 * 1024u);
  EXPECT_EQ(plan.naive_bytes, 4 * 1024u);
  EXPECT_EQ(plan.live_bytes_lower_bound, 2 * 1024u);
}

TEST(MemoryPlanner, EmptyPlan) {
  MemoryPlan plan = plan_memory({});
  EXPECT_EQ(plan.arena_bytes, 0u);
  EXPECT_TRUE(plan.offsets.empty());
}

TEST(MemoryPlanner, SharedBufferHoldsBothTensors) {
  // a (steps 0-1) is reshaped at step 1 into b (1-3) while step 1 also makes c (1-2) from a:
  // with b in a's bytes two slots suffice, where three separate buffers would be live at step 1.
  std::vector<BufferRequest> separate = {{1024, 0, 1}, {1024, 1, 3}, {1024, 1, 2}};
  std::vector<BufferRequest> shared = separate;
  shared[1].same_buffer_as = 0;
  EXPECT_EQ(plan_memory(separate).arena_bytes, 3 * 1024u);
  MemoryPlan plan = plan_memory(shared);
  EXPECT_EQ(plan.offsets[0], plan.offsets[1]);
  EXPECT_EQ(plan.arena_bytes, 2 * 1024u);
  EXPECT_EQ(plan.naive_bytes, 3 * 1024u);
  expect_valid_plan(shared, plan);
}

TEST(MemoryPlanner, BeatsLargestFirstLowestOffsetWhereItLeavesAHole) {
  // Largest first at the lowest offset puts the 192-byte buffer at 0 and the first 128-byte one
  // above the 256-byte one, which leaves only a 64-byte hole for the second 128-byte buffer:
  // 512 bytes. Another order reaches the 384 bytes live at step 4.
  std::vector<BufferRequest> requests = {{128, 4, 6}, {256, 5, 7}, {192, 3, 3}, {128, 2, 4}};
  EXPECT_EQ(greedy_by_size_arena(requests), 512u);
  MemoryPlan plan = plan_memory(requests);
  EXPECT_EQ(plan.arena_bytes, 384u);
  expect_valid_plan(requests, plan);
}

TEST(MemoryPlanner, InvalidSharedBufferIsAnError) {
  EXPECT_THROW(plan_memory({{64, 0, 1, 5}}), Error);
  EXPECT_THROW(plan_memory({{64, 0, 1, 0}}), Error);
  EXPECT_THROW(plan_memory({{64, 2, 1}}), Error);
}

TEST(MemoryPlanner, RandomLifetimesNeverOverlap) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<BufferRequest> requests = random_requests(rng, false);
    MemoryPlan plan = plan_memory(requests);
    expect_valid_plan(requests, plan);
    EXPECT_LE(plan.arena_bytes, greedy_by_size_arena(requests));
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(MemoryPlanner, RandomSharedBuffersNeverOverlap) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<BufferRequest> requests = random_requests(rng, true);
    expect_valid_plan(requests, plan_memory(requests));
    if (::testing::Test::HasFailure()) return;
  }
}
