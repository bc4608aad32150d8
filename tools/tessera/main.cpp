// tessera: the command-line interface. Every error becomes one line on stderr and exit code 1.
#include <cstdio>
#include <exception>

#include "tessera/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"Tessera: fast and dependable neural-network inference on the CPU"};
  app.require_subcommand(1);
  tessera::cli::add_run_command(app);
  tessera::cli::add_info_command(app);
  tessera::cli::add_bench_command(app);
  tessera::cli::add_machine_command(app);
  tessera::cli::add_profile_command(app);
  tessera::cli::add_abft_command(app);
  tessera::cli::add_inject_command(app);
  tessera::cli::add_generate_command(app);
  tessera::cli::add_compress_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help and the like
    std::fprintf(stderr, "error: %s (see --help)\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
