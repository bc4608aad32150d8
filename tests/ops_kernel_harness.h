// Test helper for operator kernels: builds one node's kernel through the OperatorRegistry from
// concrete input tensors (as the executor would) and runs it, without needing a Graph.
#pragma once
#include <memory>
#include <vector>

#include "ops/operator.h"
#include "tessera/thread_pool.h"

namespace tessera::testing {

inline ThreadPool& harness_pool() {
  static ThreadPool pool(2);
  return pool;
}

struct NodeRun {
  std::unique_ptr<Kernel> kernel;
  std::vector<Tensor> outputs;
};

// inputs[i] undefined = absent optional input. By default every input but the first is a
// plan-time constant (like weights); `constant` overrides that per input.
inline NodeRun run_node(Node node, int64_t opset, const std::vector<Tensor>& inputs,
                        int output_count = 1, std::vector<bool> constant = {}) {
  node.inputs.clear();
  for (size_t i = 0; i < inputs.size(); ++i) node.inputs.push_back(inputs[i].defined() ? int(i) : -1);
  node.outputs.clear();
  for (int o = 0; o < output_count; ++o) node.outputs.push_back(1000 + o);
  if (node.name.empty()) node.name = "test";
  std::vector<ValueInfo> infos;
  for (size_t i = 0; i < inputs.size(); ++i) {
    ValueInfo v;
    v.present = inputs[i].defined();
    if (v.present) {
      v.dtype = inputs[i].dtype();
      v.shape = inputs[i].shape();
      bool is_constant = constant.empty() ? i > 0 : constant[i];
      if (is_constant) v.constant = &inputs[i];
    }
    infos.push_back(v);
  }
  ThreadPool& pool = harness_pool();
  KernelCreateContext ctx{node, opset, infos, {}, &pool};
  const KernelFactory* factory = OperatorRegistry::instance().find(node.op_type, opset);
  if (!factory) throw Error("no kernel for " + node.op_type + " at opset " + std::to_string(opset));
  NodeRun result;
  result.kernel = (*factory)(ctx);
  std::vector<const Tensor*> in;
  for (const Tensor& t : inputs) in.push_back(t.defined() ? &t : nullptr);
  for (const ValueInfo& o : ctx.outputs)
    result.outputs.push_back(o.present ? Tensor(o.dtype, o.shape) : Tensor());
  std::vector<Tensor*> out;
  for (Tensor& t : result.outputs) out.push_back(t.defined() ? &t : nullptr);
  ExecContext exec{pool};
  result.kernel->run(in, out, exec);
  return result;
}

}  // namespace tessera::testing
