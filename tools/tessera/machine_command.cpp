// `tessera machine`: measures (or reads from the cache) this machine's roofline ceilings and
// prints them with the balance point for 1 thread and all threads.
#include <iostream>

#include "analysis/machine_ceilings.h"
#include "analysis/roofline_report.h"
#include "fmt/format.h"
#include "tessera/commands.h"

namespace tessera::cli {

void add_machine_command(CLI::App& app) {
  struct Options {
    bool refresh = false;
    std::string json, cache;
    int threads = 0;
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "machine",
      "Measure this machine's ceilings (peak FLOP/s, memory bandwidth, caches) for roofline analysis");
  cmd->add_flag("--refresh", options->refresh, "measure again even when the cache has this CPU");
  cmd->add_option("--json", options->json, "also write the ceilings as JSON to FILE");
  cmd->add_option("--threads", options->threads, "threads for the all-thread figures (default: all cores)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--cache", options->cache,
                  "cache file (default: $TESSERA_MACHINE_CACHE, else ~/.cache/tessera/machine.json)");
  cmd->callback([options] {
    const std::string cache =
        options->cache.empty() ? analysis::default_machine_cache_path() : options->cache;
    analysis::MachineCeilings c = analysis::machine_ceilings(cache, options->threads, options->refresh);
    std::cout << fmt::format("cpu        {}\n", c.cpu_model);
    std::cout << fmt::format("measured   {} (cache {})\n", c.measured_at, cache);
    std::cout << fmt::format("fma loop   {}\n", c.isa);
    std::cout << "caches    ";
    for (const auto& level : c.caches)
      std::cout << fmt::format(" L{} {} {} KiB (x{} cpus);", level.level, level.type, level.bytes >> 10,
                               level.shared_by_cpus);
    std::cout << "\n";
    std::cout << fmt::format("{:<10} {:>14} {:>14} {:>14} {:>18}\n", "threads", "f32 GFLOP/s", "int8 GOP/s",
                             "triad GB/s", "balance FLOP/byte");
    auto line = [&](int threads, double flops, double int8, double bandwidth) {
      std::cout << fmt::format("{:<10} {:>14.1f} {:>14} {:>14.1f} {:>18.2f}\n", threads, flops,
                               c.has_vnni ? fmt::format("{:.1f}", int8) : std::string("n/a (no VNNI)"),
                               bandwidth, bandwidth > 0 ? flops / bandwidth : 0.0);
    };
    line(1, c.peak_gflops_1, c.int8_gops_1, c.bandwidth_gbs_1);
    line(c.threads, c.peak_gflops_all, c.int8_gops_all, c.bandwidth_gbs_all);
    std::cout << fmt::format("triad arrays {} MiB in all\n", c.triad_bytes >> 20);
    if (analysis::all_thread_figure_looks_contended(c))
      std::cout << fmt::format(
          "note: {} threads reached only {:.1f}x the 1-thread FMA rate; other work was probably "
          "running. Measure again on a quiet machine: tessera machine --refresh\n",
          c.threads, c.peak_gflops_all / c.peak_gflops_1);
    if (!options->json.empty()) {
      analysis::write_text_file(options->json, analysis::ceilings_to_json(c) + "\n");
      std::cout << "json: " << options->json << "\n";
    }
  });
}

}  // namespace tessera::cli
