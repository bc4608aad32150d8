// `tessera abft`: per layer the arithmetic intensity, bound class and the scheme each policy picks,
// and the measured cost of off / global / thread / auto / tuned, per layer and end to end.
#include <iostream>

#include "analysis/machine_ceilings.h"
#include "analysis/roofline_report.h"
#include "reliability/abft_overhead.h"
#include "tessera/commands.h"
#include "tessera/onnx.h"

namespace tessera::cli {

void add_abft_command(CLI::App& app) {
  struct Options {
    std::string model, json, save_tuned;
    std::vector<std::string> inputs, shapes;
    int threads = 0, iters = 5, rounds = 4, warmup = 3;
    double lambda = 8;
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "abft", "ABFT per layer: intensity, bound class, chosen scheme, overhead of off/global/thread/auto/tuned");
  cmd->add_option("model", options->model, "ONNX model file")->required();
  cmd->add_option("--threads", options->threads, "worker threads (default: all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("--iters", options->iters, "runs of each policy per round (default 5)")->check(CLI::Range(1, 100000));
  cmd->add_option("--rounds", options->rounds, "rounds; policies alternate within each (default 4)")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--warmup", options->warmup, "untimed runs first (default 3)")->check(CLI::Range(0, 100000));
  cmd->add_option("-i,--input", options->inputs, "NAME=FILE.npy (default: seeded random inputs)");
  cmd->add_option("--shape", options->shapes, "NAME=DIMS for random inputs with symbolic dims (default 1)");
  cmd->add_option("--abft-lambda", options->lambda, "probabilistic bound's lambda; 0: rigorous bound (default 8)")
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--json", options->json, "write the report as JSON (fields in docs/ABFT.md)");
  cmd->add_option("--save-tuned", options->save_tuned, "write the per-layer faster scheme, for --abft tuned");
  cmd->callback([options] {
    Graph graph = load_onnx_model(options->model);
    auto [inputs, shapes] = timing_inputs(graph, options->inputs, options->shapes);
    const analysis::MachineCeilings ceilings = cached_machine_ceilings("", false);
    Session session(std::move(graph), SessionOptions{options->threads});
    session.prepare(shapes);
    reliability::AbftOptions base;
    base.action = reliability::AbftAction::report;  // count, never stop: false positives show in the report
    base.probabilistic_lambda = float(options->lambda);
    base.roof = analysis::roof_for_threads(ceilings, session.thread_pool().size());
    reliability::AbftOverheadReport report = reliability::measure_abft_overheads(
        session, inputs, base, options->warmup, options->rounds, options->iters);
    report.model = options->model;
    std::cout << reliability::abft_report_to_table(report);
    if (!options->json.empty()) {
      analysis::write_text_file(options->json, reliability::abft_report_to_json(report) + "\n");
      std::cout << "json: " << options->json << "\n";
    }
    if (!options->save_tuned.empty()) {
      std::map<std::string, primitives::GemmCheckScheme> tuned;
      for (const auto& layer : report.layers)
        if (layer.protected_layer) tuned[layer.name] = layer.tuned_scheme;
      analysis::write_text_file(options->save_tuned, reliability::tuned_schemes_to_json(tuned) + "\n");
      std::cout << "tuned schemes: " << options->save_tuned << "\n";
    }
  });
}

}  // namespace tessera::cli
