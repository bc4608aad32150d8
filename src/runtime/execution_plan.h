// ExecutionPlan: the kernels of a specialized, optimized graph in order, with every intermediate
// tensor placed in one arena by the memory planner. Built once per set of input shapes.
#pragma once
#include <map>
#include <memory>
#include <vector>

#include "ops/operator.h"
#include "tessera/session.h"

namespace tessera {

struct PlanOptions {
  // Every intermediate and output keeps a buffer of its own (no reuse): after a run each holds
  // its value, which a fault-injection replay reads as the golden run's.
  bool keep_all_values = false;
};

class ExecutionPlan {
 public:
  ExecutionPlan(Graph specialized_graph, ThreadPool& pool, PlanOptions options = {});
  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs,
                                    const std::vector<StepObserver*>& observers);
  const PlanStats& stats() const { return stats_; }
  const Graph& graph() const { return graph_; }
  std::vector<StepInfo> steps() const;

  // Step by step, for replays (fault injection): bind the inputs, then run steps in any order
  // the caller's value bindings allow. values()[v] is the tensor of graph value v: a constant,
  // its own buffer, or whatever the caller bound there (it must have the value's dtype and shape).
  void bind_inputs(const std::map<std::string, Tensor>& inputs);
  std::vector<Tensor>& values() { return tensors_; }
  int step_count() const { return int(steps_.size()); }
  const Node& step_node(int step) const { return graph_.nodes[size_t(steps_[size_t(step)].node_index)]; }
  void run_step(int step, const std::vector<StepObserver*>& observers);
  // Makes step `step` a new kernel whose constant inputs `constants` (input index -> tensor of
  // the same dtype and shape) replace the graph's (a corrupted weight), and returns the kernel it
  // replaced, for restore_kernel.
  std::unique_ptr<Kernel> replace_kernel(int step, const std::map<int, Tensor>& constants);
  void restore_kernel(int step, std::unique_ptr<Kernel> kernel);

 private:
  struct Step {
    int node_index = 0;
    std::unique_ptr<Kernel> kernel;
    double flops = 0;
  };
  std::unique_ptr<Kernel> create_kernel(const Node& node, const std::map<int, Tensor>& constants,
                                        std::vector<ValueInfo>* outputs) const;
  Graph graph_;
  ThreadPool& pool_;
  PlanOptions options_;
  std::vector<Step> steps_;
  std::vector<Tensor> tensors_;            // per value: constant, arena view, or set per run
  std::vector<bool> is_graph_output_;
  std::shared_ptr<Storage> arena_;
  std::vector<const Tensor*> step_inputs_;  // run_step's argument lists, kept to reuse their memory
  std::vector<Tensor*> step_outputs_;
  PlanStats stats_;
};

}  // namespace tessera
