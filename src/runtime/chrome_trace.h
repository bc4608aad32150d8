// A step observer that records every executed operator and writes a Chrome trace
// (chrome://tracing / Perfetto "traceEvents" JSON).
#pragma once
#include <chrono>
#include <string>
#include <vector>

#include "tessera/session.h"

namespace tessera {

class ChromeTraceRecorder : public StepObserver {
 public:
  ChromeTraceRecorder();
  void before_step(const StepInfo& step) override;
  void after_step(const StepInfo& step) override;
  // Marks the start of one whole-model run (a separate event row).
  void begin_run(int run_index);
  void end_run();
  void write(const std::string& path) const;
  size_t event_count() const { return events_.size(); }

 private:
  struct Event {
    std::string name, category, args;
    double start_us, duration_us;
    int thread_row;
  };
  double now_us() const;
  std::chrono::steady_clock::time_point origin_;
  double step_start_us_ = 0, run_start_us_ = 0;
  int run_index_ = 0;
  std::vector<Event> events_;
};

}  // namespace tessera
