// `tessera compress`: writes a compressed copy of a model. int8: post-training quantization to a
// standard ONNX QDQ model, calibrated on data, optionally keeping layers in f32 to meet an
// accuracy target on labelled data. bitplane, bcq, sparse and winograd-int8: Tessera files (ONNX with
// "tessera"-domain nodes holding the compressed weights; docs/COMPRESSION.md).
#include <algorithm>
#include <cstring>
#include <iostream>
#include <sstream>

#include "compression/bcq_quantize.h"
#include "compression/bitplane_quantize.h"
#include "compression/int8_quantize.h"
#include "compression/sparse_compress.h"
#include "compression/winograd_int8_quantize.h"
#include "fmt/format.h"
#include "runtime/specialize.h"
#include "tessera/commands.h"
#include "tessera/npy.h"
#include "tessera/onnx.h"
#include "tessera/session.h"

namespace tessera::cli {

namespace {

// Rows [begin, end) of a tensor along its first axis.
Tensor leading_slice(const Tensor& t, int64_t begin, int64_t end) {
  Shape shape = t.shape();
  shape[0] = end - begin;
  Tensor out(t.dtype(), shape);
  const size_t row = t.nbytes() / size_t(t.dim(0));
  std::memcpy(out.raw_data(), static_cast<const char*>(t.raw_data()) + size_t(begin) * row, size_t(end - begin) * row);
  return out;
}

std::string single_input_name(const Graph& graph) {
  if (graph.inputs.size() != 1)
    throw Error("compress reads data for models with one input; this one has " + std::to_string(graph.inputs.size()));
  return graph.values[size_t(graph.inputs[0])].name;
}

std::vector<compression::Feeds> batches(const Graph& graph, const Tensor& data, int64_t count, int64_t batch) {
  const std::string name = single_input_name(graph);
  if (data.rank() < 1 || data.dim(0) < 1) throw Error("the calibration data has no samples");
  const int64_t n = count > 0 ? std::min(count, data.dim(0)) : data.dim(0);
  const Tensor f32 = data.dtype() == DType::f32 ? data : data.cast(DType::f32);
  std::vector<compression::Feeds> out;
  for (int64_t b = 0; b < n; b += batch) out.push_back({{name, leading_slice(f32, b, std::min(n, b + batch))}});
  return out;
}

// Top-1 accuracy in percent of `graph` on (images, labels).
double top1_accuracy(const Graph& graph, const std::vector<compression::Feeds>& feeds, const Tensor& labels, int threads) {
  Session session(graph, SessionOptions{threads});
  int64_t correct = 0, seen = 0;
  for (const auto& feed : feeds) {
    const auto outputs = session.run(feed);
    const Tensor& logits = outputs.begin()->second;
    const int64_t rows = logits.dim(0), classes = logits.numel() / rows;
    for (int64_t r = 0; r < rows; ++r, ++seen) {
      const float* row = logits.data<float>() + r * classes;
      const int64_t best = std::max_element(row, row + classes) - row;
      if (best == int64_t(labels.value_as_double(seen))) ++correct;
    }
  }
  return seen ? 100.0 * double(correct) / double(seen) : 0.0;
}

// bitplane, bcq, sparse and winograd-int8: rewrite the float graph into "tessera"-domain nodes and save it.
template <typename Options>
void compress_with_tessera_nodes(const Options& o) {
  Graph graph = load_onnx_model(o.model);
  std::string summary;
  if (o.method == "bitplane") {
    compression::BitplaneOptions options;
    options.weight_bits = o.weight_bits;
    options.activation_bits = o.activation_bits;
    options.keep_first_layer_f32 = options.keep_last_layer_f32 = !o.quantize_first_last;
    if (!o.calib.empty()) options.calibration_inputs = batches(graph, read_npy(o.calib), o.calib_count, o.batch).front();
    options.exclude_layers = o.keep_float;
    const auto report = compression::apply_bitplane_quantization(graph, options);
    summary = fmt::format("bitplane w{}a{} ({} activation ranges): {} layers quantized, {} kept in f32, weights {:.1f} "
                          "-> {:.1f} KB", o.weight_bits, o.activation_bits, report.calibrated ? "calibrated" : "dynamic",
                          report.quantized_layers.size(), report.kept_f32_layers.size(),
                          report.float_weight_bytes / 1e3, report.packed_weight_bytes / 1e3);
  } else if (o.method == "bcq") {
    compression::BcqQuantizeOptions options;
    options.bcq.bits = o.weight_bits;
    options.bcq.group_size = o.group_size;
    const auto report = compression::apply_bcq_quantization(graph, options);
    summary = fmt::format("bcq {} bits, groups of {}: {} MatMul/Gemm layers rewritten, {} left, weights {:.1f} -> "
                          "{:.1f} KB", o.weight_bits, o.group_size, report.rewritten, report.skipped,
                          report.f32_weight_bytes / 1e3, report.bcq_weight_bytes / 1e3);
  } else if (o.method == "winograd-int8") {
    if (o.calib.empty()) throw Error("--method winograd-int8 needs --calib (calibration inputs)");
    compression::WinogradInt8Options options;
    options.scheme.tile = o.tile;
    options.scheme.tap_wise = !o.single_scale;
    options.scheme.power_of_two = !o.float_scales;
    options.calibration_inputs = batches(graph, read_npy(o.calib), o.calib_count, o.batch).front();
    options.exclude_layers = o.keep_float;
    if (o.calibration == "mse")
      options.calibration = compression::WinogradInt8Options::Calibration::mse;
    else if (o.calibration != "minmax")
      throw Error("--method winograd-int8 calibrates with minmax or mse (got '" + o.calibration + "')");
    const auto report = compression::apply_winograd_int8(graph, options);
    summary = fmt::format("winograd-int8 F({0}x{0},3x3), {1} scales, {2}: {3} convolutions rewritten, {4} kept in f32",
                          o.tile, o.single_scale ? "single" : "tap-wise", o.float_scales ? "float" : "power-of-two",
                          report.quantized_layers.size(), report.kept_f32_layers.size());
  } else {
    SparsityOptions options;
    options.sparsity = o.sparsity;
    options.method = o.global ? SparsityOptions::Method::global_magnitude : SparsityOptions::Method::magnitude;
    if (!o.pattern.empty()) {
      int n = 0, m = 0;
      char colon = 0;
      std::istringstream in(o.pattern);
      if (!(in >> n >> colon >> m) || colon != ':' || n < 1 || m < n || !in.eof())
        throw Error("--pattern must be N:M with 1 <= N <= M, e.g. 2:4 (got '" + o.pattern + "')");
      options.method = SparsityOptions::Method::n_of_m;
      options.n = n;
      options.m = m;
    }
    options.kernels = o.kernels == "always"  ? SparsityOptions::Kernels::always
                      : o.kernels == "never" ? SparsityOptions::Kernels::never
                                             : SparsityOptions::Kernels::automatic;
    const SparsityReport report = apply_sparsity(graph, options);
    int sparse_kernels = 0;
    for (const auto& layer : report.layers) sparse_kernels += layer.kernel != "dense";
    summary = fmt::format("sparse: {} layers pruned to {:.1f}% zeros overall, {} on sparse kernels",
                          report.layers.size(), report.weights ? 100.0 * double(report.zeros) / double(report.weights) : 0.0,
                          sparse_kernels);
  }
  save_onnx_model(graph, o.output);
  std::cout << summary << " -> " << o.output << "\n";
}

}  // namespace

void add_compress_command(CLI::App& app) {
  struct Options {
    std::string model, method = "int8", calib, output, calibration = "minmax", eval_data, eval_labels;
    std::vector<std::string> keep_float;
    double percentile = 99.99, max_drop = -1;
    int64_t calib_count = 0, batch = 32;
    bool per_tensor = false, symmetric = false;
    int threads = 0;
    // bitplane and bcq
    int weight_bits = 4, activation_bits = 4;
    bool quantize_first_last = false;
    int64_t group_size = 128;
    // winograd-int8
    int tile = 4;
    bool single_scale = false, float_scales = false;
    // sparse
    double sparsity = 0.5;
    std::string pattern, kernels = "auto";
    bool global = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("compress", "Write a compressed copy of a model (int8: an ONNX QDQ model)");
  cmd->add_option("model", options->model, "ONNX model file")->required();
  cmd->add_option("--method", options->method,
                  "int8 (QDQ), bitplane (wXaY), bcq (LUT-GEMM weights), sparse or winograd-int8 (3x3 convolutions)")
      ->check(CLI::IsMember({"int8", "bitplane", "bcq", "sparse", "winograd-int8"}));
  cmd->add_option("--calib", options->calib,
                  "Calibration inputs: a .npy file of samples along its first axis (int8, winograd-int8: "
                  "required; bitplane: static activation ranges from its first batch)");
  cmd->add_option("-o,--output", options->output, "Output ONNX file")->required();
  cmd->add_option("--calibration", options->calibration,
                  "Activation ranges: minmax, percentile or entropy (int8); minmax or mse (winograd-int8)");
  cmd->add_option("--percentile", options->percentile, "Share of values kept inside the range (percentile)");
  cmd->add_option("--calib-count", options->calib_count, "Use only the first N calibration samples");
  cmd->add_option("--batch", options->batch, "Calibration batch size")->check(CLI::Range(1, 4096));
  cmd->add_flag("--per-tensor", options->per_tensor, "One weight scale per tensor (default: per output channel)");
  cmd->add_flag("--symmetric", options->symmetric, "s8 activations with zero point 0 (default: u8 asymmetric)");
  cmd->add_option("--keep-float", options->keep_float, "Layer (node) names to leave in f32 (int8, bitplane, winograd-int8)");
  cmd->add_option("--eval-data", options->eval_data, "Held-out inputs (.npy) for --max-accuracy-drop");
  cmd->add_option("--eval-labels", options->eval_labels, "Their class labels (.npy, integers)");
  cmd->add_option("--max-accuracy-drop", options->max_drop,
                  "Keep the most sensitive layers in f32 until top-1 is within this many points of f32");
  cmd->add_option("--threads", options->threads, "Threads for calibration and evaluation (default: all)");
  cmd->add_option("--weight-bits", options->weight_bits, "bitplane: 1..8; bcq: 1..4 sign planes")->check(CLI::Range(1, 8));
  cmd->add_option("--activation-bits", options->activation_bits, "bitplane: 1..8")->check(CLI::Range(1, 8));
  cmd->add_flag("--quantize-first-last", options->quantize_first_last,
                "bitplane: quantize the first and last layers too (default: they stay f32)");
  cmd->add_option("--group-size", options->group_size, "bcq: input columns per scale (a multiple of 32)");
  cmd->add_option("--tile", options->tile, "winograd-int8: output tile, 2 (F(2x2,3x3)) or 4 (F(4x4,3x3))")
      ->check(CLI::IsMember({2, 4}));
  cmd->add_flag("--single-scale", options->single_scale,
                "winograd-int8: one activation scale for all taps (default: one per tap)");
  cmd->add_flag("--float-scales", options->float_scales, "winograd-int8: scales as found (default: powers of two)");
  cmd->add_option("--sparsity", options->sparsity, "sparse: share of weights set to zero")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--pattern", options->pattern, "sparse: N:M structured pruning instead, e.g. 2:4");
  cmd->add_flag("--global", options->global, "sparse: one magnitude threshold over all layers");
  cmd->add_option("--kernels", options->kernels, "sparse: auto (sparse kernels where they win), always or never")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  cmd->callback([options] {
    if (options->method != "int8") return compress_with_tessera_nodes(*options);
    const Graph graph = load_onnx_model(options->model);
    if (options->calib.empty()) throw Error("--method int8 needs --calib (calibration inputs)");
    compression::Int8QuantizeOptions quantize;
    quantize.calibration = compression::calibration_method_from_string(options->calibration);
    quantize.percentile = options->percentile;
    if (!(quantize.percentile > 50 && quantize.percentile <= 100)) throw Error("--percentile must be in (50, 100]");
    quantize.per_channel = !options->per_tensor;
    quantize.symmetric_activations = options->symmetric;
    const auto known = compression::quantizable_layers(graph);
    for (const auto& name : options->keep_float) {
      if (std::find(known.begin(), known.end(), name) == known.end())
        throw Error("--keep-float: no quantizable layer (Conv, Gemm, MatMul) named '" + name + "'");
      quantize.keep_float.insert(name);
    }
    const auto calibration = batches(graph, read_npy(options->calib), options->calib_count, options->batch);
    if (options->max_drop >= 0) {
      if (options->eval_data.empty() || options->eval_labels.empty())
        throw Error("--max-accuracy-drop needs --eval-data and --eval-labels");
      const Tensor labels = read_npy(options->eval_labels);
      const auto eval = batches(graph, read_npy(options->eval_data), 0, options->batch);
      int64_t samples = 0;
      for (const auto& feed : eval) samples += feed.begin()->second.dim(0);
      if (labels.numel() < samples) throw Error("--eval-labels has fewer labels than --eval-data has samples");
      std::string log;
      quantize = compression::choose_float_layers(
          graph, calibration, quantize,
          [&](const Graph& g) { return top1_accuracy(g, eval, labels, options->threads); }, options->max_drop, &log);
      std::cerr << log;
    }
    compression::Int8QuantizeReport report;
    const Graph quantized = compression::quantize_int8(graph, calibration, quantize, &report);
    save_onnx_model(quantized, options->output);
    std::cout << fmt::format("int8 ({} calibration, weights per {}, {} activations): {} convolutions and {} matrix "
                             "products quantized, {} kept in f32, {} activations quantized -> {}\n",
                             compression::calibration_method_name(quantize.calibration),
                             quantize.per_channel ? "channel" : "tensor", quantize.symmetric_activations ? "s8" : "u8",
                             report.convolutions_quantized, report.matmuls_quantized, report.layers_kept_float,
                             report.activations_quantized, options->output);
    for (const auto& name : report.float_layers) std::cout << "  f32: " << name << "\n";
  });
}

}  // namespace tessera::cli
