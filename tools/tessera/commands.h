// The CLI's subcommands; each file registers one on the CLI11 app. Thin: parse, call the
// library, print.
#pragma once
#include <CLI/CLI.hpp>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "analysis/machine_ceilings.h"
#include "reliability/abft.h"

#include "tessera/graph.h"
#include "tessera/tensor.h"

namespace tessera::cli {

void add_run_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_machine_command(CLI::App& app);
void add_profile_command(CLI::App& app);
void add_abft_command(CLI::App& app);
void add_inject_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_compress_command(CLI::App& app);

// --abft, --abft-action, --abft-lambda, --abft-tuned on run, bench and profile.
struct AbftFlags {
  std::string policy = "off", action = "correct", tuned_file;
  double lambda = 8;
};
void add_abft_flags(CLI::App* cmd, AbftFlags& flags);
// nullptr for --abft off; `threads` picks the roof whose balance point `auto` uses.
std::unique_ptr<reliability::AbftMonitor> make_abft_monitor(const AbftFlags& flags, int threads);
// The options those flags ask for; nullopt for --abft off.
std::optional<reliability::AbftOptions> abft_options(const AbftFlags& flags, int threads);
// The machine ceilings from the cache (`cache`, or the default path when empty), measured and
// stored first, with a note on stderr, when missing or when `refresh`.
analysis::MachineCeilings cached_machine_ceilings(const std::string& cache, bool refresh);

// The report action's messages and the counters, one line.
void print_abft_summary(const reliability::AbftMonitor& monitor, std::ostream& out);

// "NAME=FILE.npy" pairs into tensors.
std::map<std::string, Tensor> read_named_inputs(const std::vector<std::string>& pairs);
// "NAME=1x3x224x224" or "NAME=1,3,224,224" pairs into shapes.
std::map<std::string, Shape> parse_named_shapes(const std::vector<std::string>& pairs);

// Inputs for timed runs (bench, profile): the given NAME=FILE.npy tensors, and seeded random
// ones for the rest (uniform floats; 0/1 integers, valid as indices) with shapes from
// NAME=DIMS pairs or the model's declared dims (symbolic ones set to 1).
std::pair<std::map<std::string, Tensor>, std::map<std::string, Shape>> timing_inputs(
    const Graph& graph, const std::vector<std::string>& input_pairs,
    const std::vector<std::string>& shape_pairs);

}  // namespace tessera::cli
