// The --abft flags shared by run, bench and profile: parse them, and build the step observer.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "analysis/machine_ceilings.h"
#include "reliability/abft_overhead.h"
#include "tessera/commands.h"

namespace tessera::cli {

void add_abft_flags(CLI::App* cmd, AbftFlags& flags) {
  cmd->add_option("--abft", flags.policy,
                  "checksum protection of GEMMs and convolutions: off|global|thread|auto|tuned (default off)")
      ->check(CLI::IsMember({"off", "global", "thread", "auto", "tuned"}));
  cmd->add_option("--abft-action", flags.action, "on a detected error: report|correct|fail (default correct)")
      ->check(CLI::IsMember({"report", "correct", "fail"}));
  cmd->add_option("--abft-lambda", flags.lambda,
                  "probabilistic bound's lambda; 0 for the rigorous worst-case bound (default 8)")
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--abft-tuned", flags.tuned_file,
                  "per-layer schemes for --abft tuned, as written by `tessera abft --save-tuned`");
}

std::unique_ptr<reliability::AbftMonitor> make_abft_monitor(const AbftFlags& flags, int threads) {
  std::optional<reliability::AbftOptions> options = abft_options(flags, threads);
  return options ? std::make_unique<reliability::AbftMonitor>(*options) : nullptr;
}

std::optional<reliability::AbftOptions> abft_options(const AbftFlags& flags, int threads) {
  if (flags.policy == "off") return std::nullopt;
  reliability::AbftOptions options;
  options.policy = reliability::parse_abft_policy(flags.policy);
  options.action = reliability::parse_abft_action(flags.action);
  options.probabilistic_lambda = float(flags.lambda);
  if (options.policy == reliability::AbftPolicy::tuned) {
    if (flags.tuned_file.empty()) throw Error("--abft tuned needs --abft-tuned FILE (from `tessera abft --save-tuned`)");
    std::ifstream in(flags.tuned_file);
    if (!in) throw Error("cannot read " + flags.tuned_file);
    std::stringstream text;
    text << in.rdbuf();
    options.tuned_schemes = reliability::tuned_schemes_from_json(text.str());
  }
  if (options.policy == reliability::AbftPolicy::automatic || options.policy == reliability::AbftPolicy::tuned) {
    options.roof = analysis::roof_for_threads(cached_machine_ceilings("", false), threads);
  }
  return options;
}

analysis::MachineCeilings cached_machine_ceilings(const std::string& cache_option, bool refresh) {
  const std::string cache = cache_option.empty() ? analysis::default_machine_cache_path() : cache_option;
  if (refresh || !analysis::load_cached_ceilings(cache, 0))
    std::cerr << "measuring machine ceilings (a few seconds; cached in " << cache << ")\n";
  return analysis::machine_ceilings(cache, 0, refresh);
}

void print_abft_summary(const reliability::AbftMonitor& monitor, std::ostream& out) {
  for (const std::string& line : monitor.reports()) out << line << "\n";
  out << "abft " << reliability::abft_policy_name(monitor.options().policy) << ": " << monitor.checks()
      << " row checks, " << monitor.detections() << " detections, " << monitor.recomputations()
      << " recomputations, worst clean |difference| / bound " << monitor.worst_clean_ratio() << "\n";
}

}  // namespace tessera::cli
