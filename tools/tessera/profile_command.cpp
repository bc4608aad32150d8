// `tessera profile`: times every executed node over several runs and reports each against this
// machine's roofline (table on stdout, optional JSON and self-contained HTML).
#include <cmath>
#include <iostream>
#include <random>

#include "analysis/machine_ceilings.h"
#include "analysis/roofline_profiler.h"
#include "analysis/roofline_report.h"
#include "runtime/specialize.h"
#include "tessera/commands.h"
#include "tessera/onnx.h"
#include "tessera/session.h"

namespace tessera::cli {

void add_profile_command(CLI::App& app) {
  struct Options {
    std::string model, json, html, cache;
    std::vector<std::string> inputs, shapes;
    int threads = 0, iters = 10, warmup = 3;
    bool refresh = false, channels_last = false;
    AbftFlags abft;
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd =
      app.add_subcommand("profile", "Per-layer roofline profile: time, FLOPs, bytes, % of roofline bound");
  cmd->add_option("model", options->model, "ONNX model file")->required();
  cmd->add_option("--threads", options->threads, "worker threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--iters", options->iters, "profiled runs; per-layer times are medians (default 10)")
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--warmup", options->warmup, "untimed runs first (default 3)")
      ->check(CLI::Range(0, 1000000));
  cmd->add_option("-i,--input", options->inputs, "NAME=FILE.npy (default: seeded random inputs)");
  cmd->add_option("--shape", options->shapes, "NAME=DIMS for random inputs with symbolic dims (default 1)");
  cmd->add_option("--json", options->json, "write the profile as JSON (fields in docs/PROFILER.md)");
  cmd->add_option("--html", options->html,
                  "write a self-contained HTML report (roofline chart, time bars, table)");
  cmd->add_option(
      "--cache", options->cache,
      "machine ceilings cache (default: $TESSERA_MACHINE_CACHE, else ~/.cache/tessera/machine.json)");
  cmd->add_flag("--refresh", options->refresh, "measure the machine ceilings again");
  cmd->add_flag("--channels-last", options->channels_last,
                "run CNNs on channels-last (NHWC) activations where every 2-D convolution can (no ABFT yet)");
  add_abft_flags(cmd, options->abft);
  cmd->callback([options] {
    Graph graph = load_onnx_model(options->model);
    auto [inputs, shapes] = timing_inputs(graph, options->inputs, options->shapes);
    // Ceilings before the session exists, so the measurement has the cores to itself.
    analysis::MachineCeilings ceilings = cached_machine_ceilings(options->cache, options->refresh);

    Session session(std::move(graph), SessionOptions{options->threads, true, options->channels_last});
    session.prepare(shapes);
    auto abft = make_abft_monitor(options->abft, session.thread_pool().size());
    if (abft) session.add_observer(abft.get());
    analysis::ProfileOptions profile_options;
    profile_options.warmup = options->warmup;
    profile_options.iterations = options->iters;
    analysis::ModelProfile profile = analysis::profile_session(session, inputs, profile_options, ceilings);
    profile.model = options->model;
    std::cout << analysis::profile_to_table(profile);
    if (abft) print_abft_summary(*abft, std::cout);
    if (!options->json.empty()) {
      analysis::write_text_file(options->json, analysis::profile_to_json(profile) + "\n");
      std::cout << "json: " << options->json << "\n";
    }
    if (!options->html.empty()) {
      analysis::write_text_file(options->html, analysis::profile_to_html(profile));
      std::cout << "html: " << options->html << "\n";
    }
  });
}

}  // namespace tessera::cli
