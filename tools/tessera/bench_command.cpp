// `tessera bench`: latency percentiles and throughput of repeated runs, optional Chrome trace.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <random>

#include "fmt/format.h"
#include "runtime/chrome_trace.h"
#include "runtime/specialize.h"
#include "tessera/commands.h"
#include "tessera/onnx.h"
#include "tessera/session.h"

namespace tessera::cli {

void add_bench_command(CLI::App& app) {
  struct Options {
    std::string model, trace;
    std::vector<std::string> inputs, shapes;
    int threads = 0, iters = 20, warmup = 3;
    bool no_fusion = false, channels_last = false;
    AbftFlags abft;
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("bench", "Time repeated runs: median and p90 latency, throughput");
  cmd->add_option("model", options->model, "ONNX model file")->required();
  cmd->add_option("--threads", options->threads, "worker threads (default: all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("--iters", options->iters, "timed runs (default 20)")->check(CLI::Range(1, 1000000));
  cmd->add_option("--warmup", options->warmup, "untimed runs first (default 3)")->check(CLI::Range(0, 1000000));
  cmd->add_option("-i,--input", options->inputs, "NAME=FILE.npy (default: seeded random inputs)");
  cmd->add_option("--shape", options->shapes, "NAME=DIMS for random inputs with symbolic dims (default 1)");
  cmd->add_option("--trace", options->trace, "write a per-operator Chrome trace (JSON) of the timed runs");
  cmd->add_flag("--no-fusion", options->no_fusion, "run the graph without the fusion passes (to measure what they buy)");
  cmd->add_flag("--channels-last", options->channels_last,
                "run CNNs on channels-last (NHWC) activations where every 2-D convolution can (no ABFT yet)");
  add_abft_flags(cmd, options->abft);
  cmd->callback([options] {
    Graph graph = load_onnx_model(options->model);
    auto [inputs, shapes] = timing_inputs(graph, options->inputs, options->shapes);
    Session session(std::move(graph),
                    SessionOptions{options->threads, !options->no_fusion, options->channels_last});
    session.prepare(shapes);
    auto abft = make_abft_monitor(options->abft, session.thread_pool().size());
    if (abft) session.add_observer(abft.get());
    for (int i = 0; i < options->warmup; ++i) session.run(inputs);
    ChromeTraceRecorder trace;
    if (!options->trace.empty()) session.add_observer(&trace);
    std::vector<double> ms;
    for (int i = 0; i < options->iters; ++i) {
      trace.begin_run(i);
      auto start = std::chrono::steady_clock::now();
      session.run(inputs);
      auto end = std::chrono::steady_clock::now();
      trace.end_run();
      ms.push_back(std::chrono::duration<double, std::milli>(end - start).count());
    }
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    auto percentile = [&](double p) {
      size_t idx = size_t(std::ceil(p * double(sorted.size()))) - 1;
      return sorted[std::min(idx, sorted.size() - 1)];
    };
    double median = sorted.size() % 2 ? sorted[sorted.size() / 2]
                                       : 0.5 * (sorted[sorted.size() / 2 - 1] + sorted[sorted.size() / 2]);
    const PlanStats& stats = session.plan_stats();
    std::cout << fmt::format("model {}  threads {}  iters {}\n", options->model,
                             session.thread_pool().size(), options->iters);
    // Small models run in tens of microseconds: more decimals below 10 ms (never an exponent).
    auto format_ms = [](double v) { return v < 10 ? fmt::format("{:.4f}", v) : fmt::format("{:.2f}", v); };
    std::cout << fmt::format("median {} ms  p90 {} ms  min {} ms\n", format_ms(median), format_ms(percentile(0.9)), format_ms(sorted.front()));
    std::cout << fmt::format("throughput {:.2f} inferences/s  {:.2f} GFLOP/s\n", 1000.0 / median,
                             stats.total_flops / (median * 1e6));
    if (abft) print_abft_summary(*abft, std::cout);
    if (!options->trace.empty()) {
      trace.write(options->trace);
      std::cout << "trace: " << options->trace << " (" << trace.event_count() << " events)\n";
    }
  });
}

}  // namespace tessera::cli
