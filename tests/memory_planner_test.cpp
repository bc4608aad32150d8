// The memory planner never lets two simultaneously live buffers overlap, and reuses memory.
#include <gtest/gtest.h>

#include <random>

#include "graph/memory_planner.h"

using namespace tessera;

TEST(MemoryPlanner, ChainReusesBuffers) {
  // A chain a->b->c->d: each buffer lives two steps, so two slots suffice.
  std::vector<BufferRequest> requests = {{1000, 0, 1}, {1000, 1, 2}, {1000, 2, 3}, {1000, 3, 4}};
  MemoryPlan plan = plan_memory(requests);
  EXPECT_EQ(plan.arena_bytes, 2 * 1024u);
  EXPECT_EQ(plan.naive_bytes, 4 * 1024u);
}

TEST(MemoryPlanner, RandomLifetimesNeverOverlap) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<BufferRequest> requests(size_t(1 + rng() % 40));
    for (auto& r : requests) {
      r.bytes = 1 + rng() % 5000;
      r.first_step = int(rng() % 30);
      r.last_step = r.first_step + int(rng() % 10);
    }
    MemoryPlan plan = plan_memory(requests);
    size_t peak_live = 0;
    for (int step = 0; step < 40; ++step) {
      size_t live = 0;
      for (auto& r : requests)
        if (r.first_step <= step && step <= r.last_step) live += (r.bytes + 63) / 64 * 64;
      peak_live = std::max(peak_live, live);
    }
    EXPECT_GE(plan.arena_bytes, peak_live);  // a lower bound any planner must meet
    EXPECT_LE(plan.arena_bytes, plan.naive_bytes);
    for (size_t i = 0; i < requests.size(); ++i) {
      EXPECT_EQ(plan.offsets[i] % 64, 0u);
      EXPECT_LE(plan.offsets[i] + requests[i].bytes, plan.arena_bytes);
      for (size_t j = i + 1; j < requests.size(); ++j) {
        bool live_together = requests[i].first_step <= requests[j].last_step &&
                             requests[j].first_step <= requests[i].last_step;
        if (!live_together) continue;
        bool disjoint = plan.offsets[i] + requests[i].bytes <= plan.offsets[j] ||
                        plan.offsets[j] + requests[j].bytes <= plan.offsets[i];
        EXPECT_TRUE(disjoint) << "buffers " << i << " and " << j << " overlap";
      }
    }
  }
}
