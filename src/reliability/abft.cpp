// The ABFT step observer: per-layer scheme choice from arithmetic intensity, and what happens on
// a detection. The checks themselves run inside the GEMM driver (primitives/gemm_check.cpp).
#include "reliability/abft.h"

#include "analysis/roofline_profiler.h"

namespace tessera::reliability {

using primitives::GemmCheckScheme;

AbftPolicy parse_abft_policy(const std::string& text) {
  if (text == "off") return AbftPolicy::off;
  if (text == "global") return AbftPolicy::global;
  if (text == "thread") return AbftPolicy::thread;
  if (text == "auto") return AbftPolicy::automatic;
  if (text == "tuned") return AbftPolicy::tuned;
  throw Error("unknown ABFT policy '" + text + "' (off, global, thread, auto, tuned)");
}

AbftAction parse_abft_action(const std::string& text) {
  if (text == "report") return AbftAction::report;
  if (text == "correct") return AbftAction::correct;
  if (text == "fail") return AbftAction::fail;
  throw Error("unknown ABFT action '" + text + "' (report, correct, fail)");
}

const char* abft_policy_name(AbftPolicy policy) {
  switch (policy) {
    case AbftPolicy::off: return "off";
    case AbftPolicy::global: return "global";
    case AbftPolicy::thread: return "thread";
    case AbftPolicy::automatic: return "auto";
    case AbftPolicy::tuned: return "tuned";
  }
  return "";
}

const char* abft_action_name(AbftAction action) {
  switch (action) {
    case AbftAction::report: return "report";
    case AbftAction::correct: return "correct";
    case AbftAction::fail: return "fail";
  }
  return "";
}

const char* abft_scheme_name(GemmCheckScheme scheme) {
  switch (scheme) {
    case GemmCheckScheme::global: return "global";
    case GemmCheckScheme::thread: return "thread";
    case GemmCheckScheme::hook_only: break;
  }
  return "none";
}

bool is_gemm_backed(const std::string& op_type) {
  return op_type == "Conv" || op_type == "Gemm" || op_type == "MatMul" || op_type == "ConvTranspose";
}

AbftMonitor::AbftMonitor(AbftOptions options) : options_(std::move(options)) {}

AbftMonitor::Entry& AbftMonitor::entry(const StepInfo& step) {
  auto it = entries_.find(step.step_index);
  if (it != entries_.end()) return *it->second;
  auto e = std::make_unique<Entry>();
  AbftLayer& layer = e->layer;
  const analysis::LayerProfile described = analysis::describe_step(step);
  layer.step = step.step_index;
  layer.name = described.name;
  layer.op_type = described.op_type;
  layer.flops = described.flops;
  layer.bytes = described.bytes;
  layer.intensity = described.intensity;
  const double balance = options_.roof.balance();
  layer.compute_bound = layer.flops > 0 && balance > 0 && layer.intensity >= balance;
  layer.protected_layer = options_.policy != AbftPolicy::off && is_gemm_backed(layer.op_type);
  switch (options_.policy) {
    case AbftPolicy::global: layer.scheme = GemmCheckScheme::global; break;
    case AbftPolicy::thread: layer.scheme = GemmCheckScheme::thread; break;
    case AbftPolicy::tuned: {
      auto tuned = options_.tuned_schemes.find(layer.name);
      if (tuned != options_.tuned_schemes.end()) {
        layer.scheme = tuned->second;
        break;
      }
      [[fallthrough]];
    }
    default:
      // Compute-bound layers have idle memory bandwidth but busy FMA units: a global check costs a
      // pass over the operands, small next to the FLOPs. Memory-bound layers have idle FMA units,
      // which the thread-level check's extra arithmetic uses for nearly nothing, as long as its
      // per-tile sums of B come from plan time: where B is made per call (a convolution's
      // activations), the GEMM driver runs the global check instead (see GemmCheck).
      layer.scheme = layer.compute_bound ? GemmCheckScheme::global : GemmCheckScheme::thread;
      e->check.thread_only_with_plan_time_b = true;
  }
  e->check.scheme = layer.scheme;
  e->check.safety_factor = options_.safety_factor;
  e->check.probabilistic_lambda = options_.probabilistic_lambda;
  e->check.counters = &layer.counters;
  auto hook = fault_hooks_.find(step.step_index);
  if (hook != fault_hooks_.end()) {
    e->check.fault_hook = hook->second.first;
    e->check.fault_context = hook->second.second;
  }
  return *entries_.emplace(step.step_index, std::move(e)).first->second;
}

const primitives::GemmCheck* AbftMonitor::gemm_check(const StepInfo& step) {
  Entry& e = entry(step);
  e.attempts = 0;
  return e.layer.protected_layer ? &e.check : nullptr;
}

void AbftMonitor::before_step(const StepInfo& step) {
  Entry& e = entry(step);
  e.detections_before = e.layer.counters.detections.load();
}

bool AbftMonitor::rerun_step(const StepInfo& step) {
  Entry& e = entry(step);
  if (!e.layer.protected_layer || e.layer.counters.detections.load() == e.detections_before) return false;
  AbftLayer& layer = e.layer;
  ++layer.detected_runs;
  const std::string where = layer.op_type + " '" + layer.name + "' (step " + std::to_string(layer.step) + ")";
  const int64_t rows = layer.counters.detections.load() - e.detections_before;
  switch (options_.action) {
    case AbftAction::report:
      reports_.push_back("ABFT: " + std::to_string(rows) + " checksum mismatch(es) in " + where);
      return false;
    case AbftAction::fail:
      throw AbftError("ABFT: silent data corruption detected in " + where + ": " + std::to_string(rows) +
                      " checksum row(s) over the bound");
    case AbftAction::correct:
      if (e.attempts >= options_.max_recomputations)
        throw AbftError("ABFT: " + where + " still fails its checksums after " + std::to_string(e.attempts) +
                        " recomputation(s)");
      ++e.attempts;
      ++layer.recomputations;
      return true;
  }
  return false;
}

void AbftMonitor::set_fault_hook(int step, primitives::GemmFaultHook hook, void* context) {
  if (hook)
    fault_hooks_[step] = {hook, context};
  else
    fault_hooks_.erase(step);
  auto it = entries_.find(step);
  if (it != entries_.end()) {
    it->second->check.fault_hook = hook;
    it->second->check.fault_context = context;
  }
}

std::vector<const AbftLayer*> AbftMonitor::layers() const {
  std::vector<const AbftLayer*> result;
  for (const auto& [step, e] : entries_) result.push_back(&e->layer);
  return result;
}

int64_t AbftMonitor::checks() const {
  int64_t total = 0;
  for (const auto& [step, e] : entries_) total += e->layer.counters.checks.load();
  return total;
}

int64_t AbftMonitor::detections() const {
  int64_t total = 0;
  for (const auto& [step, e] : entries_) total += e->layer.counters.detections.load();
  return total;
}

int64_t AbftMonitor::recomputations() const {
  int64_t total = 0;
  for (const auto& [step, e] : entries_) total += e->layer.recomputations;
  return total;
}

float AbftMonitor::worst_clean_ratio() const {
  float worst = 0;
  for (const auto& [step, e] : entries_) worst = std::max(worst, e->layer.counters.worst_clean_ratio.load());
  return worst;
}

void AbftMonitor::reset_counters() {
  for (auto& [step, e] : entries_) {
    e->layer.counters.reset();
    e->layer.recomputations = 0;
    e->layer.detected_runs = 0;
  }
  reports_.clear();
}

}  // namespace tessera::reliability
