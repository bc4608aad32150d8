// Session: the public entry point. Loads a model into a graph, runs the graph passes,
// specializes the graph to concrete input shapes (shape inference + constant folding),
// plans activation memory and executes node kernels on a thread pool.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tessera/graph.h"
#include "tessera/tensor.h"
#include "tessera/thread_pool.h"

namespace tessera {

struct SessionOptions {
  int threads = 0;        // 0: all hardware threads
  bool optimize = true;   // run the graph passes (fusion, folding, removal)
  // CNNs on channels-last (NHWC) activations (graph/passes/channels_last.cpp) where every 2-D
  // convolution has a channels-last kernel; needs `optimize`. Its kernels have no ABFT or
  // fault-injection hooks yet.
  bool channels_last = false;
};

// One executed step of a prepared plan, as seen by observers (profiler, ABFT, tracing).
struct StepInfo {
  int step_index = 0;
  const Node* node = nullptr;
  double flops = 0;  // floating-point operations of this step (multiply-add = 2)
  std::vector<const Tensor*> inputs;
  std::vector<Tensor*> outputs;
};

namespace primitives {
struct GemmCheck;
}

// Hooks around every executed step; a narrow interface so capabilities stay outside the core.
class StepObserver {
 public:
  virtual ~StepObserver() = default;
  virtual void before_step(const StepInfo&) {}
  virtual void after_step(const StepInfo&) {}
  // ABFT: the check under which the step's GEMMs run (the first observer that gives one wins).
  virtual const primitives::GemmCheck* gemm_check(const StepInfo&) { return nullptr; }
  // Asked after after_step: true runs the step again (recomputation after a detected error).
  // The step's inputs are intact then: no step writes over an input (the memory planner lets
  // only byte-copy steps such as Reshape share their input's buffer, and they do not change it).
  virtual bool rerun_step(const StepInfo&) { return false; }
};

struct PlanStats {
  size_t peak_activation_bytes = 0;   // arena size after liveness-based reuse
  size_t naive_activation_bytes = 0;  // sum of all intermediate tensors (no reuse)
  // Most bytes of intermediates live at one step in this execution order: no arena can be smaller.
  size_t activation_lower_bound_bytes = 0;
  size_t weight_bytes = 0;
  double total_flops = 0;
  int steps = 0;
};

class ExecutionPlan;  // runtime/execution_plan.h

class Session {
 public:
  static Session from_file(const std::string& onnx_path, SessionOptions options = {});
  Session(Graph graph, SessionOptions options = {});
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  const Graph& graph() const { return graph_; }
  ThreadPool& thread_pool() { return *pool_; }

  // Builds the plan for these input shapes; run() calls it when shapes change. `input_values`
  // makes the named (small) inputs constants of the plan; run() uses it when an operator needs
  // an input's value to know its output shape.
  void prepare(const std::map<std::string, Shape>& input_shapes,
               const std::map<std::string, Tensor>& input_values = {});
  // Runs the model. Every graph input must be given with a matching dtype and rank.
  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs);

  const PlanStats& plan_stats() const;
  // Steps of the current plan (after preparation), for reports.
  std::vector<StepInfo> plan_steps() const;
  // The graph the current plan runs: specialized to the prepared shapes and optimized.
  const Graph& planned_graph() const;
  void add_observer(StepObserver* observer) { observers_.push_back(observer); }
  void clear_observers() { observers_.clear(); }

 private:
  Graph graph_;
  SessionOptions options_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<ExecutionPlan> plan_;
  std::map<std::string, Shape> planned_shapes_;
  // Inputs the current plan is specialized on by value (empty unless shapes depend on them).
  std::map<std::string, Tensor> planned_values_;
  bool specialize_on_values_ = false;
  std::vector<StepObserver*> observers_;
};

}  // namespace tessera
