// Core: thread pool (covers every index once, nests, sleeps when idle), tensors (views,
// strides, clone, cast) and the 16-bit float conversions (against NumPy's).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <thread>
#include <time.h>

#include "tessera/graph.h"
#include "tessera/npy.h"
#include "tessera/tensor.h"
#include "tessera/thread_pool.h"
#include "test_support.h"

using namespace tessera;

namespace {
double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}
}  // namespace

TEST(ThreadPool, ParallelForCoversEveryIndexOnce) {
  ThreadPool pool(4);
  EXPECT_EQ(pool.size(), 4);
  for (int64_t n : {0, 1, 2, 3, 7, 100, 1001}) {
    for (int64_t grain : {1, 5, 64}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_for(n, [&](int64_t begin, int64_t end) {
        EXPECT_LE(0, begin);
        EXPECT_LE(end, n);
        for (int64_t i = begin; i < end; ++i) hits[size_t(i)]++;
      }, grain);
      for (auto& h : hits) EXPECT_EQ(h.load(), 1);
    }
  }
}

TEST(ThreadPool, ManySmallJobsBackToBack) {
  // Jobs follow each other faster than workers go to sleep: every task of every job must run
  // exactly once, and no task of an old job may run against a newer one.
  for (int threads : {2, 3, 4}) {
    ThreadPool pool(threads);
    int64_t expected = 0;
    std::atomic<int64_t> total{0};
    for (int job = 0; job < 20000; ++job) {
      int64_t n = 1 + job % 7;
      expected += n * (job + 1);
      pool.parallel_for(n, [&, job](int64_t b, int64_t e) { total += (e - b) * (job + 1); });
      if (job % 5000 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let workers sleep
    }
    EXPECT_EQ(total.load(), expected) << threads << " threads";
  }
}

TEST(ThreadPool, ExceptionInATaskReachesTheCallerAndThePoolStaysUsable) {
  ThreadPool pool(3);
  for (int thrower : {0, 1, 2}) {  // the caller's task and the workers' tasks
    std::atomic<int> ran{0};
    EXPECT_THROW(pool.run_tasks(3, [&](int t) {
      ran++;
      if (t == thrower) throw Error("task failed");
    }), Error);
    EXPECT_EQ(ran.load(), 3);  // the other tasks still ran before the exception came back
  }
  std::atomic<int64_t> total{0};
  pool.parallel_for(1000, [&](int64_t b, int64_t e) { total += e - b; });
  EXPECT_EQ(total.load(), 1000);
}

TEST(ThreadPool, NestedCallsRunInline) {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  pool.parallel_for(6, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      pool.parallel_for(10, [&](int64_t b2, int64_t e2) { total += e2 - b2; });
  });
  EXPECT_EQ(total.load(), 60);
}

TEST(ThreadPool, IdleWorkersDoNotSpin) {
  ThreadPool pool(4);
  pool.parallel_for(1000, [](int64_t, int64_t) {});  // wake them once
  double before = process_cpu_seconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  double used = process_cpu_seconds() - before;
  // Three spinning workers would burn ~0.9 CPU-seconds here; sleeping ones use almost none.
  EXPECT_LT(used, 0.05) << "idle pool used " << used << " CPU seconds in 0.3 s";
}

// run_pinned (and parallel_for with one chunk per thread): task t always on the same thread (0 on
// the caller), whatever dynamic jobs run between; exceptions reach the caller as with run_tasks.
TEST(ThreadPool, PinnedTasksRunOnTheSameThreadEveryTime) {
  ThreadPool pool(3);
  std::vector<std::thread::id> first(3);
  pool.run_pinned([&](int t) { first[size_t(t)] = std::this_thread::get_id(); });
  EXPECT_EQ(first[0], std::this_thread::get_id());
  EXPECT_NE(first[1], first[0]);
  EXPECT_NE(first[2], first[0]);
  EXPECT_NE(first[1], first[2]);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::thread::id> seen(3);
    std::atomic<int> calls{0};
    pool.run_pinned([&](int t) {
      seen[size_t(t)] = std::this_thread::get_id();
      ++calls;
    });
    ASSERT_EQ(calls.load(), 3);
    ASSERT_EQ(seen, first) << "round " << round;
    std::atomic<int64_t> sum{0};
    pool.parallel_for(1000, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) sum += i;
    });
    ASSERT_EQ(sum.load(), 999 * 1000 / 2);
    // One chunk per thread: parallel_for places them as run_pinned does.
    std::vector<std::thread::id> chunk_thread(3);
    pool.parallel_for(3, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) chunk_thread[size_t(i)] = std::this_thread::get_id();
    });
    ASSERT_EQ(chunk_thread, first) << "round " << round;
    pool.run_tasks(5, [](int) {});
    if (round % 50 == 49) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let the workers sleep
  }
  EXPECT_THROW(pool.run_pinned([&](int t) {
    if (t == 2) throw std::runtime_error("task 2");
  }),
               std::runtime_error);
  int ran = 0;
  pool.run_pinned([&](int t) {
    if (t == 0) ++ran;
  });
  EXPECT_EQ(ran, 1);
}

TEST(ThreadPool, DefaultUsesAllCores) {
  ThreadPool pool;
  EXPECT_EQ(pool.size(), ThreadPool::hardware_threads());
}

TEST(Tensor, StorageIsAlignedAndZeroed) {
  for (int64_t n : {1, 3, 17, 1000}) {
    Tensor t(DType::f32, {n});
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % kTensorAlignment, 0u);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(t.data<float>()[i], 0.f);
  }
}

TEST(Tensor, StridedViewCloneAndReshape) {
  Tensor t(DType::i32, {3, 4});
  for (int i = 0; i < 12; ++i) t.data<int32_t>()[i] = i;
  EXPECT_EQ(t.strides(), (Shape{4, 1}));
  Tensor transposed = t.strided_view({4, 3}, {1, 4});
  EXPECT_FALSE(transposed.is_contiguous());
  Tensor copy = transposed.clone();
  ASSERT_TRUE(copy.is_contiguous());
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(copy.data<int32_t>()[r * 3 + c], c * 4 + r);
  Tensor flat = t.reshaped({12});
  EXPECT_EQ(flat.raw_data(), t.raw_data());
  EXPECT_THROW(t.reshaped({5}), Error);
  EXPECT_THROW(Tensor(DType::f32, {-1}), Error);
  EXPECT_THROW(Tensor(DType::f32, {int64_t(1) << 40, int64_t(1) << 40}), Error);
  // Zero-size with huge other dims (found by the .npy fuzzer): no overflow, no allocation.
  Tensor empty(DType::f32, {int64_t(1) << 40, 0, int64_t(1) << 40, int64_t(1) << 40});
  EXPECT_EQ(empty.numel(), 0);
}

TEST(Tensor, CastsBetweenEveryDtype) {
  const std::vector<DType> all = {DType::f32, DType::f16, DType::bf16, DType::i8,
                                  DType::u8,  DType::i32, DType::i64,  DType::boolean};
  Tensor source(DType::f32, {5});
  float values[5] = {0.f, 1.f, 2.f, 3.f, 100.f};
  std::copy(values, values + 5, source.data<float>());
  for (DType d : all) {
    Tensor there = source.cast(d);
    EXPECT_EQ(there.dtype(), d);
    Tensor back = there.cast(DType::f32);
    for (int i = 0; i < 5; ++i) {
      float expected = d == DType::boolean ? (values[i] != 0.f ? 1.f : 0.f) : values[i];
      EXPECT_EQ(back.data<float>()[i], expected) << dtype_name(d) << " element " << i;
    }
  }
}

TEST(Tensor, FloatToIntegerCastsSaturate) {
  Tensor t(DType::f32, {5});
  float values[5] = {NAN, INFINITY, -INFINITY, 1e30f, -3.7f};
  std::copy(values, values + 5, t.data<float>());
  Tensor i32 = t.cast(DType::i32), i8 = t.cast(DType::i8), i64 = t.cast(DType::i64);
  EXPECT_EQ(i32.data<int32_t>()[0], 0);
  EXPECT_EQ(i32.data<int32_t>()[1], INT32_MAX);
  EXPECT_EQ(i32.data<int32_t>()[2], INT32_MIN);
  EXPECT_EQ(i8.data<int8_t>()[3], 127);
  EXPECT_EQ(i8.data<int8_t>()[4], -3);
  EXPECT_EQ(i64.data<int64_t>()[1], INT64_MAX);
  EXPECT_EQ(t.to_int64_vector()[3], INT64_MAX);
}

TEST(Attributes, WrongTypesAreErrors) {
  Attributes a;
  a.set_ints("axes", {1, 2});
  a.set_int("axis", 3);
  a.set_string("mode", "linear");
  EXPECT_THROW(a.get_int("axes", 0), Error);
  EXPECT_THROW(a.get_int("mode", 0), Error);
  EXPECT_THROW(a.get_ints("mode"), Error);
  EXPECT_EQ(a.get_ints("axis"), (std::vector<int64_t>{3}));
  EXPECT_EQ(a.get_int("missing", 7), 7);
}

TEST(Float16, EveryHalfRoundTripsThroughFloat) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    float f = f16_to_f32(uint16_t(bits));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_f16(f), bits) << "half bits " << bits;
  }
}

TEST(Float16, MatchesNumpyRounding) {
  // NumPy converts float32 -> float16 with round-to-nearest-even; compare on values that
  // exercise normals, subnormals, halfway cases, overflow and underflow.
  if (std::system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) GTEST_SKIP() << "no numpy";
  std::string dir = (std::filesystem::temp_directory_path() / "tessera_f16_test").string();
  std::filesystem::create_directories(dir);
  std::string script =
      "/usr/bin/python3 -c \"import numpy as np; r=np.random.default_rng(3); "
      "x=np.concatenate([r.standard_normal(20000)*np.float32(10)**r.integers(-9,6,20000), "
      "(np.arange(-70000,70000,7)/np.float32(1)), np.array([6.1e-5,5.96e-8,2.98e-8,65504,65520,65519.99,1e-10,-0.0])]).astype(np.float32); "
      "np.save('" + dir + "/x.npy', x); np.save('" + dir + "/h.npy', x.astype(np.float16).view(np.uint16).astype(np.int32))\"";
  ASSERT_EQ(std::system(script.c_str()), 0);
  Tensor x = read_npy(dir + "/x.npy"), h = read_npy(dir + "/h.npy");
  int mismatches = 0;
  for (int64_t i = 0; i < x.numel(); ++i)
    if (f32_to_f16(x.data<float>()[i]) != uint16_t(h.data<int32_t>()[i]) && ++mismatches < 5)
      ADD_FAILURE() << "value " << x.data<float>()[i] << ": tessera " << f32_to_f16(x.data<float>()[i])
                    << " numpy " << h.data<int32_t>()[i];
  EXPECT_EQ(mismatches, 0);
  std::filesystem::remove_all(dir);
}

TEST(BFloat16, RoundsToNearestEven) {
  // 1 + 2^-8 is halfway between two bf16 values: ties to even (1.0); a bit more rounds up.
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.f + std::ldexp(1.f, -8))), 1.f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.f + std::ldexp(1.f, -8) + std::ldexp(1.f, -20))), 1.f + std::ldexp(1.f, -7));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}
