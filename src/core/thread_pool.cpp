// Thread pool: jobs are published by a generation counter; tasks are claimed lock-free. Workers
// spin for a short while after a job, then block on a condition variable (no idle CPU use).
#include "tessera/thread_pool.h"

#include <algorithm>
#include <chrono>

#include "core/cpu_relax.h"

namespace tessera {

namespace {
thread_local bool inside_parallel_region = false;
// How long an idle worker (or a waiting caller) spins before it sleeps: long enough to cover the
// gap between two operators of a model, short enough that an idle pool costs nothing.
constexpr auto kSpinDuration = std::chrono::microseconds(50);
// A task index no job reaches: claims fail while the caller sets up the next job.
constexpr uint64_t kClaimsClosed = 0x7fffffffu;

// Spins until done() or the spin budget runs out; true when done() became true.
template <typename Predicate>
bool spin_until(Predicate done) {
  auto deadline = std::chrono::steady_clock::now() + kSpinDuration;
  for (int i = 0;; ++i) {
    if (done()) return true;
    TESSERA_CPU_RELAX();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > deadline) return done();
  }
}
}  // namespace

int ThreadPool::hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : int(n);
}

ThreadPool::ThreadPool(int threads) {
  thread_count_ = threads <= 0 ? hardware_threads() : threads;
  pinned_claims_ = std::make_unique<std::atomic<uint32_t>[]>(size_t(thread_count_));
  for (int i = 0; i < thread_count_; ++i) pinned_claims_[size_t(i)].store(0);
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

void ThreadPool::run_claimed_tasks(uint32_t generation, int self) {
  uint64_t state = claim_state_.load();
  for (;;) {
    if (uint32_t(state >> 32) != generation) return;  // a newer job: nothing of ours is left
    // Read the job only now, and claim with a CAS on the state just read: the caller closes the
    // claim state before it rewrites the job, so a successful claim proves these reads belong
    // to `generation` (all accesses are sequentially consistent).
    const std::function<void(int)>* job = job_.load();
    const int tasks = job_tasks_.load();
    const bool pinned = job_pinned_.load();
    uint32_t index = uint32_t(state);
    if (index >= uint32_t(tasks)) return;
    if (pinned && (self >= tasks || pinned_claims_[size_t(self)].load() == generation)) return;
    if (!claim_state_.compare_exchange_weak(state, state + 1)) continue;
    // Pinned: the claim only counts; this thread runs its own task, once.
    if (pinned) {
      pinned_claims_[size_t(self)].store(generation);
      index = uint32_t(self);
    }
    // A throwing task still counts as finished (so the caller never waits forever or returns
    // while tasks run); its exception goes to the caller.
    bool was_inside = inside_parallel_region;
    inside_parallel_region = true;
    try {
      (*job)(int(index));
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!first_error_) first_error_ = std::current_exception();
    }
    inside_parallel_region = was_inside;
    if (tasks_finished_.fetch_add(1) + 1 == tasks) {
      std::lock_guard<std::mutex> lock(mutex_);
      work_done_.notify_all();
    }
    if (pinned) return;
    state = claim_state_.load();
  }
}

void ThreadPool::worker_loop(int self) {
  uint32_t seen = 0;
  for (;;) {
    bool woke = spin_until([&] { return generation_.load() != seen || stopping_.load(); });
    if (!woke) {
      std::unique_lock<std::mutex> lock(mutex_);
      ++sleeping_workers_;
      work_ready_.wait(lock, [&] { return generation_.load() != seen || stopping_.load(); });
      --sleeping_workers_;
    }
    if (stopping_.load()) return;
    seen = generation_.load();
    run_claimed_tasks(seen, self);
  }
}

void ThreadPool::run_tasks(int tasks, const std::function<void(int)>& fn) { run_job(tasks, false, fn); }

void ThreadPool::run_pinned(const std::function<void(int)>& fn) { run_job(thread_count_, true, fn); }

void ThreadPool::run_job(int tasks, bool pinned, const std::function<void(int)>& fn) {
  if (tasks <= 0) return;
  if (tasks == 1 || workers_.empty() || inside_parallel_region) {
    for (int t = 0; t < tasks; ++t) fn(t);
    return;
  }
  std::lock_guard<std::mutex> run_lock(run_mutex_);
  uint32_t generation = generation_.load() + 1;
  // Close claiming before the job is rewritten (a late worker of the last job may still try to
  // claim), then open it for the new job.
  claim_state_ = (uint64_t(generation) << 32) | kClaimsClosed;
  job_ = &fn;
  job_tasks_ = tasks;
  job_pinned_ = pinned;
  tasks_finished_ = 0;
  first_error_ = nullptr;
  claim_state_ = uint64_t(generation) << 32;
  generation_ = generation;  // publishes the job (sequentially consistent with the sleeper count)
  if (sleeping_workers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    work_ready_.notify_all();
  }
  run_claimed_tasks(generation, 0);  // the caller works too
  if (!spin_until([&] { return tasks_finished_.load() == tasks; })) {
    std::unique_lock<std::mutex> lock(mutex_);
    work_done_.wait(lock, [&] { return tasks_finished_.load() == tasks; });
  }
  std::exception_ptr error;
  {
    std::lock_guard<std::mutex> lock(error_mutex_);
    std::swap(error, first_error_);
  }
  if (error) std::rethrow_exception(error);
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
  auto chunk = [&](int t) {
    int64_t begin = n * t / chunks;
    int64_t end = n * (t + 1) / chunks;
    if (begin < end) fn(begin, end);
  };
  // One chunk per thread: chunk t on thread t, so that operators splitting the same data the
  // same way read what their own core wrote (see run_pinned).
  if (chunks == thread_count_)
    run_pinned(chunk);
  else
    run_tasks(chunks, chunk);
}

}  // namespace tessera
