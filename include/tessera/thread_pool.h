// A fixed-size thread pool. Between jobs a worker spins briefly (tens of microseconds, so
// back-to-back operators do not pay a sleep/wake each) and then sleeps on a condition variable:
// an idle pool uses no CPU. parallel_for splits [0, n) into contiguous chunks.
#pragma once
#include <atomic>
#include <condition_variable>
#include <exception>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace tessera {

class ThreadPool {
 public:
  // threads <= 0 means all hardware threads.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return thread_count_; }
  // Calls fn(begin, end) over disjoint chunks covering [0, n); the caller thread takes part.
  // Chunks are at least `grain` long. Nested calls run serially on the calling thread. With one
  // chunk per thread, chunk t runs on thread t (run_pinned); with fewer, they are claimed.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);
  // Calls fn(task_index) for task_index in [0, tasks); tasks are claimed dynamically. If a task
  // throws, the other tasks still run and the first exception is rethrown to the caller.
  void run_tasks(int tasks, const std::function<void(int)>& fn);
  // Calls fn(t) for t in [0, size()) with task t on thread t (0 is the caller, t > 0 the same
  // worker every time): a static schedule, for consecutive operators that split their data the
  // same way, so that each core reads what it wrote itself (a dynamic claim hands the halves to
  // either core, and then half of the reads come from the other core's L2). A slow or sleeping
  // worker is waited for, not replaced.
  void run_pinned(const std::function<void(int)>& fn);

  static int hardware_threads();

 private:
  void worker_loop(int self);
  // Claims and runs tasks of job `generation` until none is left (or a newer job started); of a
  // pinned job only task `self`.
  void run_claimed_tasks(uint32_t generation, int self);
  void run_job(int tasks, bool pinned, const std::function<void(int)>& fn);

  int thread_count_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;  // guards sleeping on the condition variables only
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  // The current job, written by the caller before it publishes the job's generation.
  // Atomic because a late worker may read them while the next job is being set up (its claim
  // then fails, so it never uses what it read).
  std::atomic<const std::function<void(int)>*> job_{nullptr};
  std::atomic<int> job_tasks_{0};
  std::atomic<bool> job_pinned_{false};
  // Per thread, the last generation whose pinned task it claimed (so it runs that task once).
  std::unique_ptr<std::atomic<uint32_t>[]> pinned_claims_;
  std::atomic<uint32_t> generation_{0};
  // (generation << 32) | next task index: a claim succeeds only for the generation it names, so
  // a late worker can never run a task of a newer job with a stale job pointer.
  std::atomic<uint64_t> claim_state_{0};
  std::atomic<int> tasks_finished_{0};
  std::atomic<int> sleeping_workers_{0};
  std::atomic<bool> stopping_{false};
  std::mutex error_mutex_;
  std::exception_ptr first_error_;  // of the current job
  std::mutex run_mutex_;  // one parallel region at a time
};

}  // namespace tessera
