// Session: load -> (per input shapes) specialize -> passes -> plan -> run.
#include "tessera/session.h"

#include <cstring>

#include "graph/passes/passes.h"
#include "ops/operator.h"
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

namespace {
// Inputs small enough to specialize a plan on their values (shape tensors, axes, scalars).
// Kept small so that ordinary data inputs (images, token ids) are never folded into a plan.
constexpr int64_t kMaxValueSpecializedElements = 64;

bool same_values(const std::map<std::string, Tensor>& a, const std::map<std::string, Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end() || it->second.dtype() != t.dtype() || it->second.shape() != t.shape()) return false;
    Tensor x = t.is_contiguous() ? t : t.clone(), y = it->second.is_contiguous() ? it->second : it->second.clone();
    if (std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) != 0) return false;
  }
  return true;
}
}  // namespace

void Session::prepare(const std::map<std::string, Shape>& input_shapes,
                      const std::map<std::string, Tensor>& input_values) {
  Graph g = graph_;
  specialize_graph(g, input_shapes, *pool_, input_values);
  if (options_.optimize) run_graph_passes(g);
  if (options_.optimize && options_.channels_last) convert_to_channels_last(g);
  plan_ = std::make_unique<ExecutionPlan>(std::move(g), *pool_);
  planned_shapes_ = input_shapes;
  planned_values_ = input_values;
}

std::map<std::string, Tensor> Session::run(const std::map<std::string, Tensor>& inputs) {
  std::map<std::string, Shape> shapes;
  for (int id : graph_.inputs) {
    const std::string& name = graph_.values[size_t(id)].name;
    auto it = inputs.find(name);
    if (it == inputs.end()) throw Error("missing input '" + name + "'");
    if (!it->second.defined()) throw Error("input '" + name + "' has no data");
    shapes[name] = it->second.shape();
  }
  for (const auto& [name, tensor] : inputs) {
    bool known = false;
    for (int id : graph_.inputs) known |= graph_.values[size_t(id)].name == name;
    if (!known) throw Error("the model has no input named '" + name + "'");
  }
  std::map<std::string, Tensor> values;
  if (specialize_on_values_)
    for (const auto& [name, t] : inputs)
      if (t.numel() <= kMaxValueSpecializedElements) values[name] = t;
  if (!plan_ || shapes != planned_shapes_ || !same_values(values, planned_values_)) {
    try {
      prepare(shapes, values);
    } catch (const ValueRequiredError&) {
      if (specialize_on_values_) throw;
      // An operator needs an input's value to know its output shape: specialize on values.
      specialize_on_values_ = true;
      for (const auto& [name, t] : inputs)
        if (t.numel() <= kMaxValueSpecializedElements) values[name] = t;
      prepare(shapes, values);
    }
  }
  return plan_->run(inputs, observers_);
}

const PlanStats& Session::plan_stats() const {
  if (!plan_) throw Error("the session has not been prepared");
  return plan_->stats();
}

const Graph& Session::planned_graph() const {
  if (!plan_) throw Error("the session has not been prepared");
  return plan_->graph();
}

std::vector<StepInfo> Session::plan_steps() const {
  if (!plan_) throw Error("the session has not been prepared");
  return plan_->steps();
}

}  // namespace tessera
