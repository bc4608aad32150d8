// Kernel creation, memory planning and the run loop.
#include "runtime/execution_plan.h"

#include <algorithm>
#include <cstring>

#include "graph/memory_planner.h"

namespace tessera {

namespace {
Shape value_shape(const Value& v) {
  Shape s;
  for (const Dim& d : v.dims) s.push_back(d.value);
  return s;
}

// Operators whose output 0 is input 0's bytes unchanged (under a new shape): their kernels are
// copy_tensor_bytes, which does nothing when both sides are the same memory.
bool is_byte_copy_operator(const Node& node) {
  static const char* const kByteCopyOperators[] = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"};
  if (!node.domain.empty()) return false;
  for (const char* op : kByteCopyOperators)
    if (node.op_type == op) return true;
  return false;
}
}  // namespace

std::unique_ptr<Kernel> ExecutionPlan::create_kernel(const Node& node, const std::map<int, Tensor>& constants,
                                                    std::vector<ValueInfo>* outputs) const {
  const KernelFactory* factory = OperatorRegistry::instance().find(node.op_type, graph_.opset, node.domain);
  if (!factory) throw Error("unsupported operator '" + node.op_type + "' at node '" + node.name + "'");
  KernelCreateContext ctx{node, graph_.opset, {}, {}, &pool_};
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    ValueInfo info;
    if (int in = node.inputs[i]; in >= 0) {
      const Value& v = graph_.values[size_t(in)];
      info.present = true;
      info.dtype = v.dtype;
      info.shape = value_shape(v);
      if (v.is_constant()) info.constant = &v.constant;
      auto replaced = constants.find(int(i));
      if (replaced != constants.end()) {
        if (!v.is_constant() || replaced->second.dtype() != v.dtype || replaced->second.shape() != info.shape)
          throw Error("replace_kernel: input " + std::to_string(i) + " of node '" + node.name +
                      "' is not a constant of that dtype and shape");
        info.constant = &replaced->second;
      }
    }
    ctx.inputs.push_back(info);
  }
  ctx.outputs.resize(node.outputs.size());
  std::unique_ptr<Kernel> kernel = (*factory)(ctx);
  for (size_t o = 0; o < node.outputs.size(); ++o)
    if (node.outputs[o] >= 0 && (o >= ctx.outputs.size() || !ctx.outputs[o].present))
      throw Error(ctx.describe() + ": output " + std::to_string(o) + " is not produced");
  if (outputs) *outputs = ctx.outputs;
  return kernel;
}

ExecutionPlan::ExecutionPlan(Graph specialized_graph, ThreadPool& pool, PlanOptions options)
    : graph_(std::move(specialized_graph)), pool_(pool), options_(options) {
  tensors_.resize(graph_.values.size());
  is_graph_output_.assign(graph_.values.size(), false);
  for (int o : graph_.outputs) is_graph_output_[size_t(o)] = true;
  for (size_t v = 0; v < graph_.values.size(); ++v) {
    if (graph_.values[v].is_constant()) {
      tensors_[v] = graph_.values[v].constant;
      stats_.weight_bytes += graph_.values[v].constant.nbytes();
    }
  }

  // Create kernels; record each intermediate's lifetime in steps.
  std::vector<int> first_step(graph_.values.size(), -1), last_step(graph_.values.size(), -1);
  for (size_t n = 0; n < graph_.nodes.size(); ++n) {
    const Node& node = graph_.nodes[n];
    for (int in : node.inputs)
      if (in >= 0) last_step[size_t(in)] = int(steps_.size());
    std::vector<ValueInfo> outputs;
    Step step;
    step.node_index = int(n);
    step.kernel = create_kernel(node, {}, &outputs);
    step.flops = step.kernel->flops();
    stats_.total_flops += step.flops;
    for (size_t o = 0; o < node.outputs.size(); ++o) {
      int out = node.outputs[o];
      if (out < 0) continue;
      Value& v = graph_.values[size_t(out)];
      v.dtype = outputs[o].dtype;
      v.has_type = v.has_shape = true;
      v.dims.clear();
      for (int64_t d : outputs[o].shape) v.dims.push_back(Dim{d, ""});
      first_step[size_t(out)] = int(steps_.size());
      if (last_step[size_t(out)] < first_step[size_t(out)]) last_step[size_t(out)] = first_step[size_t(out)];
    }
    steps_.push_back(std::move(step));
  }
  stats_.steps = int(steps_.size());

  // Intermediates (produced by a step, not a graph output) share one arena.
  std::vector<BufferRequest> requests;
  std::vector<int> request_value;
  std::vector<int> request_of_value(graph_.values.size(), -1);
  for (size_t v = 0; v < graph_.values.size(); ++v) {
    if (first_step[v] < 0 || (is_graph_output_[v] && !options_.keep_all_values)) continue;
    const Value& value = graph_.values[v];
    BufferRequest r;
    r.bytes = size_t(shape_numel(value_shape(value))) * dtype_size(value.dtype);
    r.first_step = options_.keep_all_values ? 0 : first_step[v];
    r.last_step = options_.keep_all_values ? int(steps_.size()) : std::max(last_step[v], first_step[v]);
    request_of_value[v] = int(requests.size());
    requests.push_back(r);
    request_value.push_back(int(v));
  }
  // A byte-copy step's output shares its input's bytes: the copy then sees the same address on
  // both sides and does nothing (copy_tensor_bytes), and the two tensors need one buffer. The
  // input is still never changed, so a step can always be run again on it.
  for (const Step& step : steps_) {
    const Node& node = graph_.nodes[size_t(step.node_index)];
    if (!is_byte_copy_operator(node) || node.inputs.empty() || node.outputs.empty()) continue;
    int in = node.inputs[0], out = node.outputs[0];
    if (in < 0 || out < 0 || request_of_value[size_t(in)] < 0 || request_of_value[size_t(out)] < 0) continue;
    BufferRequest& output_request = requests[size_t(request_of_value[size_t(out)])];
    if (output_request.bytes == requests[size_t(request_of_value[size_t(in)])].bytes)
      output_request.same_buffer_as = request_of_value[size_t(in)];
  }
  MemoryPlan memory = plan_memory(requests);
  stats_.peak_activation_bytes = memory.arena_bytes;
  stats_.naive_activation_bytes = memory.naive_bytes;
  stats_.activation_lower_bound_bytes = memory.live_bytes_lower_bound;
  // Not zero-filled: every arena tensor is written by its step before it is read, so the pages
  // are committed as the first run reaches them rather than all at plan time.
  arena_ = Storage::allocate_uninitialized(memory.arena_bytes);
  for (size_t r = 0; r < requests.size(); ++r) {
    const Value& value = graph_.values[size_t(request_value[r])];
    tensors_[size_t(request_value[r])] = Tensor(value.dtype, value_shape(value), arena_, memory.offsets[r]);
  }
}

std::vector<StepInfo> ExecutionPlan::steps() const {
  std::vector<StepInfo> result;
  for (size_t s = 0; s < steps_.size(); ++s) {
    StepInfo info;
    info.step_index = int(s);
    info.node = &graph_.nodes[size_t(steps_[s].node_index)];
    info.flops = steps_[s].flops;
    result.push_back(info);
  }
  return result;
}

void ExecutionPlan::bind_inputs(const std::map<std::string, Tensor>& inputs) {
  for (int id : graph_.inputs) {
    const Value& v = graph_.values[size_t(id)];
    auto it = inputs.find(v.name);
    if (it == inputs.end()) throw Error("missing input '" + v.name + "'");
    const Tensor& t = it->second;
    if (t.dtype() != v.dtype)
      throw Error("input '" + v.name + "' must be " + dtype_name(v.dtype) + " but is " + dtype_name(t.dtype()));
    if (t.shape() != value_shape(v))
      throw Error("input '" + v.name + "' has shape " + shape_to_string(t.shape()) +
                  " but the plan was made for " + shape_to_string(value_shape(v)));
    tensors_[size_t(id)] = t.is_contiguous() ? t : t.clone();
  }
}

void ExecutionPlan::run_step(int s, const std::vector<StepObserver*>& observers) {
  const Step& step = steps_[size_t(s)];
  const Node& node = graph_.nodes[size_t(step.node_index)];
  ExecContext context{pool_};
  std::vector<const Tensor*>& in_ptrs = step_inputs_;
  std::vector<Tensor*>& out_ptrs = step_outputs_;
  in_ptrs.clear();
  out_ptrs.clear();
  for (int in : node.inputs) in_ptrs.push_back(in >= 0 ? &tensors_[size_t(in)] : nullptr);
  for (int out : node.outputs) out_ptrs.push_back(out >= 0 ? &tensors_[size_t(out)] : nullptr);
  if (observers.empty()) {
    step.kernel->run(in_ptrs, out_ptrs, context);
    return;
  }
  StepInfo info{s, &node, step.flops, in_ptrs, out_ptrs};
  for (auto* o : observers)
    if ((context.gemm_check = o->gemm_check(info))) break;
  bool again = true;
  while (again) {
    for (auto* o : observers) o->before_step(info);
    step.kernel->run(in_ptrs, out_ptrs, context);
    for (auto* o : observers) o->after_step(info);
    again = false;
    for (auto* o : observers) again = o->rerun_step(info) || again;
  }
}

std::unique_ptr<Kernel> ExecutionPlan::replace_kernel(int step, const std::map<int, Tensor>& constants) {
  std::unique_ptr<Kernel> kernel = create_kernel(step_node(step), constants, nullptr);
  std::swap(kernel, steps_[size_t(step)].kernel);
  return kernel;
}

void ExecutionPlan::restore_kernel(int step, std::unique_ptr<Kernel> kernel) {
  steps_[size_t(step)].kernel = std::move(kernel);
}

std::map<std::string, Tensor> ExecutionPlan::run(const std::map<std::string, Tensor>& inputs,
                                                 const std::vector<StepObserver*>& observers) {
  bind_inputs(inputs);
  // Graph outputs get fresh storage each run so callers own them (kept plans own theirs and
  // hand out copies).
  if (!options_.keep_all_values) {
    for (int o : graph_.outputs) {
      const Value& v = graph_.values[size_t(o)];
      if (!v.is_constant() && std::find(graph_.inputs.begin(), graph_.inputs.end(), o) == graph_.inputs.end())
        tensors_[size_t(o)] = Tensor(v.dtype, value_shape(v));
    }
  }
  for (size_t s = 0; s < steps_.size(); ++s) run_step(int(s), observers);
  std::map<std::string, Tensor> result;
  for (int o : graph_.outputs) {
    const Value& v = graph_.values[size_t(o)];
    const Tensor& t = tensors_[size_t(o)];
    // Constants and pass-through inputs are copied so the caller never aliases model state.
    bool owned = !v.is_constant() && !options_.keep_all_values &&
                 std::find(graph_.inputs.begin(), graph_.inputs.end(), o) == graph_.inputs.end();
    result[v.name] = owned ? t : t.clone();
  }
  if (options_.keep_all_values) return result;
  for (int id : graph_.inputs) tensors_[size_t(id)] = Tensor();
  // The caller owns the outputs now; keeping them here would hold a second set alive while the
  // next run allocates its own.
  for (int o : graph_.outputs)
    if (!graph_.values[size_t(o)].is_constant()) tensors_[size_t(o)] = Tensor();
  return result;
}

}  // namespace tessera
