// Per-node timing and roofline placement: the observer records times per step, the summary takes
// medians and compares each layer with min(peak, intensity x bandwidth).
#include "analysis/roofline_profiler.h"

#include <algorithm>
#include <set>

#include "tessera/error.h"

namespace tessera::analysis {

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

LayerProfile describe_step(const StepInfo& step) {
  LayerProfile layer;
  layer.index = step.step_index;
  if (step.node) {
    layer.name = step.node->name;
    layer.op_type = step.node->op_type;
    layer.int8 = step.node->domain == "tessera" && layer.op_type.rfind("Int8", 0) == 0;
  }
  layer.flops = step.flops;
  std::set<const Tensor*> counted;  // a tensor the node reads twice is still moved once
  for (const Tensor* t : step.inputs) {
    if (!t || !t->defined()) continue;
    layer.input_shapes.push_back(t->shape());
    if (counted.insert(t).second) layer.bytes += double(t->nbytes());
  }
  for (const Tensor* t : step.outputs) {
    if (!t || !t->defined()) continue;
    layer.output_shapes.push_back(t->shape());
    if (counted.insert(t).second) layer.bytes += double(t->nbytes());
  }
  layer.intensity = layer.bytes > 0 ? layer.flops / layer.bytes : 0;
  return layer;
}

void apply_roofline(LayerProfile& layer, double time_ms, const Roof& model_roof) {
  Roof roof = model_roof;
  if (layer.int8 && model_roof.int8_peak_gops > 0) roof.peak_gflops = model_roof.int8_peak_gops;
  layer.time_ms = time_ms;
  const double seconds = time_ms * 1e-3;
  layer.achieved_gflops = seconds > 0 ? layer.flops / seconds * 1e-9 : 0;
  layer.achieved_gbs = seconds > 0 ? layer.bytes / seconds * 1e-9 : 0;
  layer.bound_gflops = roof.bound_gflops(layer.intensity);
  // The roofline as a time: whichever of compute and traffic takes longer at the ceilings. This
  // equals achieved / bound for layers with FLOPs and still means something for pure data movement.
  const double compute_s = roof.peak_gflops > 0 ? layer.flops / (roof.peak_gflops * 1e9) : 0;
  const double memory_s = roof.bandwidth_gbs > 0 ? layer.bytes / (roof.bandwidth_gbs * 1e9) : 0;
  layer.bound_time_ms = std::max(compute_s, memory_s) * 1e3;
  layer.percent_of_bound = time_ms > 0 ? layer.bound_time_ms / time_ms * 100 : 0;
  layer.compute_bound = layer.flops > 0 && layer.intensity >= roof.balance();
}

ModelProfile summarize_layers(std::vector<LayerProfile> layers, double latency_ms, const Roof& roof) {
  ModelProfile p;
  p.roof = roof;
  p.latency_ms = latency_ms;
  std::vector<double> percent_compute, percent_all;
  double bound_sum = 0;
  for (const auto& layer : layers) {
    p.layer_time_ms += layer.time_ms;
    p.total_flops += layer.flops;
    p.total_bytes += layer.bytes;
    bound_sum += layer.bound_time_ms;
    percent_all.push_back(layer.percent_of_bound);
    if (layer.flops > 0) percent_compute.push_back(layer.percent_of_bound);
    (layer.compute_bound ? p.compute_bound_layers : p.memory_bound_layers)++;
  }
  p.achieved_gflops = latency_ms > 0 ? p.total_flops / (latency_ms * 1e-3) * 1e-9 : 0;
  p.utilization = roof.peak_gflops > 0 ? p.achieved_gflops / roof.peak_gflops : 0;
  p.median_percent_of_bound = median(percent_compute);
  p.median_percent_of_bound_all_layers = median(percent_all);
  p.time_weighted_percent_of_bound = p.layer_time_ms > 0 ? bound_sum / p.layer_time_ms * 100 : 0;
  p.layers = std::move(layers);
  return p;
}

void RooflineProfiler::before_step(const StepInfo&) { step_start_ = Clock::now(); }

void RooflineProfiler::after_step(const StepInfo& step) {
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - step_start_).count();
  const size_t index = size_t(step.step_index);
  if (records_.size() <= index) records_.resize(index + 1);
  Record& record = records_[index];
  if (record.ms.empty()) record.layer = describe_step(step);  // shapes are fixed by the plan
  record.ms.push_back(ms);
}

void RooflineProfiler::begin_run() { run_start_ = Clock::now(); }

void RooflineProfiler::end_run() {
  run_ms_.push_back(std::chrono::duration<double, std::milli>(Clock::now() - run_start_).count());
}

ModelProfile RooflineProfiler::summarize(const Roof& roof) const {
  if (records_.empty()) throw Error("the profiler recorded no steps");
  std::vector<LayerProfile> layers;
  double layer_sum = 0;
  for (const Record& record : records_) {
    if (record.ms.empty()) continue;
    LayerProfile layer = record.layer;
    apply_roofline(layer, median(record.ms), roof);
    layer_sum += layer.time_ms;
    layers.push_back(std::move(layer));
  }
  // Without bracketed runs the sum of layer medians stands in for the latency.
  const double latency = run_ms_.empty() ? layer_sum : median(run_ms_);
  ModelProfile p = summarize_layers(std::move(layers), latency, roof);
  p.iterations = run_ms_.empty() ? int(records_.front().ms.size()) : int(run_ms_.size());
  return p;
}

ModelProfile profile_session(Session& session, const std::map<std::string, Tensor>& inputs,
                             const ProfileOptions& options, const MachineCeilings& ceilings) {
  for (int i = 0; i < options.warmup; ++i) session.run(inputs);
  RooflineProfiler profiler;
  session.add_observer(&profiler);
  try {
    for (int i = 0; i < options.iterations; ++i) {
      profiler.begin_run();
      session.run(inputs);
      profiler.end_run();
    }
  } catch (...) {
    session.clear_observers();
    throw;
  }
  session.clear_observers();
  const int threads = session.thread_pool().size();
  ModelProfile p = profiler.summarize(roof_for_threads(ceilings, threads));
  p.threads = threads;
  p.machine = ceilings;
  return p;
}

}  // namespace tessera::analysis
