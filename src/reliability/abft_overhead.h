// Measures what ABFT costs: every policy (off, global, thread, auto) timed per layer and end to
// end in the same run, the per-layer `tuned` choice derived from it, and the JSON for reports.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "reliability/abft.h"

namespace tessera::reliability {

struct AbftLayerOverhead {
  int step = 0;
  std::string name, op_type;
  double intensity = 0;
  bool compute_bound = false, protected_layer = false;
  primitives::GemmCheckScheme auto_scheme = primitives::GemmCheckScheme::global;
  primitives::GemmCheckScheme tuned_scheme = primitives::GemmCheckScheme::global;
  std::map<std::string, double> time_ms;  // by policy name: median per-layer time
};

struct AbftOverheadReport {
  std::string model;
  int threads = 1, iterations = 0;
  analysis::Roof roof;
  std::map<std::string, double> latency_ms;  // by policy name (off, global, thread, auto, tuned)
  std::vector<AbftLayerOverhead> layers;
  // Clean-run statistics of the checked runs: rows checked, detections (false positives, must be
  // 0), and the largest |difference| / bound seen.
  int64_t checks = 0, detections = 0;
  float worst_clean_ratio = 0;
  double overhead_percent(const std::string& policy) const;
  // Kosaian and Rashmi's metric: global's overhead over auto's.
  double auto_reduction_vs_global() const;
};

// Runs `warmup` untimed runs, then `rounds` rounds in which every policy runs `iterations`
// times (policies alternate, so machine noise hits all alike). `base` gives the action, bound
// and roof. The `tuned` policy is then timed with the per-layer faster scheme.
AbftOverheadReport measure_abft_overheads(Session& session, const std::map<std::string, Tensor>& inputs,
                                          const AbftOptions& base, int warmup, int rounds, int iterations);

std::string abft_report_to_json(const AbftOverheadReport& report);
std::string abft_report_to_table(const AbftOverheadReport& report);

// The tuned choice per layer name, as JSON {"layer": "global"|"thread"}, for --abft tuned.
std::string tuned_schemes_to_json(const std::map<std::string, primitives::GemmCheckScheme>& schemes);
std::map<std::string, primitives::GemmCheckScheme> tuned_schemes_from_json(const std::string& text);

}  // namespace tessera::reliability
