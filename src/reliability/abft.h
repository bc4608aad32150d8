// Arithmetic-intensity-guided ABFT for a session: a step observer that puts every GEMM-backed
// layer (Conv, Gemm, MatMul, ConvTranspose) under a global or thread-level checksum check,
// chosen per layer, and reports, recomputes or fails on a detection.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "analysis/machine_ceilings.h"
#include "primitives/primitives.h"
#include "tessera/session.h"

namespace tessera::reliability {

// off: no checks; global / thread: that scheme on every layer; automatic: global for layers at or
// above the machine's balance point (compute-bound), thread-level below it; tuned: per layer the
// scheme that measured faster (see tune_abft_schemes).
enum class AbftPolicy { off, global, thread, automatic, tuned };
// On a detection: count it and go on; run the layer again (up to max_recomputations times, then
// fail); or stop the run with an error naming the layer.
enum class AbftAction { report, correct, fail };

AbftPolicy parse_abft_policy(const std::string& text);  // off|global|thread|auto|tuned, else Error
AbftAction parse_abft_action(const std::string& text);  // report|correct|fail, else Error
const char* abft_policy_name(AbftPolicy policy);
const char* abft_action_name(AbftAction action);
const char* abft_scheme_name(primitives::GemmCheckScheme scheme);

struct AbftOptions {
  AbftPolicy policy = AbftPolicy::automatic;
  AbftAction action = AbftAction::correct;
  float safety_factor = 1.f;  // multiplies the bound (docs/ABFT.md)
  // Higham-Mary probabilistic bound with this lambda (a clean check exceeds it with probability
  // at most 2 exp(-lambda^2 / 2) = 2.5e-14 for 8); 0 for the rigorous worst-case bound.
  float probabilistic_lambda = 8.f;
  int max_recomputations = 2;
  // The machine's ceilings for the session's thread count: the balance point for `automatic`.
  analysis::Roof roof;
  // Per layer name, for `tuned` (layers missing from it fall back to `automatic`).
  std::map<std::string, primitives::GemmCheckScheme> tuned_schemes;
};

// Per-layer state and counters.
struct AbftLayer {
  int step = 0;
  std::string name, op_type;
  double flops = 0, bytes = 0, intensity = 0;
  bool compute_bound = false;
  bool protected_layer = false;  // a GEMM-backed op under a check
  primitives::GemmCheckScheme scheme = primitives::GemmCheckScheme::global;
  primitives::GemmCheckCounters counters;
  int64_t recomputations = 0;
  int64_t detected_runs = 0;  // runs of this layer with at least one detection
};

// Thrown by the `fail` action (and by `correct` when recomputation does not clear the error).
class AbftError : public Error {
 public:
  using Error::Error;
};

bool is_gemm_backed(const std::string& op_type);

class AbftMonitor : public StepObserver {
 public:
  explicit AbftMonitor(AbftOptions options);

  const primitives::GemmCheck* gemm_check(const StepInfo& step) override;
  void before_step(const StepInfo& step) override;
  bool rerun_step(const StepInfo& step) override;

  // Injection: calls `hook` on every register tile of this step's GEMMs (after the layer is first
  // seen). nullptr removes it.
  void set_fault_hook(int step, primitives::GemmFaultHook hook, void* context);

  const AbftOptions& options() const { return options_; }
  // Layers seen so far, by step index (entries for steps not yet run are absent).
  std::vector<const AbftLayer*> layers() const;
  int64_t checks() const;
  int64_t detections() const;
  int64_t recomputations() const;
  float worst_clean_ratio() const;  // largest |difference| / bound on passing rows, all layers
  // Messages of the `report` action (one per detected layer run), oldest first.
  const std::vector<std::string>& reports() const { return reports_; }
  void reset_counters();

 private:
  struct Entry {
    AbftLayer layer;
    primitives::GemmCheck check;
    int64_t detections_before = 0;
    int attempts = 0;
  };
  Entry& entry(const StepInfo& step);
  AbftOptions options_;
  std::map<int, std::unique_ptr<Entry>> entries_;
  std::map<int, std::pair<primitives::GemmFaultHook, void*>> fault_hooks_;
  std::vector<std::string> reports_;
};

}  // namespace tessera::reliability
