// The fault-injection campaign engine: site inventory, golden runs, replays from the injected
// step with golden reuse, outcome classification, statistics.
#include "reliability/fault_campaign.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>
#include <thread>

#include "runtime/execution_plan.h"
#include "tessera/session.h"

namespace tessera::reliability {

// ------------------------------------------------------------------------------------ parsing

const char* fault_site_name(FaultSite site) {
  switch (site) {
    case FaultSite::weight: return "weight";
    case FaultSite::activation: return "activation";
    case FaultSite::accumulator: return "accumulator";
  }
  return "?";
}

const char* outcome_name(Outcome outcome) {
  switch (outcome) {
    case Outcome::masked: return "masked";
    case Outcome::tolerable_sdc: return "tolerable_sdc";
    case Outcome::critical_sdc: return "critical_sdc";
    case Outcome::detected: return "detected";
    case Outcome::non_finite: return "non_finite";
  }
  return "?";
}

SiteSelector parse_site_selector(const std::string& text) {
  const size_t colon = text.find(':');
  const std::string kind = text.substr(0, colon);
  SiteSelector s;
  if (kind == "activation")
    s.site = FaultSite::activation;
  else if (kind == "weight")
    s.site = FaultSite::weight;
  else if (kind == "accumulator")
    s.site = FaultSite::accumulator;
  else if (kind != "any")
    throw Error("unknown fault site '" + text + "' (activation, weight, accumulator or any, then :layer=NAME,op=TYPE,element=N)");
  if (colon == std::string::npos) return s;
  std::string rest = text.substr(colon + 1);
  size_t start = 0;
  while (start <= rest.size()) {
    const size_t comma = rest.find(',', start);
    const std::string item = rest.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq + 1 == item.size())
      throw Error("fault site '" + text + "': expected key=value, got '" + item + "'");
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "layer") {
      s.layer = value;
    } else if (key == "op") {
      s.op_type = value;
    } else if (key == "element") {
      if (value.size() > 15 || value.find_first_not_of("0123456789") != std::string::npos)
        throw Error("fault site '" + text + "': element must be a non-negative integer");
      s.element = std::stoll(value);
    } else {
      throw Error("fault site '" + text + "': unknown key '" + key + "' (layer, op, element)");
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return s;
}

OutcomeMetric parse_outcome_metric(const std::string& text) {
  const size_t colon = text.find(':');
  const std::string kind = text.substr(0, colon);
  OutcomeMetric m;
  auto threshold = [&](double fallback) {
    if (colon == std::string::npos) return fallback;
    try {
      size_t used = 0;
      const std::string arg = text.substr(colon + 1);
      double v = std::stod(arg, &used);
      if (used != arg.size() || !(v >= 0) || !std::isfinite(v)) throw std::invalid_argument("");
      return v;
    } catch (const std::exception&) {
      throw Error("metric '" + text + "': the threshold must be a non-negative number");
    }
  };
  if (kind == "auto" && colon == std::string::npos) {
    m.kind = OutcomeMetric::Kind::automatic;
  } else if (kind == "top1" && colon == std::string::npos) {
    m.kind = OutcomeMetric::Kind::top1;
  } else if (kind == "pixels") {
    m.kind = OutcomeMetric::Kind::pixels;
    m.threshold = threshold(0.01);
  } else if (kind == "l2") {
    m.kind = OutcomeMetric::Kind::relative_l2;
    m.threshold = threshold(1e-3);
  } else {
    throw Error("unknown metric '" + text + "' (auto, top1, pixels[:FRACTION], l2[:THRESHOLD])");
  }
  return m;
}

// --------------------------------------------------------------------------------- statistics

double normal_quantile_two_sided(double confidence) {
  if (!(confidence > 0 && confidence < 1)) throw Error("confidence must be between 0 and 1");
  // Solve erf(z / sqrt 2) = confidence by bisection (erf is monotone; 60 halvings are exact
  // to double precision).
  double lo = 0, hi = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (std::erf(mid / std::sqrt(2.0)) < confidence ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

int64_t leveugle_sample_size(double population, double margin, double confidence) {
  if (!(margin > 0 && margin < 1)) throw Error("margin must be between 0 and 1");
  if (!(population >= 1)) return 0;
  const double z = normal_quantile_two_sided(confidence), p = 0.5;
  const double n = population / (1 + margin * margin * (population - 1) / (z * z * p * (1 - p)));
  return int64_t(std::ceil(n - 1e-9));
}

std::pair<double, double> wilson_interval(int64_t k, int64_t n, double confidence) {
  if (n <= 0) return {0, 1};
  const double z = normal_quantile_two_sided(confidence);
  const double p = double(k) / double(n), nn = double(n), z2 = z * z;
  const double center = (p + z2 / (2 * nn)) / (1 + z2 / nn);
  const double half = z / (1 + z2 / nn) * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

namespace {

// ------------------------------------------------------------------------------------- sites

bool is_injectable(DType dtype) {
  return dtype == DType::f32 || dtype == DType::f16 || dtype == DType::bf16 || dtype == DType::i8 ||
         dtype == DType::u8;
}

struct Site {
  FaultSite kind = FaultSite::activation;
  int step = 0;         // activation: producer; weight: first consumer; accumulator: the GEMM step
  int value = -1;       // activation, weight: the value id
  int input_index = -1; // weight: input slot of `step`
  int64_t size = 0;     // elements
  std::vector<std::pair<int, int>> consumers;  // weight: (step, input slot) of every reader
};

// Counts every GEMM-backed step's accumulator elements (the tiles the fault hook sees).
class AccumulatorCensus : public StepObserver {
 public:
  explicit AccumulatorCensus(int steps) : counts_(size_t(steps), 0), checks_(size_t(steps)) {}
  const primitives::GemmCheck* gemm_check(const StepInfo& step) override {
    if (!is_gemm_backed(step.node->op_type)) return nullptr;
    Slot& slot = checks_[size_t(step.step_index)];
    slot.count = &counts_[size_t(step.step_index)];
    slot.check.scheme = primitives::GemmCheckScheme::hook_only;
    slot.check.counters = &slot.counters;
    slot.check.fault_hook = &count_tile;
    slot.check.fault_context = slot.count;
    return &slot.check;
  }
  const std::vector<int64_t>& counts() const { return counts_; }

 private:
  static void count_tile(void* context, int64_t, int64_t, int rows, int cols, float*, int64_t) {
    // One thread runs the census plan, so a plain increment is enough.
    *static_cast<int64_t*>(context) += int64_t(rows) * cols;
  }
  struct Slot {
    primitives::GemmCheck check;
    primitives::GemmCheckCounters counters;
    int64_t* count = nullptr;
  };
  std::vector<int64_t> counts_;
  std::vector<Slot> checks_;
};

// Corrupts accumulator element `target` (in the order the step's tiles are finished) of one step.
struct AccumulatorFault {
  int64_t target = 0, seen = 0;
  const FaultModel* model = nullptr;
  Rng* rng = nullptr;
  bool hit = false;
  ElementFault fault;
  static void hook(void* context, int64_t, int64_t, int rows, int cols, float* c, int64_t ldc) {
    auto* self = static_cast<AccumulatorFault*>(context);
    const int64_t tile = int64_t(rows) * cols;
    if (!self->hit && self->target >= self->seen && self->target < self->seen + tile) {
      const int64_t local = self->target - self->seen;
      float* element = c + (local / cols) * ldc + local % cols;
      uint32_t bits;
      std::memcpy(&bits, element, 4);
      self->fault.element = self->target;
      self->fault.before = bits;
      self->fault.after = apply_fault_to_bits(bits, 32, *self->model, *self->rng);
      bits = uint32_t(self->fault.after);
      std::memcpy(element, &bits, 4);
      self->hit = true;
    }
    self->seen += tile;
  }
};

// Gives the target step a hook-only check when no ABFT monitor is there to carry the hook.
class HookOnlyObserver : public StepObserver {
 public:
  const primitives::GemmCheck* gemm_check(const StepInfo& step) override {
    return step.step_index == step_ ? &check_ : nullptr;
  }
  void arm(int step, AccumulatorFault* fault) {
    step_ = step;
    check_.scheme = primitives::GemmCheckScheme::hook_only;
    check_.counters = &counters_;
    check_.fault_hook = &AccumulatorFault::hook;
    check_.fault_context = fault;
  }
  void disarm() { step_ = -1; }

 private:
  int step_ = -1;
  primitives::GemmCheck check_;
  primitives::GemmCheckCounters counters_;
};

double element_as_double(DType dtype, uint64_t pattern) {
  Tensor t(dtype, {1});
  std::memcpy(t.raw_data(), &pattern, dtype_size(dtype));
  return t.value_as_double(0);
}

bool all_finite(const Tensor& t) {
  if (t.dtype() != DType::f32) return true;
  const float* x = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}

// Index of the largest of n values at x with stride (first one on ties; NaN never wins).
int64_t argmax(const float* x, int64_t n, int64_t stride) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i * stride] > x[best * stride]) best = i;
  return best;
}

// The campaign's shared, read-only state and the per-thread workers.
class CampaignRunner {
 public:
  CampaignRunner(const Graph& model, const std::vector<std::map<std::string, Tensor>>& samples,
                 const CampaignOptions& options)
      : samples_(samples), options_(options) {
    if (samples_.empty()) throw Error("fault campaign: no input samples");
    Session session(model, SessionOptions{1, true});
    std::map<std::string, Shape> shapes;
    for (const auto& [name, t] : samples_[0]) shapes[name] = t.shape();
    session.prepare(shapes);
    graph_ = session.planned_graph();
    golden_ = std::make_unique<ExecutionPlan>(graph_, golden_pool_, PlanOptions{true});
    steps_ = golden_->step_count();
    analyze_graph();
  }

  CampaignResult run();

 private:
  struct Worker {
    ThreadPool pool{1};
    std::unique_ptr<ExecutionPlan> plan;
    std::vector<Tensor> own;  // the plan's own buffers, per value
    std::unique_ptr<AbftMonitor> monitor;
    HookOnlyObserver hook_only;
    std::vector<StepObserver*> observers;
    std::vector<char> dirty;
  };

  void analyze_graph();
  void build_sites(const std::vector<int64_t>& accumulator_counts);
  std::unique_ptr<Worker> make_worker();
  std::vector<StepObserver*> golden_observers(std::unique_ptr<AbftMonitor>& monitor);
  InjectionRecord inject(Worker& w, int64_t index, int sample);
  void classify(Worker& w, InjectionRecord& record);
  const Site& draw_site(Rng& rng, int64_t& element) const;

  const std::vector<std::map<std::string, Tensor>>& samples_;
  CampaignOptions options_;
  Graph graph_;
  ThreadPool golden_pool_{1};
  std::unique_ptr<ExecutionPlan> golden_;
  int steps_ = 0;
  std::vector<std::vector<int>> step_inputs_, step_outputs_;
  std::vector<int> last_use_;  // last step reading each value (steps_ for graph outputs)
  std::vector<Site> sites_;
  std::vector<int64_t> site_cumulative_;  // prefix sums of site sizes
  double population_ = 0;
};

void CampaignRunner::analyze_graph() {
  step_inputs_.resize(size_t(steps_));
  step_outputs_.resize(size_t(steps_));
  last_use_.assign(graph_.values.size(), -1);
  for (int s = 0; s < steps_; ++s) {
    const Node& node = golden_->step_node(s);
    for (int in : node.inputs)
      if (in >= 0 && !graph_.values[size_t(in)].is_constant()) {
        step_inputs_[size_t(s)].push_back(in);
        last_use_[size_t(in)] = s;
      }
    for (int out : node.outputs)
      if (out >= 0) step_outputs_[size_t(s)].push_back(out);
  }
  for (int o : graph_.outputs) last_use_[size_t(o)] = steps_;
}

bool selected(const SiteSelector& sel, FaultSite kind, const Node& node) {
  if (sel.site && *sel.site != kind) return false;
  if (!sel.layer.empty() && node.name != sel.layer) return false;
  if (!sel.op_type.empty() && node.op_type != sel.op_type) return false;
  return true;
}

void CampaignRunner::build_sites(const std::vector<int64_t>& accumulator_counts) {
  const SiteSelector& sel = options_.site;
  const bool spatial = !options_.pattern.empty();
  if (spatial && sel.site && *sel.site != FaultSite::activation)
    throw Error("spatial patterns corrupt operator outputs: use --site activation");
  std::map<int, size_t> weight_site;  // value id -> index in sites_
  for (int s = 0; s < steps_; ++s) {
    const Node& node = golden_->step_node(s);
    for (int out : step_outputs_[size_t(s)]) {
      const Value& v = graph_.values[size_t(out)];
      const int64_t n = golden_->values()[size_t(out)].numel();
      if (n == 0 || !is_injectable(v.dtype) || (spatial && v.dtype != DType::f32)) continue;
      if (!selected(sel, FaultSite::activation, node)) continue;
      sites_.push_back(Site{FaultSite::activation, s, out, -1, n, {}});
    }
    if (spatial) continue;
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      const int in = node.inputs[i];
      if (in < 0 || !graph_.values[size_t(in)].is_constant()) continue;
      const Tensor& c = graph_.values[size_t(in)].constant;
      if (c.numel() < 2 || !is_injectable(c.dtype())) continue;
      auto it = weight_site.find(in);
      if (it != weight_site.end()) {
        sites_[it->second].consumers.push_back({s, int(i)});
        continue;
      }
      if (!selected(sel, FaultSite::weight, node)) continue;
      weight_site[in] = sites_.size();
      sites_.push_back(Site{FaultSite::weight, s, in, int(i), c.numel(), {{s, int(i)}}});
    }
    if (accumulator_counts[size_t(s)] > 0 && selected(sel, FaultSite::accumulator, node))
      sites_.push_back(Site{FaultSite::accumulator, s, -1, -1, accumulator_counts[size_t(s)], {}});
  }
  if (sel.element >= 0) {
    // A fixed element: only sites that have it, each counted once.
    std::vector<Site> kept;
    for (Site& site : sites_)
      if (sel.element < site.size) {
        site.size = 1;
        kept.push_back(std::move(site));
      }
    sites_ = std::move(kept);
  }
  if (sites_.empty())
    throw Error("fault campaign: no site matches '" + std::string(sel.site ? fault_site_name(*sel.site) : "any") +
                (sel.layer.empty() ? "" : " layer=" + sel.layer) + (sel.op_type.empty() ? "" : " op=" + sel.op_type) +
                (sel.element >= 0 ? " element=" + std::to_string(sel.element) : "") + "'");
  int64_t total = 0;
  for (const Site& site : sites_) site_cumulative_.push_back(total += site.size);
  // The fault population for statistical sizing: every (site element, fault variant).
  double variants = 1;
  if (spatial) {
    variants = options_.pattern == "any" ? double(options_.error_models.patterns.size()) : 1;
  } else if (options_.fault.kind == FaultKind::bit_flip || options_.fault.kind == FaultKind::stuck_at_0 ||
             options_.fault.kind == FaultKind::stuck_at_1) {
    variants = options_.fault.bit >= 0 ? 1 : 32;
  } else if (options_.fault.kind == FaultKind::adjacent_bit_flips) {
    variants = options_.fault.bit >= 0 ? 1 : std::max(1, 33 - options_.fault.bits);
  } else if (options_.fault.kind == FaultKind::random_bit_flips) {
    variants = std::pow(32.0, options_.fault.bits);  // an upper bound; large populations all size alike
  }
  population_ = double(total) * variants * double(samples_.size());
}

const Site& CampaignRunner::draw_site(Rng& rng, int64_t& element) const {
  const int64_t r = rng.below(site_cumulative_.back());
  const size_t i = size_t(std::upper_bound(site_cumulative_.begin(), site_cumulative_.end(), r) - site_cumulative_.begin());
  element = options_.site.element >= 0 ? options_.site.element : r - (i ? site_cumulative_[i - 1] : 0);
  return sites_[i];
}

std::vector<StepObserver*> CampaignRunner::golden_observers(std::unique_ptr<AbftMonitor>& monitor) {
  if (!options_.abft) return {};
  AbftOptions abft = *options_.abft;
  abft.action = AbftAction::report;
  monitor = std::make_unique<AbftMonitor>(abft);
  return {monitor.get()};
}

std::unique_ptr<CampaignRunner::Worker> CampaignRunner::make_worker() {
  auto w = std::make_unique<Worker>();
  w->plan = std::make_unique<ExecutionPlan>(graph_, w->pool, PlanOptions{true});
  w->own = w->plan->values();
  w->observers = golden_observers(w->monitor);
  w->observers.push_back(&w->hook_only);
  w->dirty.assign(graph_.values.size(), 0);
  return w;
}

InjectionRecord CampaignRunner::inject(Worker& w, int64_t index, int sample) {
  Rng rng = Rng::for_injection(options_.seed, uint64_t(index));
  InjectionRecord record;
  record.index = index;
  record.sample = sample;
  rng.below(int64_t(samples_.size()));  // the draw that chose the sample (made by the caller too)
  int64_t element = 0;
  const Site& site = draw_site(rng, element);
  record.site = site.kind;
  record.step = site.step;
  const Node& node = w.plan->step_node(site.step);
  record.layer = node.name;
  record.op_type = node.op_type;
  record.element = element;

  // Every value starts as the golden one.
  std::vector<Tensor>& values = w.plan->values();
  const std::vector<Tensor>& golden = golden_->values();
  for (size_t v = 0; v < values.size(); ++v)
    if (!graph_.values[v].is_constant()) values[v] = golden[v];
  std::fill(w.dirty.begin(), w.dirty.end(), 0);

  int first_step = site.step + 1;
  std::vector<int> forced;  // steps that must run even with golden inputs
  std::vector<std::pair<int, std::unique_ptr<Kernel>>> replaced;
  AccumulatorFault accumulator;
  bool changed = true;
  // Corrupts the activation in the worker's own buffer, which holds the clean value.
  auto corrupt_activation = [&] {
    Tensor& target = w.own[size_t(site.value)];
    const Tensor& clean = golden[size_t(site.value)];
    if (!options_.pattern.empty()) {
      const SpatialPattern& pattern =
          options_.pattern == "any" ? draw_pattern(options_.error_models, rng) : options_.error_models.find(options_.pattern);
      const SpatialFault fault = apply_spatial_fault(target, pattern, options_.error_models.values, rng);
      record.pattern = pattern.name;
      record.value_class = value_class_name(fault.value_class);
      record.elements = int64_t(fault.positions.size());
      if (!fault.positions.empty()) {
        record.element = fault.positions[0];
        record.before = clean.data<float>()[fault.positions[0]];
        record.after = target.data<float>()[fault.positions[0]];
      }
    } else {
      const ElementFault f = apply_fault(target, element, options_.fault, rng);
      record.elements = 1;
      record.bit = f.lowest_changed_bit();
      record.before = element_as_double(target.dtype(), f.before);
      record.after = element_as_double(target.dtype(), f.after);
    }
    values[size_t(site.value)] = target;
    return std::memcmp(target.raw_data(), clean.raw_data(), target.nbytes()) != 0;
  };
  if (site.kind == FaultSite::activation) {
    if (!options_.full_rerun) {
      Tensor& target = w.own[size_t(site.value)];
      std::memcpy(target.raw_data(), golden[size_t(site.value)].raw_data(), target.nbytes());
      changed = corrupt_activation();
      w.dirty[size_t(site.value)] = changed;
    }
  } else if (site.kind == FaultSite::weight) {
    Tensor corrupted = graph_.values[size_t(site.value)].constant.clone();
    const ElementFault f = apply_fault(corrupted, element, options_.fault, rng);
    record.elements = 1;
    record.bit = f.lowest_changed_bit();
    record.before = element_as_double(corrupted.dtype(), f.before);
    record.after = element_as_double(corrupted.dtype(), f.after);
    changed = f.before != f.after;
    if (changed) {
      // Kernels that packed the weight at creation get new ones; those that read it at run time
      // read the corrupted copy through the value table.
      values[size_t(site.value)] = corrupted;
      for (const auto& [step, slot] : site.consumers) {
        replaced.emplace_back(step, w.plan->replace_kernel(step, {{slot, corrupted}}));
        forced.push_back(step);
      }
      first_step = site.consumers.front().first;
    }
  } else {
    accumulator.target = element;
    accumulator.model = &options_.fault;
    accumulator.rng = &rng;
    if (w.monitor)
      w.monitor->set_fault_hook(site.step, &AccumulatorFault::hook, &accumulator);
    else
      w.hook_only.arm(site.step, &accumulator);
    forced.push_back(site.step);
    first_step = site.step;
  }

  const int64_t detections_before = w.monitor ? w.monitor->detections() : 0;
  if (options_.full_rerun) {
    // The baseline: every step from the first, the activation fault applied after its step.
    for (int s = 0; s < steps_; ++s)
      for (int out : step_outputs_[size_t(s)]) values[size_t(out)] = w.own[size_t(out)];
    for (int s = 0; s < steps_; ++s) {
      w.plan->run_step(s, w.observers);
      ++record.steps_run;
      if (site.kind == FaultSite::activation && s == site.step) corrupt_activation();
    }
  } else if (changed) {
    std::sort(forced.begin(), forced.end());
    size_t next_forced = 0;
    for (int s = first_step; s < steps_; ++s) {
      bool run = next_forced < forced.size() && forced[next_forced] == s;
      if (run) ++next_forced;
      for (int in : step_inputs_[size_t(s)]) run = run || w.dirty[size_t(in)];
      if (!run) {
        // Nothing downstream differs any more: the fault is masked from here on.
        if (next_forced == forced.size()) {
          bool live = false;
          for (size_t v = 0; v < w.dirty.size() && !live; ++v) live = w.dirty[v] && last_use_[v] >= s;
          if (!live) break;
        }
        continue;
      }
      for (int out : step_outputs_[size_t(s)]) values[size_t(out)] = w.own[size_t(out)];
      w.plan->run_step(s, w.observers);
      ++record.steps_run;
      for (int out : step_outputs_[size_t(s)]) {
        const bool differs =
            std::memcmp(values[size_t(out)].raw_data(), golden[size_t(out)].raw_data(), values[size_t(out)].nbytes()) != 0;
        w.dirty[size_t(out)] = differs;
        if (!differs) values[size_t(out)] = golden[size_t(out)];
      }
    }
  }
  if (site.kind == FaultSite::accumulator) {
    if (w.monitor)
      w.monitor->set_fault_hook(site.step, nullptr, nullptr);
    else
      w.hook_only.disarm();
    record.elements = accumulator.hit ? 1 : 0;
    if (accumulator.hit) {
      record.bit = accumulator.fault.lowest_changed_bit();
      record.before = element_as_double(DType::f32, accumulator.fault.before);
      record.after = element_as_double(DType::f32, accumulator.fault.after);
    }
  }
  for (auto& [step, kernel] : replaced) w.plan->restore_kernel(step, std::move(kernel));
  if (site.kind == FaultSite::weight) values[size_t(site.value)] = graph_.values[size_t(site.value)].constant;
  classify(w, record);
  if (w.monitor && w.monitor->detections() > detections_before) record.outcome = Outcome::detected;
  return record;
}

void CampaignRunner::classify(Worker& w, InjectionRecord& record) {
  const std::vector<Tensor>& values = w.plan->values();
  const std::vector<Tensor>& golden = golden_->values();
  bool same = true, finite = true;
  for (int o : graph_.outputs) {
    const Tensor& out = values[size_t(o)];
    const Tensor& ref = golden[size_t(o)];
    if (out.raw_data() == ref.raw_data() || std::memcmp(out.raw_data(), ref.raw_data(), out.nbytes()) == 0) continue;
    same = false;
    if (!all_finite(out) && all_finite(ref)) finite = false;
  }
  Outcome effect = Outcome::masked;
  const Tensor& out = values[size_t(graph_.outputs[0])];
  const Tensor& ref = golden[size_t(graph_.outputs[0])];
  if (!same && out.dtype() == DType::f32) {
    double diff = 0, norm = 0;
    const float* x = out.data<float>();
    const float* y = ref.data<float>();
    for (int64_t i = 0; i < out.numel(); ++i) {
      const double d = double(x[i]) - double(y[i]);
      diff += d * d;
      norm += double(y[i]) * y[i];
    }
    record.output_error = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
    if (!std::isfinite(record.output_error)) record.output_error = std::numeric_limits<double>::infinity();
  }
  if (same) {
    effect = Outcome::masked;
  } else if (!finite) {
    effect = Outcome::non_finite;
  } else if (out.dtype() != DType::f32) {
    effect = Outcome::critical_sdc;  // integer outputs (token ids, labels): any change counts
  } else {
    OutcomeMetric::Kind kind = options_.metric.kind;
    double threshold = options_.metric.threshold;
    if (kind == OutcomeMetric::Kind::automatic) {
      kind = out.rank() <= 2 ? OutcomeMetric::Kind::top1
             : out.rank() == 4 ? OutcomeMetric::Kind::pixels
                               : OutcomeMetric::Kind::relative_l2;
      threshold = kind == OutcomeMetric::Kind::pixels ? 0.01 : 1e-3;
    }
    bool critical = false;
    if (kind == OutcomeMetric::Kind::top1) {
      const int64_t classes = out.rank() == 0 ? 1 : out.dim(-1), rows = out.numel() / std::max<int64_t>(1, classes);
      for (int64_t r = 0; r < rows && !critical; ++r)
        critical = argmax(out.data<float>() + r * classes, classes, 1) != argmax(ref.data<float>() + r * classes, classes, 1);
    } else if (kind == OutcomeMetric::Kind::pixels) {
      if (out.rank() < 3) throw Error("metric pixels needs an output of rank 3 or more ([N, C, ...])");
      const int64_t n = out.dim(0), c = out.dim(1), pixels = out.numel() / std::max<int64_t>(1, n * c);
      int64_t changed = 0;
      for (int64_t b = 0; b < n; ++b)
        for (int64_t p = 0; p < pixels; ++p) {
          const int64_t base = b * c * pixels + p;
          changed += argmax(out.data<float>() + base, c, pixels) != argmax(ref.data<float>() + base, c, pixels);
        }
      critical = double(changed) > threshold * double(n * pixels);
    } else {
      critical = record.output_error > threshold;
    }
    effect = critical ? Outcome::critical_sdc : Outcome::tolerable_sdc;
  }
  record.effect = record.outcome = effect;
}

CampaignResult CampaignRunner::run() {
  CampaignResult result;
  result.steps = steps_;
  using clock = std::chrono::steady_clock;

  // The census: how many accumulator elements each GEMM-backed step finishes.
  golden_->bind_inputs(samples_[0]);
  AccumulatorCensus census(steps_);
  for (int s = 0; s < steps_; ++s) golden_->run_step(s, {&census});
  build_sites(census.counts());
  result.population = population_;

  int64_t total = options_.injections > 0 ? options_.injections
                                          : leveugle_sample_size(population_, options_.margin, options_.confidence);
  result.planned = total;
  if (options_.shares < 1 || options_.share < 0 || options_.share >= options_.shares)
    throw Error("fault campaign: share " + std::to_string(options_.share) + " of " + std::to_string(options_.shares));
  const int64_t first = total * options_.share / options_.shares, end = total * (options_.share + 1) / options_.shares;

  // Each injection's sample is the first draw of its stream; group injections by sample so one
  // golden run serves all of a sample's injections.
  std::vector<std::vector<int64_t>> by_sample(samples_.size());
  for (int64_t i = first; i < end; ++i) {
    Rng rng = Rng::for_injection(options_.seed, uint64_t(i));
    by_sample[size_t(rng.below(int64_t(samples_.size())))].push_back(i);
  }
  int threads = options_.threads > 0 ? options_.threads : ThreadPool::hardware_threads();
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, end - first)));
  result.threads = threads;
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < threads; ++t) workers.push_back(make_worker());
  std::unique_ptr<AbftMonitor> golden_monitor;
  const std::vector<StepObserver*> golden_watch = golden_observers(golden_monitor);

  result.records.resize(size_t(end - first));
  std::atomic<int64_t> done{0};
  for (size_t sample = 0; sample < samples_.size(); ++sample) {
    const std::vector<int64_t>& indices = by_sample[sample];
    if (indices.empty()) continue;
    auto g0 = clock::now();
    golden_->bind_inputs(samples_[sample]);
    for (int s = 0; s < steps_; ++s) golden_->run_step(s, golden_watch);
    if (golden_monitor && golden_monitor->detections() > 0)
      throw Error("fault campaign: ABFT flagged the clean run of sample " + std::to_string(sample));
    auto t0 = clock::now();
    result.golden_seconds += std::chrono::duration<double>(t0 - g0).count();
    std::atomic<size_t> next{0};
    std::mutex error_mutex;
    std::exception_ptr error;
    auto work = [&](Worker& w) {
      try {
        for (size_t k; (k = next.fetch_add(1)) < indices.size();) {
          const int64_t i = indices[k];
          result.records[size_t(i - first)] = inject(w, i, int(sample));
          const int64_t d = ++done;
          if (options_.progress) options_.progress(d, end - first);
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = indices.size();
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work, std::ref(*workers[size_t(t)]));
    work(*workers[0]);
    for (std::thread& t : pool) t.join();
    if (error) std::rethrow_exception(error);
    result.seconds += std::chrono::duration<double>(clock::now() - t0).count();
  }
  return result;
}

}  // namespace

CampaignResult run_fault_campaign(const Graph& model, const std::vector<std::map<std::string, Tensor>>& samples,
                                  const CampaignOptions& options) {
  CampaignRunner runner(model, samples, options);
  return runner.run();
}

}  // namespace tessera::reliability
