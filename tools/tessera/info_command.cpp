// `tessera info`: inputs, outputs, op counts, parameters and FLOPs of a model.
#include <iostream>

#include "fmt/format.h"
#include "runtime/specialize.h"
#include "tessera/commands.h"
#include "tessera/onnx.h"
#include "tessera/session.h"

namespace tessera::cli {

namespace {
std::string describe_dims(const Value& v) {
  if (!v.has_shape) return "?";
  std::string s = "[";
  for (size_t i = 0; i < v.dims.size(); ++i) {
    const Dim& d = v.dims[i];
    s += (i ? "," : "") + (d.known() ? std::to_string(d.value) : (d.symbol.empty() ? "?" : d.symbol));
  }
  return s + "]";
}
}  // namespace

void add_info_command(CLI::App& app) {
  struct Options {
    std::string model;
    std::vector<std::string> shapes;
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("info", "Print a model's inputs, outputs, ops, parameters and FLOPs");
  cmd->add_option("model", options->model, "ONNX model file")->required();
  cmd->add_option("--shape", options->shapes,
                  "NAME=DIMS (e.g. input=1x3x224x224) to bind symbolic dims for the FLOP count (default 1)");
  cmd->callback([options] {
    Graph graph = load_onnx_model(options->model);
    std::cout << "model: " << options->model << "  (opset " << graph.opset << ", " << graph.nodes.size()
              << " nodes)\n";
    std::cout << "inputs:\n";
    for (int id : graph.inputs) {
      const Value& v = graph.values[size_t(id)];
      std::cout << "  " << v.name << "  " << (v.has_type ? dtype_name(v.dtype) : "?") << " "
                << describe_dims(v) << "\n";
    }
    std::cout << "outputs:\n";
    for (int id : graph.outputs) {
      const Value& v = graph.values[size_t(id)];
      std::cout << "  " << v.name << "  " << (v.has_type ? dtype_name(v.dtype) : "?") << " "
                << describe_dims(v) << "\n";
    }
    std::map<std::string, int> op_counts;
    for (const Node& n : graph.nodes) op_counts[(n.domain.empty() ? "" : n.domain + ".") + n.op_type]++;
    std::cout << "ops:\n";
    for (const auto& [op, count] : op_counts) std::cout << fmt::format("  {:<28}{:>6}\n", op, count);
    int64_t parameters = 0;
    size_t parameter_bytes = 0;
    for (const Value& v : graph.values)
      if (v.is_constant()) {
        parameters += v.constant.numel();
        parameter_bytes += v.constant.nbytes();
      }
    std::cout << fmt::format("parameters: {} ({:.2f} MB)\n", parameters, parameter_bytes / 1e6);
    auto shapes = default_input_shapes(graph, parse_named_shapes(options->shapes));
    Session session(std::move(graph), SessionOptions{1});
    session.prepare(shapes);
    const PlanStats& stats = session.plan_stats();
    std::string bound;
    for (const auto& [name, shape] : shapes) bound += (bound.empty() ? "" : ", ") + name + "=" + shape_to_string(shape);
    std::cout << fmt::format("FLOPs: {:.4g} GFLOP  (for {})\n", stats.total_flops / 1e9, bound);
    std::cout << fmt::format("executed steps after fusion: {}\n", stats.steps);
    std::cout << fmt::format(
        "peak activation memory: {:.2f} MB (most live at one step: {:.2f} MB; without reuse: {:.2f} MB)\n",
        stats.peak_activation_bytes / 1e6, stats.activation_lower_bound_bytes / 1e6,
        stats.naive_activation_bytes / 1e6);
  });
}

}  // namespace tessera::cli
