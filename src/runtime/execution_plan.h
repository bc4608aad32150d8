// ExecutionPlan: the kernels of a specialized, optimized graph in order, with every intermediate
// tensor placed in one arena by the memory planner. Built once per set of input shapes.
#pragma once
#include <map>
#include <memory>
#include <vector>

#include "ops/operator.h"
#include "tessera/session.h"

namespace tessera {

class ExecutionPlan {
 public:
  ExecutionPlan(Graph specialized_graph, ThreadPool& pool);
  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs,
                                    const std::vector<StepObserver*>& observers);
  const PlanStats& stats() const { return stats_; }
  const Graph& graph() const { return graph_; }
  std::vector<StepInfo> steps() const;

 private:
  struct Step {
    int node_index = 0;
    std::unique_ptr<Kernel> kernel;
    double flops = 0;
  };
  Graph graph_;
  ThreadPool& pool_;
  std::vector<Step> steps_;
  std::vector<Tensor> tensors_;            // per value: constant, arena view, or set per run
  std::vector<bool> is_graph_output_;
  std::shared_ptr<Storage> arena_;
  PlanStats stats_;
};

}  // namespace tessera
