// ABFT overhead measurement: policies alternated round by round, per-layer medians from the
// roofline profiler's step timer, end-to-end medians from wall-clock runs.
#include "reliability/abft_overhead.h"

#include <chrono>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "analysis/roofline_profiler.h"

namespace tessera::reliability {

using primitives::GemmCheckScheme;

double AbftOverheadReport::overhead_percent(const std::string& policy) const {
  auto off = latency_ms.find("off"), p = latency_ms.find(policy);
  if (off == latency_ms.end() || p == latency_ms.end() || off->second <= 0) return 0;
  return (p->second / off->second - 1) * 100;
}

double AbftOverheadReport::auto_reduction_vs_global() const {
  const double a = overhead_percent("auto"), g = overhead_percent("global");
  return a > 0 ? g / a : 0;
}

namespace {

struct PolicyRun {
  std::string name;
  AbftOptions options;
  std::unique_ptr<AbftMonitor> monitor;
  analysis::RooflineProfiler profiler;
  std::vector<double> latencies;
};

void run_policy(Session& session, const std::map<std::string, Tensor>& inputs, PolicyRun& run, int iterations) {
  session.clear_observers();
  if (run.monitor) session.add_observer(run.monitor.get());
  session.add_observer(&run.profiler);
  for (int i = 0; i < iterations; ++i) {
    run.profiler.begin_run();
    const auto start = std::chrono::steady_clock::now();
    session.run(inputs);
    run.latencies.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    run.profiler.end_run();
  }
  session.clear_observers();
}

}  // namespace

AbftOverheadReport measure_abft_overheads(Session& session, const std::map<std::string, Tensor>& inputs,
                                          const AbftOptions& base, int warmup, int rounds, int iterations) {
  AbftOverheadReport report;
  report.threads = session.thread_pool().size();
  report.iterations = rounds * iterations;
  report.roof = base.roof;
  for (int i = 0; i < warmup; ++i) session.run(inputs);

  std::vector<std::unique_ptr<PolicyRun>> runs;
  auto add = [&](const std::string& name, AbftPolicy policy) {
    auto run = std::make_unique<PolicyRun>();
    run->name = name;
    run->options = base;
    run->options.policy = policy;
    if (policy != AbftPolicy::off) run->monitor = std::make_unique<AbftMonitor>(run->options);
    runs.push_back(std::move(run));
  };
  add("off", AbftPolicy::off);
  add("global", AbftPolicy::global);
  add("thread", AbftPolicy::thread);
  add("auto", AbftPolicy::automatic);
  for (int r = 0; r < rounds; ++r)
    for (auto& run : runs) run_policy(session, inputs, *run, iterations);

  std::map<std::string, analysis::ModelProfile> profiles;
  for (auto& run : runs) profiles[run->name] = run->profiler.summarize(base.roof);
  // Per layer: the faster of global and thread for the tuned policy.
  auto named = [&](const std::string& name) -> PolicyRun& {
    for (auto& run : runs)
      if (run->name == name) return *run;
    throw Error("ABFT overhead: no run named " + name);
  };
  const AbftMonitor& automatic = *named("auto").monitor;
  std::map<int, const AbftLayer*> auto_layers;
  for (const AbftLayer* layer : automatic.layers()) auto_layers[layer->step] = layer;
  std::map<std::string, GemmCheckScheme> tuned;
  const auto& off_layers = profiles["off"].layers;
  for (size_t i = 0; i < off_layers.size(); ++i) {
    AbftLayerOverhead layer;
    layer.step = off_layers[i].index;
    layer.name = off_layers[i].name;
    layer.op_type = off_layers[i].op_type;
    layer.intensity = off_layers[i].intensity;
    auto it = auto_layers.find(layer.step);
    if (it != auto_layers.end()) {
      layer.compute_bound = it->second->compute_bound;
      layer.protected_layer = it->second->protected_layer;
      layer.auto_scheme = it->second->scheme;
      // Thread-level chosen, but the GEMMs' B was made per call: the global check ran.
      if (layer.auto_scheme == GemmCheckScheme::thread && it->second->counters.thread_fallbacks.load() > 0)
        layer.auto_scheme = GemmCheckScheme::global;
    }
    for (const auto& [name, profile] : profiles)
      if (i < profile.layers.size()) layer.time_ms[name] = profile.layers[i].time_ms;
    layer.tuned_scheme = layer.time_ms["thread"] < layer.time_ms["global"] ? GemmCheckScheme::thread
                                                                            : GemmCheckScheme::global;
    if (layer.protected_layer) tuned[layer.name] = layer.tuned_scheme;
    report.layers.push_back(layer);
  }
  // The tuned policy, timed the same way (its own rounds, after the others).
  add("tuned", AbftPolicy::tuned);
  runs.back()->options.tuned_schemes = tuned;
  runs.back()->monitor = std::make_unique<AbftMonitor>(runs.back()->options);
  for (int r = 0; r < rounds; ++r) {
    run_policy(session, inputs, named("off"), iterations);  // off again beside it
    run_policy(session, inputs, *runs.back(), iterations);
  }
  const analysis::ModelProfile tuned_profile = runs.back()->profiler.summarize(base.roof);
  for (size_t i = 0; i < report.layers.size() && i < tuned_profile.layers.size(); ++i)
    report.layers[i].time_ms["tuned"] = tuned_profile.layers[i].time_ms;

  for (auto& run : runs) {
    report.latency_ms[run->name] = analysis::median(run->latencies);
    if (!run->monitor) continue;
    report.checks += run->monitor->checks();
    report.detections += run->monitor->detections();
    report.worst_clean_ratio = std::max(report.worst_clean_ratio, run->monitor->worst_clean_ratio());
  }
  return report;
}

std::string abft_report_to_json(const AbftOverheadReport& r) {
  nlohmann::ordered_json j;
  j["model"] = r.model;
  j["threads"] = r.threads;
  j["iterations"] = r.iterations;
  j["balance_flop_per_byte"] = r.roof.balance();
  j["peak_gflops"] = r.roof.peak_gflops;
  j["bandwidth_gbs"] = r.roof.bandwidth_gbs;
  for (const auto& [policy, ms] : r.latency_ms) {
    j["latency_ms"][policy] = ms;
    if (policy != "off") j["overhead_percent"][policy] = r.overhead_percent(policy);
  }
  j["auto_reduction_vs_global"] = r.auto_reduction_vs_global();
  j["clean_runs"] = {{"checks", r.checks},
                     {"detections", r.detections},
                     {"worst_difference_over_bound", r.worst_clean_ratio},
                     {"bound_over_worst_difference", r.worst_clean_ratio > 0 ? 1.0 / r.worst_clean_ratio : 0.0}};
  for (const auto& l : r.layers) {
    nlohmann::ordered_json layer;
    layer["step"] = l.step;
    layer["name"] = l.name;
    layer["op"] = l.op_type;
    layer["intensity"] = l.intensity;
    layer["bound"] = l.compute_bound ? "compute" : "memory";
    layer["protected"] = l.protected_layer;
    if (l.protected_layer) {
      layer["auto_scheme"] = abft_scheme_name(l.auto_scheme);
      layer["tuned_scheme"] = abft_scheme_name(l.tuned_scheme);
    }
    for (const auto& [policy, ms] : l.time_ms) layer["time_ms"][policy] = ms;
    j["layers"].push_back(layer);
  }
  return j.dump(2);
}

std::string abft_report_to_table(const AbftOverheadReport& r) {
  std::string out = fmt::format("model {}  threads {}  runs per policy {}  balance {:.2f} FLOP/byte\n", r.model,
                                r.threads, r.iterations, r.roof.balance());
  out += fmt::format("{:>4} {:<34} {:<8} {:>8} {:<7} {:<7} {:<7} {:>9} {:>9} {:>9} {:>9} {:>9}\n", "#", "name", "op",
                     "FLOP/B", "bound", "auto", "tuned", "off ms", "global", "thread", "auto", "tuned");
  for (const auto& l : r.layers) {
    if (!l.protected_layer) continue;
    std::string name = l.name.size() > 34 ? l.name.substr(0, 33) + "~" : l.name;
    auto t = [&](const char* p) {
      auto it = l.time_ms.find(p);
      return it == l.time_ms.end() ? 0.0 : it->second;
    };
    out += fmt::format("{:>4} {:<34} {:<8} {:>8.2f} {:<7} {:<7} {:<7} {:>9.4f} {:>9.4f} {:>9.4f} {:>9.4f} {:>9.4f}\n",
                       l.step, name, l.op_type, l.intensity, l.compute_bound ? "compute" : "memory",
                       abft_scheme_name(l.auto_scheme), abft_scheme_name(l.tuned_scheme), t("off"), t("global"),
                       t("thread"), t("auto"), t("tuned"));
  }
  out += "end to end (median ms, overhead over off):\n";
  for (const char* policy : {"off", "global", "thread", "auto", "tuned"}) {
    auto it = r.latency_ms.find(policy);
    if (it == r.latency_ms.end()) continue;
    out += fmt::format("  {:<7} {:>9.3f} ms", policy, it->second);
    if (std::string(policy) != "off") out += fmt::format("  {:+.2f}%", r.overhead_percent(policy));
    out += "\n";
  }
  out += fmt::format("auto's overhead reduction against global: {:.2f}x\n", r.auto_reduction_vs_global());
  out += fmt::format("clean runs: {} row checks, {} detections, worst |difference| / bound {:.3e}\n", r.checks,
                     r.detections, r.worst_clean_ratio);
  return out;
}

std::string tuned_schemes_to_json(const std::map<std::string, GemmCheckScheme>& schemes) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [name, scheme] : schemes) j[name] = abft_scheme_name(scheme);
  return j.dump(2);
}

std::map<std::string, GemmCheckScheme> tuned_schemes_from_json(const std::string& text) {
  std::map<std::string, GemmCheckScheme> result;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw Error(std::string("ABFT tuned schemes: not JSON: ") + e.what());
  }
  if (!j.is_object()) throw Error("ABFT tuned schemes: expected an object {\"layer\": \"global\"|\"thread\"}");
  for (const auto& [name, value] : j.items()) {
    const std::string s = value.is_string() ? value.get<std::string>() : "";
    if (s != "global" && s != "thread") throw Error("ABFT tuned schemes: layer '" + name + "' has no valid scheme");
    result[name] = s == "global" ? GemmCheckScheme::global : GemmCheckScheme::thread;
  }
  return result;
}

}  // namespace tessera::reliability
