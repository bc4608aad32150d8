// Measures the memory Tessera needs to run a model, beside bench/ort_memory_probe.mjs for ONNX
// Runtime; bench/compare_memory_with_onnxruntime.py runs both and prints the comparison.
//
// Usage: tessera_memory_probe MODEL.onnx [--threads N] [--runs N] [-i NAME=FILE.npy ...]
// Prepares the plan for the inputs' shapes (weights packed, arena placed but not yet touched),
// then runs the model --runs times and prints one line of JSON:
//   arena_bytes / naive_bytes   the memory planner's activation arena, and the sum without reuse
//   rss_before_runs             resident bytes after preparation (/proc/self/status VmRSS)
//   rss_peak_during_runs        the highest VmRSS over the runs (VmHWM, reset before the runs)
// Under LD_PRELOAD=heap_probe_preload.so an odd-sized allocation before the runs resets the heap
// count and another after each run makes the preload library write the peak heap bytes above
// the level before the runs (and that run's large allocations) to stderr.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <string>

#include "tessera/npy.h"
#include "tessera/session.h"

namespace {

// Sizes that heap_probe_preload.cpp reads as "reset the baseline" and "report".
constexpr size_t kHeapMarkResetBytes = 1000003;
constexpr size_t kHeapMarkReportBytes = 1000033;

// Called through a volatile pointer so the compiler cannot drop the unused allocation.
void* (*volatile allocate_mark)(size_t) = std::malloc;

size_t status_bytes(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind(field + ":", 0) == 0) return size_t(std::stoull(line.substr(field.size() + 1))) * 1024;
  throw tessera::Error("no " + field + " in /proc/self/status");
}

// Makes VmHWM equal to the current VmRSS (Linux 4.0+), so that it then records the peak of the
// runs alone.
void reset_peak_rss() {
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5";
  if (!clear_refs.flush()) throw tessera::Error("cannot write /proc/self/clear_refs to reset VmHWM");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string model;
    int threads = 1, runs = 3;
    std::map<std::string, tessera::Tensor> inputs;
    for (int a = 1; a < argc; ++a) {
      std::string arg = argv[a];
      auto value = [&]() -> std::string {
        if (a + 1 >= argc) throw tessera::Error(arg + " needs a value");
        return argv[++a];
      };
      if (arg == "--threads") {
        threads = std::stoi(value());
      } else if (arg == "--runs") {
        runs = std::stoi(value());
      } else if (arg == "-i") {
        std::string pair = value();
        size_t eq = pair.find('=');
        if (eq == std::string::npos) throw tessera::Error("expected -i NAME=FILE.npy, got " + pair);
        inputs[pair.substr(0, eq)] = tessera::read_npy(pair.substr(eq + 1));
      } else if (model.empty() && arg.rfind("-", 0) != 0) {
        model = arg;
      } else {
        throw tessera::Error("unknown argument " + arg);
      }
    }
    if (model.empty()) throw tessera::Error("usage: tessera_memory_probe MODEL.onnx [--threads N] [--runs N] [-i NAME=FILE.npy ...]");

    tessera::Session session = tessera::Session::from_file(model, tessera::SessionOptions{threads});
    std::map<std::string, tessera::Shape> shapes;
    for (const auto& [name, tensor] : inputs) shapes[name] = tensor.shape();
    session.prepare(shapes);
    const tessera::PlanStats& stats = session.plan_stats();

    void* reset_mark = allocate_mark(kHeapMarkResetBytes);
    size_t rss_before = status_bytes("VmRSS");
    reset_peak_rss();
    for (int r = 0; r < runs; ++r) {
      session.run(inputs);  // its outputs are freed here, before the next run
      std::free(allocate_mark(kHeapMarkReportBytes));
    }
    size_t rss_peak = status_bytes("VmHWM");
    std::free(reset_mark);

    std::printf("{\"engine\": \"tessera\", \"threads\": %d, \"runs\": %d, \"arena_bytes\": %zu, \"naive_bytes\": %zu, "
                "\"rss_before_runs\": %zu, \"rss_peak_during_runs\": %zu}\n",
                threads, runs, stats.peak_activation_bytes, stats.naive_activation_bytes, rss_before, rss_peak);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
