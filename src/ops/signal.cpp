// Window functions of the ONNX signal operators (HannWindow, HammingWindow, BlackmanWindow):
// the size is known at plan time, so each node becomes a constant computed once.
#include <cmath>

#include "ops/broadcast.h"
#include "ops/dtype_dispatch.h"
#include "ops/operator.h"

namespace tessera {
namespace {

// Generalized cosine window: sum_k a_k * cos(2 pi k n / denominator) with alternating signs
// folded into the coefficients.
std::unique_ptr<Kernel> make_cosine_window(KernelCreateContext& ctx, std::vector<double> coefficients) {
  const Tensor& size_tensor = ctx.constant_input(0, "size");
  if (size_tensor.numel() != 1) throw Error(ctx.describe() + ": size must be a scalar");
  int64_t size = int64_t(size_tensor.value_as_double(0));
  if (size < 0) throw Error(ctx.describe() + ": size must not be negative");
  DType dtype = dtype_from_onnx(int(ctx.node.attributes.get_int("output_datatype", 1)));
  bool periodic = ctx.node.attributes.get_int("periodic", 1) != 0;
  // A periodic window is one period of an N+1 point symmetric window, hence N in the denominator.
  double denominator = periodic ? double(size) : double(size - 1);
  Tensor window(DType::f32, {size});
  for (int64_t n = 0; n < size; ++n) {
    double v = 0;
    for (size_t k = 0; k < coefficients.size(); ++k)
      v += coefficients[k] *
           (denominator > 0 ? std::cos(2 * M_PI * double(k) * double(n) / denominator) : 1.0);
    window.data<float>()[n] = float(v);
  }
  Tensor value = window.cast(dtype);
  ctx.set_output(0, dtype, {size});
  return std::make_unique<LambdaKernel>(
      [value](const std::vector<const Tensor*>&, const std::vector<Tensor*>& o, ExecContext& e) {
        copy_tensor_bytes(value, *o[0], &e.pool);
      });
}

}  // namespace

void register_signal_operators(OperatorRegistry& registry) {
  registry.add("HannWindow", 17, 18, [](KernelCreateContext& ctx) {
    return make_cosine_window(ctx, {0.5, -0.5});
  });
  registry.add("HammingWindow", 17, 18, [](KernelCreateContext& ctx) {
    return make_cosine_window(ctx, {25.0 / 46.0, -21.0 / 46.0});
  });
  registry.add("BlackmanWindow", 17, 18, [](KernelCreateContext& ctx) {
    return make_cosine_window(ctx, {0.42, -0.5, 0.08});
  });
}

}  // namespace tessera
