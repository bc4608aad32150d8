// Roofline profiler: a step observer that times every executed node (after fusion) over several
// runs and places each on the machine's roofline (FLOPs, fewest bytes moved, intensity, % of bound).
#pragma once
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "analysis/machine_ceilings.h"
#include "tessera/session.h"

namespace tessera::analysis {

struct LayerProfile {
  int index = 0;  // step index in the plan
  std::string name, op_type;
  std::vector<Shape> input_shapes, output_shapes;  // absent optional inputs are left out
  double flops = 0;                                // Kernel::flops(): multiply-add counts 2
  double bytes = 0;      // fewest bytes moved: every input (weights too) and output once
  double intensity = 0;  // flops / bytes (FLOP/byte)
  double time_ms = 0;    // median over the profiled runs
  double achieved_gflops = 0;
  double achieved_gbs = 0;
  double bound_gflops = 0;      // min(peak, intensity x bandwidth)
  double bound_time_ms = 0;     // max(flops / peak, bytes / bandwidth): the roofline's time
  double percent_of_bound = 0;  // bound_time_ms / time_ms x 100
  bool compute_bound = false;   // intensity at or above the balance point
  bool int8 = false;  // runs integer kernels (tessera Int8* operators): held to the int8 peak
};

struct ModelProfile {
  std::string model;
  int threads = 1;
  int iterations = 0;
  MachineCeilings machine;
  Roof roof;                 // the ceilings for `threads`
  double latency_ms = 0;     // median whole-model run
  double layer_time_ms = 0;  // sum of the per-layer medians
  double total_flops = 0;
  double total_bytes = 0;                         // sum of per-layer fewest bytes
  double achieved_gflops = 0;                     // total_flops / latency
  double utilization = 0;                         // achieved_gflops / roof.peak_gflops (0..1)
  double median_percent_of_bound = 0;             // layers with FLOPs > 0
  double median_percent_of_bound_all_layers = 0;  // every layer
  double time_weighted_percent_of_bound = 0;      // sum of bound times / sum of layer times
  int compute_bound_layers = 0, memory_bound_layers = 0;
  std::vector<LayerProfile> layers;
};

// Shapes, FLOPs and fewest bytes of one step (times and roofline fields left zero). A tensor
// read twice by the node (Mul(x, x)) counts once.
LayerProfile describe_step(const StepInfo& step);
// Fills the timing and roofline fields of `layer` from its median time.
void apply_roofline(LayerProfile& layer, double time_ms, const Roof& roof);
// Whole-model figures from the per-layer ones (latency given).
ModelProfile summarize_layers(std::vector<LayerProfile> layers, double latency_ms, const Roof& roof);

class RooflineProfiler : public StepObserver {
 public:
  void before_step(const StepInfo& step) override;
  void after_step(const StepInfo& step) override;
  // Bracket each whole-model run to record its latency.
  void begin_run();
  void end_run();
  int runs() const { return int(run_ms_.size()); }
  // Medians over the recorded runs, placed on `roof`. Throws when nothing was recorded.
  ModelProfile summarize(const Roof& roof) const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Record {
    LayerProfile layer;  // static part, from the first time the step ran
    std::vector<double> ms;
  };
  std::vector<Record> records_;  // by step index
  Clock::time_point step_start_, run_start_;
  std::vector<double> run_ms_;
};

struct ProfileOptions {
  int warmup = 3;
  int iterations = 10;
};

// Warm-up runs, then `iterations` observed runs of `session` (already prepared for `inputs`).
ModelProfile profile_session(Session& session, const std::map<std::string, Tensor>& inputs,
                             const ProfileOptions& options, const MachineCeilings& ceilings);

double median(std::vector<double> values);

}  // namespace tessera::analysis
