// The CLI's subcommands; each file registers one on the CLI11 app. Thin: parse, call the
// library, print.
#pragma once
#include <CLI/CLI.hpp>
#include <map>
#include <string>
#include <vector>

#include "tessera/tensor.h"

namespace tessera::cli {

void add_run_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_machine_command(CLI::App& app);
void add_profile_command(CLI::App& app);

// "NAME=FILE.npy" pairs into tensors.
std::map<std::string, Tensor> read_named_inputs(const std::vector<std::string>& pairs);
// "NAME=1x3x224x224" or "NAME=1,3,224,224" pairs into shapes.
std::map<std::string, Shape> parse_named_shapes(const std::vector<std::string>& pairs);

}  // namespace tessera::cli
