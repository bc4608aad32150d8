// Chrome trace recording: complete ("X") events with microsecond timestamps.
#include "runtime/chrome_trace.h"

#include <fstream>

#include "tessera/error.h"

namespace tessera {

namespace {
std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20) out += ' ';
    else out += c;
  }
  return out;
}
}  // namespace

ChromeTraceRecorder::ChromeTraceRecorder() : origin_(std::chrono::steady_clock::now()) {}

double ChromeTraceRecorder::now_us() const {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - origin_).count();
}

void ChromeTraceRecorder::before_step(const StepInfo&) { step_start_us_ = now_us(); }

void ChromeTraceRecorder::after_step(const StepInfo& step) {
  double end = now_us();
  std::string shapes;
  for (const Tensor* t : step.outputs)
    if (t) shapes += (shapes.empty() ? "" : " ") + shape_to_string(t->shape());
  std::string args = "{\"op\":\"" + json_escape(step.node->op_type) + "\",\"output_shapes\":\"" +
                     shapes + "\",\"flops\":" + std::to_string(step.flops) + ",\"run\":" +
                     std::to_string(run_index_) + "}";
  events_.push_back(Event{step.node->name, step.node->op_type, args, step_start_us_,
                          end - step_start_us_, 1});
}

void ChromeTraceRecorder::begin_run(int run_index) {
  run_index_ = run_index;
  run_start_us_ = now_us();
}

void ChromeTraceRecorder::end_run() {
  double end = now_us();
  events_.push_back(Event{"run " + std::to_string(run_index_), "model", "{}", run_start_us_,
                          end - run_start_us_, 0});
}

void ChromeTraceRecorder::write(const std::string& path) const {
  std::ofstream out(path);
  if (!out) throw Error("cannot write trace file " + path);
  out << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
  out << "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,\"args\":{\"name\":\"model runs\"}},\n";
  out << "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":1,\"args\":{\"name\":\"operators\"}}";
  for (const auto& e : events_) {
    out << ",\n{\"name\":\"" << json_escape(e.name) << "\",\"cat\":\"" << json_escape(e.category)
        << "\",\"ph\":\"X\",\"pid\":1,\"tid\":" << e.thread_row << ",\"ts\":" << e.start_us
        << ",\"dur\":" << e.duration_us << ",\"args\":" << e.args << "}";
  }
  out << "\n]}\n";
  if (!out) throw Error("failed writing trace file " + path);
}

}  // namespace tessera
