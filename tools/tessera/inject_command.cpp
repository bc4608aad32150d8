// `tessera inject`: a fault-injection campaign on a model, with outcome rates and intervals as a
// table, JSON, CSV and an HTML page.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>

#include "analysis/roofline_report.h"
#include "reliability/campaign_report.h"
#include "tessera/campaign_mpi.h"
#include "tessera/commands.h"
#include "tessera/npy.h"
#include "tessera/onnx.h"

#ifndef TESSERA_DATA_DIR
#define TESSERA_DATA_DIR "data"
#endif

namespace tessera::cli {

namespace {

// The data set's first axis split into one-item samples of the model input `name`, the other
// inputs seeded random (as bench makes them).
std::vector<std::map<std::string, Tensor>> campaign_samples(const Graph& graph, const std::string& data_path,
                                                            std::string name, int64_t limit,
                                                            const std::vector<std::string>& input_pairs,
                                                            const std::vector<std::string>& shape_pairs) {
  if (data_path.empty()) return {timing_inputs(graph, input_pairs, shape_pairs).first};
  if (name.empty()) {
    if (graph.inputs.empty()) throw Error("the model has no inputs to feed --data to");
    name = graph.values[size_t(graph.inputs[0])].name;
  }
  const int id = graph.find_value(name);
  if (id < 0 || std::find(graph.inputs.begin(), graph.inputs.end(), id) == graph.inputs.end())
    throw Error("the model has no input named '" + name + "'");
  const Value& input = graph.values[size_t(id)];
  Tensor data = read_npy(data_path);
  if (data.rank() < 1 || data.dim(0) < 1) throw Error("--data " + data_path + ": needs at least one item along axis 0");
  if (input.has_shape && int(input.dims.size()) != data.rank())
    throw Error("--data " + data_path + " has shape " + shape_to_string(data.shape()) + " but input '" + name +
                "' has rank " + std::to_string(input.dims.size()) + " (items along axis 0, each fed as a batch of 1)");
  if (data.dtype() != input.dtype) data = data.cast(input.dtype);
  if (!data.is_contiguous()) data = data.clone();
  Shape item_shape = data.shape();
  item_shape[0] = 1;
  std::vector<std::string> shapes = shape_pairs;
  std::string dims;
  for (int64_t d : item_shape) dims += (dims.empty() ? "" : "x") + std::to_string(d);
  shapes.push_back(name + "=" + dims);
  const std::map<std::string, Tensor> others = timing_inputs(graph, input_pairs, shapes).first;
  const int64_t items = std::min(data.dim(0), limit);
  const size_t item_bytes = data.nbytes() / size_t(data.dim(0));
  std::vector<std::map<std::string, Tensor>> samples;
  for (int64_t i = 0; i < items; ++i) {
    std::map<std::string, Tensor> sample = others;
    Tensor item(data.dtype(), item_shape);
    std::memcpy(item.raw_data(), static_cast<const char*>(data.raw_data()) + size_t(i) * item_bytes, item_bytes);
    sample[name] = item;
    samples.push_back(std::move(sample));
  }
  return samples;
}

// "[#####     ]  45%  1234/2743  812 inj/s  ETA 0:02" on stderr, at most ten times a second.
class ProgressBar {
 public:
  void update(int64_t done, int64_t total) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? double(done) / elapsed : 0;
    const int eta = rate > 0 ? int(double(total - done) / rate) : 0;
    const int filled = total ? int(30 * done / total) : 30;
    std::fprintf(stderr, "\r[%s%s] %3d%%  %lld/%lld  %.0f inj/s  ETA %d:%02d ", std::string(size_t(filled), '#').c_str(),
                 std::string(size_t(30 - filled), ' ').c_str(), int(total ? 100 * done / total : 100), (long long)done,
                 (long long)total, rate, eta / 60, eta % 60);
    if (done >= total) std::fprintf(stderr, "\n");
  }

 private:
  std::mutex mutex_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_{};
};

}  // namespace

void add_inject_command(CLI::App& app) {
  struct Options {
    std::string model, data, input_name, fault = "bitflip", site = "any", pattern, metric = "auto";
    std::string error_models = std::string(TESSERA_DATA_DIR) + "/error_models/classes.json";
    std::string json, csv, html;
    std::vector<std::string> inputs, shapes;
    int64_t samples = 10, injections = 0;
    double margin = 0.05, confidence = 0.95;
    uint64_t seed = 1;
    int threads = 0;
    bool full_rerun = false, no_progress = false, no_records = false;
    AbftFlags abft;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("inject", "fault-injection campaign: outcome rates per layer, bit and pattern");
  cmd->add_option("model", o->model, "ONNX model file")->required();
  cmd->add_option("--data", o->data, "inputs as .npy, items along axis 0, each run as a batch of 1 (default: one seeded random input)");
  cmd->add_option("--input-name", o->input_name, "the model input --data feeds (default: the first)");
  cmd->add_option("--samples", o->samples, "use the first K items of --data (default 10; one golden run each)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  cmd->add_option("-i,--input", o->inputs, "NAME=FILE.npy for other inputs (default: seeded random)");
  cmd->add_option("--shape", o->shapes, "NAME=DIMS for random inputs with symbolic dims (default 1)");
  cmd->add_option("--fault", o->fault,
                  "bitflip[:BIT], adjacent:N[@BIT], multibit:N, stuck-at-0[:BIT], stuck-at-1[:BIT], random-value, zero "
                  "(default bitflip)");
  cmd->add_option("--site", o->site,
                  "activation|weight|accumulator|any[:layer=NAME,op=TYPE,element=N] (default any, weighted by size)");
  cmd->add_option("--pattern", o->pattern, "spatial error pattern on activations instead of bit faults: NAME or any");
  cmd->add_option("--error-models", o->error_models, "spatial error-model file (default data/error_models/classes.json)");
  cmd->add_option("-n,--n", o->injections, "injections (default: sized by --margin)")->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  cmd->add_option("--margin", o->margin, "error margin for sizing the campaign (Leveugle et al.; default 0.05)")
      ->check(CLI::Range(1e-6, 0.5));
  cmd->add_option("--confidence", o->confidence, "confidence of the sizing and the intervals (default 0.95)")
      ->check(CLI::Range(0.5, 0.999999));
  cmd->add_option("--seed", o->seed, "campaign seed (default 1): the same seed draws the same faults");
  cmd->add_option("--threads", o->threads, "injections in parallel (default: all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("--metric", o->metric, "critical when: auto|top1|pixels[:FRACTION]|l2[:THRESHOLD] (default auto)");
  cmd->add_option("--json", o->json, "write the summary and every injection as JSON (docs/FAULT_INJECTION.md)");
  cmd->add_option("--csv", o->csv, "write one row per injection as CSV");
  cmd->add_option("--html", o->html, "write an HTML page with charts per layer, bit and pattern");
  cmd->add_flag("--full-rerun", o->full_rerun, "run the whole model for every injection (the baseline of golden-run reuse)");
  cmd->add_flag("--no-progress", o->no_progress, "no progress bar");
  cmd->add_flag("--no-records", o->no_records, "leave the per-injection records out of --json");
  add_abft_flags(cmd, o->abft);
  cmd->callback([o] {
    reliability::CampaignOptions options;
    options.fault = reliability::parse_fault_model(o->fault);
    options.site = reliability::parse_site_selector(o->site);
    options.metric = reliability::parse_outcome_metric(o->metric);
    options.pattern = o->pattern;
    if (!o->pattern.empty()) {
      options.error_models = reliability::load_error_models(o->error_models);
      if (o->pattern != "any") options.error_models.find(o->pattern);  // fails early, naming the known ones
      if (!options.site.site) options.site.site = reliability::FaultSite::activation;
    }
    options.injections = o->injections;
    options.margin = o->margin;
    options.confidence = o->confidence;
    options.seed = o->seed;
    const CampaignProcesses processes;
    options.share = processes.rank();
    options.shares = processes.size();
    // Ranks on one machine share its cores.
    options.threads = o->threads > 0 ? o->threads : std::max(1, ThreadPool::hardware_threads() / processes.local_size());
    options.full_rerun = o->full_rerun;
    options.abft = abft_options(o->abft, 1);  // each injection runs on one thread
    ProgressBar bar;
    if (!o->no_progress && processes.rank() == 0 && isatty(STDERR_FILENO))
      options.progress = [&bar](int64_t done, int64_t total) { bar.update(done, total); };

    std::vector<std::map<std::string, Tensor>> samples;
    reliability::CampaignResult result;
    try {
      const Graph graph = load_onnx_model(o->model);
      samples = campaign_samples(graph, o->data, o->input_name, o->samples, o->inputs, o->shapes);
      result = processes.gather(reliability::run_fault_campaign(graph, samples, options));
    } catch (const std::exception& e) {
      if (processes.size() == 1) throw;
      std::fprintf(stderr, "error: rank %d: %s\n", processes.rank(), e.what());
      processes.abort_all(1);
    }
    if (processes.rank() != 0) return;
    const reliability::CampaignSummary summary = reliability::summarize_campaign(result);
    reliability::CampaignDescription d;
    d.model = o->model;
    d.fault = o->pattern.empty() ? options.fault.text() : "pattern";
    d.site = o->site;
    d.pattern = o->pattern;
    d.metric = o->metric;
    d.abft = o->abft.policy;
    d.seed = o->seed;
    d.margin = o->injections > 0 ? 0 : o->margin;
    d.confidence = o->confidence;
    d.samples = int64_t(samples.size());
    std::cout << reliability::campaign_to_table(result, summary, d);
    if (!o->json.empty()) {
      analysis::write_text_file(o->json, reliability::campaign_to_json(result, summary, d, !o->no_records));
      std::cout << "json: " << o->json << "\n";
    }
    if (!o->csv.empty()) {
      analysis::write_text_file(o->csv, reliability::campaign_to_csv(result));
      std::cout << "csv: " << o->csv << "\n";
    }
    if (!o->html.empty()) {
      analysis::write_text_file(o->html, reliability::campaign_to_html(result, summary, d));
      std::cout << "html: " << o->html << "\n";
    }
  });
}

}  // namespace tessera::cli
