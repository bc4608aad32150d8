// Session: load -> (per input shapes) specialize -> passes -> plan -> run.
#include "tessera/session.h"

#include "graph/passes/passes.h"
#include "runtime/execution_plan.h"
#include "runtime/specialize.h"
#include "tessera/onnx.h"

namespace tessera {

Session Session::from_file(const std::string& onnx_path, SessionOptions options) {
  return Session(load_onnx_model(onnx_path), options);
}

Session::Session(Graph graph, SessionOptions options)
    : graph_(std::move(graph)), options_(options), pool_(std::make_unique<ThreadPool>(options.threads)) {}

Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

void Session::prepare(const std::map<std::string, Shape>& input_shapes) {
  Graph g = graph_;
  specialize_graph(g, input_shapes, *pool_);
  if (options_.optimize) run_graph_passes(g);
  plan_ = std::make_unique<ExecutionPlan>(std::move(g), *pool_);
  planned_shapes_ = input_shapes;
}

std::map<std::string, Tensor> Session::run(const std::map<std::string, Tensor>& inputs) {
  std::map<std::string, Shape> shapes;
  for (int id : graph_.inputs) {
    const std::string& name = graph_.values[size_t(id)].name;
    auto it = inputs.find(name);
    if (it == inputs.end()) throw Error("missing input '" + name + "'");
    shapes[name] = it->second.shape();
  }
  for (const auto& [name, tensor] : inputs) {
    bool known = false;
    for (int id : graph_.inputs) known |= graph_.values[size_t(id)].name == name;
    if (!known) throw Error("the model has no input named '" + name + "'");
  }
  if (!plan_ || shapes != planned_shapes_) prepare(shapes);
  return plan_->run(inputs, observers_);
}

const PlanStats& Session::plan_stats() const {
  if (!plan_) throw Error("the session has not been prepared");
  return plan_->stats();
}

std::vector<StepInfo> Session::plan_steps() const {
  if (!plan_) throw Error("the session has not been prepared");
  return plan_->steps();
}

}  // namespace tessera
