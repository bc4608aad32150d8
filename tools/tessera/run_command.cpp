// `tessera run`: run a model on .npy inputs and write every graph output as DIR/<name>.npy.
#include <filesystem>
#include <iostream>

#include "tessera/commands.h"
#include "tessera/npy.h"
#include "tessera/session.h"

namespace tessera::cli {

void add_run_command(CLI::App& app) {
  struct Options {
    std::string model, output_dir;
    std::vector<std::string> inputs;
    int threads = 0;
    bool channels_last = false;
    AbftFlags abft;
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("run", "Run a model on .npy inputs; write outputs as .npy");
  cmd->add_option("model", options->model, "ONNX model file")->required();
  cmd->add_option("-i,--input", options->inputs, "NAME=FILE.npy for each graph input");
  cmd->add_option("-o,--output-dir", options->output_dir, "folder for <output name>.npy files")->required();
  cmd->add_option("--threads", options->threads, "worker threads (default: all cores)")->check(CLI::Range(0, 1024));
  cmd->add_flag("--channels-last", options->channels_last,
                "run CNNs on channels-last (NHWC) activations where every 2-D convolution can (no ABFT yet)");
  add_abft_flags(cmd, options->abft);
  cmd->callback([options] {
    Session session =
        Session::from_file(options->model, SessionOptions{options->threads, true, options->channels_last});
    auto inputs = read_named_inputs(options->inputs);
    auto abft = make_abft_monitor(options->abft, session.thread_pool().size());
    if (abft) session.add_observer(abft.get());
    auto outputs = session.run(inputs);
    if (abft) print_abft_summary(*abft, std::cerr);
    std::filesystem::create_directories(options->output_dir);
    for (const auto& [name, tensor] : outputs) {
      // Output names become file names: keep them inside the output folder.
      std::string file = name;
      for (char& c : file)
        if (c == '/' || c == '\\' || c == ':') c = '_';
      if (file == "." || file == "..") file = "_" + file;
      std::string path = (std::filesystem::path(options->output_dir) / (file + ".npy")).string();
      write_npy(path, tensor);
      std::cout << name << " " << dtype_name(tensor.dtype()) << " " << shape_to_string(tensor.shape())
                << " -> " << path << "\n";
    }
  });
}

}  // namespace tessera::cli
