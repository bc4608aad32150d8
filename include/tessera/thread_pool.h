// A fixed-size thread pool. Workers sleep on a condition variable when idle (no spinning);
// parallel_for splits [0, n) into contiguous chunks, one per participating thread.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
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
  // Chunks are at least `grain` long. Nested calls run serially on the calling thread.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);
  // Calls fn(task_index) for task_index in [0, tasks) with one task per thread slot.
  void run_tasks(int tasks, const std::function<void(int)>& fn);

  static int hardware_threads();

 private:
  void worker_loop(int worker_index);

  int thread_count_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  const std::function<void(int)>* job_ = nullptr;
  int job_tasks_ = 0;
  int next_task_ = 0;
  int tasks_finished_ = 0;
  uint64_t generation_ = 0;
  bool stopping_ = false;
  std::mutex run_mutex_;  // one parallel region at a time
};

}  // namespace tessera
