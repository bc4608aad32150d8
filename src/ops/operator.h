// The operator interface. An operator is created once per node for concrete input
// shapes (create = shape inference + plan-time work such as weight packing, XNNPACK-style)
// and then run many times. Operators are registered by ONNX op type and opset range.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tessera/graph.h"
#include "tessera/tensor.h"
#include "tessera/thread_pool.h"

namespace tessera {

// Thrown when an operator needs an input's value at plan time (a shape, axes, pads...) and the
// value is not known: the session then specializes on the values of small graph inputs too.
class ValueRequiredError : public Error {
 public:
  using Error::Error;
};

// What is known about one input or output at plan time.
struct ValueInfo {
  bool present = false;           // false for an absent optional input
  DType dtype = DType::f32;
  Shape shape;
  const Tensor* constant = nullptr;  // set when the value is known at plan time
};

namespace primitives {
struct GemmCheck;
}

struct ExecContext {
  ThreadPool& pool;
  // ABFT for this step's GEMMs (set by the executor from its observers); nullptr: unchecked.
  const primitives::GemmCheck* gemm_check = nullptr;
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  // inputs[i] is nullptr for absent optional inputs; outputs are allocated by the executor
  // with the shapes and dtypes the operator declared at creation.
  virtual void run(const std::vector<const Tensor*>& inputs, const std::vector<Tensor*>& outputs,
                   ExecContext& context) = 0;
  // Floating-point operations per run (multiply-add counts 2); 0 for data movement.
  virtual double flops() const { return 0; }
  // False for operators whose result must not be computed at plan time even with constant inputs.
  virtual bool foldable() const { return true; }
};

struct KernelCreateContext {
  const Node& node;
  int64_t opset;
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;  // the factory fills dtype and shape of each present output
  ThreadPool* pool;

  const ValueInfo& input(size_t i) const;
  bool has_input(size_t i) const { return i < inputs.size() && inputs[i].present; }
  // The constant value of input i, or an error naming the node when it is not known at plan time.
  const Tensor& constant_input(size_t i, const char* what) const;
  void set_output(size_t i, DType dtype, Shape shape);
  std::string describe() const;  // "Conv node 'conv1'" for error messages
};

using KernelFactory = std::function<std::unique_ptr<Kernel>(KernelCreateContext&)>;

class OperatorRegistry {
 public:
  static OperatorRegistry& instance();
  void add(const std::string& op_type, int min_opset, int max_opset, KernelFactory factory,
           const std::string& domain = "");
  // nullptr when no kernel covers this op type at this opset.
  const KernelFactory* find(const std::string& op_type, int64_t opset,
                            const std::string& domain = "") const;
  bool supports(const std::string& op_type, const std::string& domain = "") const;
  std::vector<std::string> op_types() const;

 private:
  OperatorRegistry();
  struct Entry {
    std::string op_type, domain;
    int min_opset, max_opset;
    KernelFactory factory;
  };
  std::vector<Entry> entries_;
};

// Each operator family registers itself here (called once by the registry).
void register_elementwise_operators(OperatorRegistry&);
void register_activation_operators(OperatorRegistry&);
void register_gemm_operators(OperatorRegistry&);
void register_conv_operators(OperatorRegistry&);
void register_pool_operators(OperatorRegistry&);
void register_normalization_operators(OperatorRegistry&);
void register_shape_operators(OperatorRegistry&);
void register_reduce_operators(OperatorRegistry&);
void register_resize_pad_operators(OperatorRegistry&);
void register_fused_operators(OperatorRegistry&);
void register_loss_operators(OperatorRegistry&);
void register_sort_scan_operators(OperatorRegistry&);
void register_index_operators(OperatorRegistry&);
void register_quantize_operators(OperatorRegistry&);
void register_signal_operators(OperatorRegistry&);
void register_linear_algebra_operators(OperatorRegistry&);
void register_sampling_operators(OperatorRegistry&);
void register_int8_nhwc_operators(OperatorRegistry&);
void register_channels_last_operators(OperatorRegistry&);

// Generic kernel from a lambda, for simple operators.
class LambdaKernel : public Kernel {
 public:
  using RunFn = std::function<void(const std::vector<const Tensor*>&, const std::vector<Tensor*>&,
                                   ExecContext&)>;
  explicit LambdaKernel(RunFn fn, double flops = 0) : fn_(std::move(fn)), flops_(flops) {}
  void run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           ExecContext& context) override {
    fn_(in, out, context);
  }
  double flops() const override { return flops_; }

 private:
  RunFn fn_;
  double flops_;
};

}  // namespace tessera
