// Operator registry: op type + domain + opset range -> kernel factory.
#include <algorithm>

#include "compression/compression_operators.h"
#include "ops/operator.h"

namespace tessera {

const ValueInfo& KernelCreateContext::input(size_t i) const {
  static const ValueInfo absent;
  return i < inputs.size() ? inputs[i] : absent;
}

const Tensor& KernelCreateContext::constant_input(size_t i, const char* what) const {
  if (i >= inputs.size() || !inputs[i].present)
    throw Error(describe() + ": missing input " + std::to_string(i) + " (" + what + ")");
  if (!inputs[i].constant)
    throw ValueRequiredError(describe() + ": input " + std::to_string(i) + " (" + what +
                ") must be known before running (a constant or computable from input shapes)");
  return *inputs[i].constant;
}

void KernelCreateContext::set_output(size_t i, DType dtype, Shape shape) {
  if (outputs.size() <= i) outputs.resize(i + 1);
  outputs[i].present = true;
  outputs[i].dtype = dtype;
  for (int64_t d : shape)
    if (d < 0) throw Error(describe() + ": computed a negative output dimension " + shape_to_string(shape));
  // Refuse absurd sizes here, before the planner multiplies them into byte counts.
  int64_t numel = shape_numel(shape);  // throws when the element count overflows
  if (numel > kMaxTensorBytes / int64_t(dtype_size(dtype)))
    throw Error(describe() + ": output shape " + shape_to_string(shape) + " is too large");
  outputs[i].shape = std::move(shape);
}

std::string KernelCreateContext::describe() const {
  return node.op_type + " node '" + node.name + "'";
}

OperatorRegistry& OperatorRegistry::instance() {
  static OperatorRegistry registry;
  return registry;
}

OperatorRegistry::OperatorRegistry() {
  register_elementwise_operators(*this);
  register_activation_operators(*this);
  register_gemm_operators(*this);
  register_conv_operators(*this);
  register_pool_operators(*this);
  register_normalization_operators(*this);
  register_shape_operators(*this);
  register_reduce_operators(*this);
  register_resize_pad_operators(*this);
  register_fused_operators(*this);
  register_loss_operators(*this);
  register_sort_scan_operators(*this);
  register_index_operators(*this);
  register_quantize_operators(*this);
  register_signal_operators(*this);
  register_linear_algebra_operators(*this);
  register_sampling_operators(*this);
  register_int8_nhwc_operators(*this);
  register_channels_last_operators(*this);
  register_compression_operators(*this);
}

void OperatorRegistry::add(const std::string& op_type, int min_opset, int max_opset,
                           KernelFactory factory, const std::string& domain) {
  entries_.push_back(Entry{op_type, domain, min_opset, max_opset, std::move(factory)});
}

const KernelFactory* OperatorRegistry::find(const std::string& op_type, int64_t opset,
                                            const std::string& domain) const {
  std::string d = domain == "ai.onnx" ? "" : domain;
  for (const auto& e : entries_)
    if (e.op_type == op_type && e.domain == d && opset >= e.min_opset && opset <= e.max_opset)
      return &e.factory;
  return nullptr;
}

bool OperatorRegistry::supports(const std::string& op_type, const std::string& domain) const {
  std::string d = domain == "ai.onnx" ? "" : domain;
  return std::any_of(entries_.begin(), entries_.end(),
                     [&](const Entry& e) { return e.op_type == op_type && e.domain == d; });
}

std::vector<std::string> OperatorRegistry::op_types() const {
  std::vector<std::string> names;
  for (const auto& e : entries_) names.push_back(e.op_type);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

}  // namespace tessera
