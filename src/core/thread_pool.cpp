// Thread pool: workers block on a condition variable between jobs, so an idle pool uses no CPU.
#include "tessera/thread_pool.h"

#include <algorithm>

namespace tessera {

namespace {
thread_local bool inside_parallel_region = false;
}

int ThreadPool::hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : int(n);
}

ThreadPool::ThreadPool(int threads) {
  thread_count_ = threads <= 0 ? hardware_threads() : threads;
  for (int i = 1; i < thread_count_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::worker_loop(int) {
  uint64_t seen_generation = 0;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    work_ready_.wait(lock, [&] { return stopping_ || generation_ != seen_generation; });
    if (stopping_) return;
    seen_generation = generation_;
    while (next_task_ < job_tasks_) {
      int task = next_task_++;
      const auto* job = job_;
      lock.unlock();
      inside_parallel_region = true;
      (*job)(task);
      inside_parallel_region = false;
      lock.lock();
      if (++tasks_finished_ == job_tasks_) work_done_.notify_all();
    }
  }
}

void ThreadPool::run_tasks(int tasks, const std::function<void(int)>& fn) {
  if (tasks <= 0) return;
  if (tasks == 1 || workers_.empty() || inside_parallel_region) {
    for (int t = 0; t < tasks; ++t) fn(t);
    return;
  }
  std::lock_guard<std::mutex> run_lock(run_mutex_);
  std::unique_lock<std::mutex> lock(mutex_);
  job_ = &fn;
  job_tasks_ = tasks;
  next_task_ = 0;
  tasks_finished_ = 0;
  ++generation_;
  work_ready_.notify_all();
  // The caller works too.
  while (next_task_ < job_tasks_) {
    int task = next_task_++;
    lock.unlock();
    inside_parallel_region = true;
    fn(task);
    inside_parallel_region = false;
    lock.lock();
    ++tasks_finished_;
  }
  work_done_.wait(lock, [&] { return tasks_finished_ == job_tasks_; });
  job_ = nullptr;
  job_tasks_ = 0;
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                              int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t max_chunks = (n + grain - 1) / grain;
  int chunks = int(std::min<int64_t>(max_chunks, thread_count_));
  if (chunks <= 1 || inside_parallel_region) {
    fn(0, n);
    return;
  }
  run_tasks(chunks, [&](int t) {
    int64_t begin = n * t / chunks;
    int64_t end = n * (t + 1) / chunks;
    if (begin < end) fn(begin, end);
  });
}

}  // namespace tessera
