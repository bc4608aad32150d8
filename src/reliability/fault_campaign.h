// Fault-injection campaigns: inject faults into a model's weights, operator outputs or GEMM
// accumulators, run the rest of the model, and classify what the fault did to the answer
// (masked, tolerable or critical silent data corruption, detected by ABFT, non-finite).
//
// Speed comes from the golden run: every value of the clean run is kept, an injection re-runs
// only the steps downstream of the fault whose inputs differ from the golden ones (a step whose
// output comes out bit-identical to the golden one stops the spread there), and injections run
// in parallel, one model copy per thread. Every injection draws from its own random stream
// (seed, index), so results do not depend on threads or on how the campaign is split.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "reliability/abft.h"
#include "reliability/fault_models.h"
#include "reliability/spatial_patterns.h"
#include "tessera/graph.h"

namespace tessera::reliability {

enum class FaultSite { weight, activation, accumulator };
const char* fault_site_name(FaultSite site);

// Where faults go: a site kind (or any, weighted by size), optionally narrowed to a layer (node
// name), an op type, and a fixed element index.
struct SiteSelector {
  std::optional<FaultSite> site;  // empty: any kind
  std::string layer, op_type;
  int64_t element = -1;
};
// "activation", "weight", "accumulator", "any", each optionally followed by ":" and
// comma-separated layer=NAME, op=TYPE, element=INDEX; e.g. "accumulator:op=Conv".
SiteSelector parse_site_selector(const std::string& text);

enum class Outcome { masked, tolerable_sdc, critical_sdc, detected, non_finite };
const char* outcome_name(Outcome outcome);
constexpr int kOutcomeCount = 5;

// How a changed output is judged critical: classification (top-1 of the first output's last
// axis changed), segmentation (the share of pixels whose argmax over the channel axis changed
// exceeds `threshold`), or any model (relative L2 distance of the first output above threshold).
struct OutcomeMetric {
  enum class Kind { automatic, top1, pixels, relative_l2 };
  Kind kind = Kind::automatic;  // top1 for rank <= 2 outputs, pixels for rank 4, else relative_l2
  double threshold = 0;
};
// "auto", "top1", "pixels[:FRACTION]" (default 0.01), "l2[:THRESHOLD]" (default 1e-3).
OutcomeMetric parse_outcome_metric(const std::string& text);

struct CampaignOptions {
  FaultModel fault;
  // Spatial patterns on activations instead of bit faults: a pattern name, or "any" to draw
  // one by the file's weights; empty for bit-level faults.
  std::string pattern;
  ErrorModelSet error_models;
  SiteSelector site;
  int64_t injections = 0;  // 0: sized from margin and confidence
  double margin = 0.01, confidence = 0.95;
  uint64_t seed = 1;
  int threads = 0;  // 0: all hardware threads
  // Run only share `share` of `shares` equal, contiguous shares of the campaign's injections
  // (one process's part of a campaign split over processes, e.g. MPI ranks).
  int share = 0, shares = 1;
  OutcomeMetric metric;
  // ABFT during the injected runs (action is forced to report: a detection is an outcome).
  std::optional<AbftOptions> abft;
  // The baseline the golden-run reuse is measured against: every injection runs the whole model
  // (same faults, same outcomes, no reuse).
  bool full_rerun = false;
  // Called from worker threads after each injection (done so far, total); may be empty.
  std::function<void(int64_t, int64_t)> progress;
};

// One injection and what it did.
struct InjectionRecord {
  int64_t index = 0;
  int sample = 0;           // which input of the data set
  int step = -1;            // executed step (after fusion) that was hit
  std::string layer, op_type;
  FaultSite site = FaultSite::activation;
  int64_t element = -1;     // first corrupted element (flat index in the site's tensor)
  int64_t elements = 0;     // elements corrupted
  int bit = -1;             // lowest changed bit of the first element (bit faults)
  std::string pattern, value_class;  // spatial faults
  double before = 0, after = 0;      // first element's value, as a number
  Outcome effect = Outcome::masked;  // what the output shows
  Outcome outcome = Outcome::masked; // effect, or detected when ABFT flagged it
  double output_error = 0;           // relative L2 distance of the first output from golden
  int steps_run = 0;                 // steps re-executed for this injection
};

struct CampaignResult {
  std::vector<InjectionRecord> records;  // by index
  int64_t planned = 0;                   // injections of the whole campaign
  double population = 0;                 // fault population (Leveugle's N)
  double seconds = 0;                    // wall time of the injections (golden runs excluded)
  double golden_seconds = 0;
  int threads = 1;
  int steps = 0;                         // steps of the model's plan
  std::vector<std::string> golden_top1;  // per sample, for reports
};

// Leveugle et al. (DATE 2009): injections for margin e at confidence (z) over a population N,
// p = 0.5: n = N / (1 + e^2 (N - 1) / (z^2 p (1 - p))).
int64_t leveugle_sample_size(double population, double margin, double confidence);
double normal_quantile_two_sided(double confidence);  // z with P(|Z| <= z) = confidence
// Wilson score interval for k successes in n trials.
std::pair<double, double> wilson_interval(int64_t k, int64_t n, double confidence);

// The campaign over `samples` (each a full input map for one run; batch 1 in practice).
CampaignResult run_fault_campaign(const Graph& model, const std::vector<std::map<std::string, Tensor>>& samples,
                                  const CampaignOptions& options);

}  // namespace tessera::reliability
