// Training losses that also appear in exported inference graphs: NegativeLogLikelihoodLoss and
// SoftmaxCrossEntropyLoss (with class weights, ignore_index and none/sum/mean reductions).
#include <algorithm>
#include <cmath>

#include "ops/broadcast.h"
#include "ops/dtype_dispatch.h"
#include "ops/index_util.h"
#include "ops/operator.h"

namespace tessera {
namespace {

enum class Reduction { none, sum, mean };

// The problem both losses share: scores [N, C, D] (D = product of the trailing dims, 1 if none),
// targets [N, D], optional weights [C].
struct LossProblem {
  int64_t batch = 0, classes = 0, inner = 1;
  Reduction reduction = Reduction::mean;
  bool has_ignore = false;
  int64_t ignore_index = 0;
  bool has_weights = false;
  std::string who;
};

LossProblem describe_loss(KernelCreateContext& ctx, bool weights_from_input2) {
  const ValueInfo& scores = required_input(ctx, 0);
  const ValueInfo& target = required_input(ctx, 1);
  LossProblem p;
  p.who = ctx.describe();
  if (!dtype_is_float(scores.dtype)) throw Error(p.who + ": the scores must be floating point");
  if (!is_index_dtype(target.dtype)) throw Error(p.who + ": the target must be int32 or int64");
  if (scores.shape.size() < 2) throw Error(p.who + ": the scores need shape [N, C, d1, ...]");
  Shape expected_target{scores.shape[0]};
  expected_target.insert(expected_target.end(), scores.shape.begin() + 2, scores.shape.end());
  if (target.shape != expected_target)
    throw Error(p.who + ": target shape " + shape_to_string(target.shape) + " does not match scores " +
                shape_to_string(scores.shape) + " (expected " + shape_to_string(expected_target) + ")");
  p.batch = scores.shape[0];
  p.classes = scores.shape[1];
  for (size_t i = 2; i < scores.shape.size(); ++i) p.inner *= scores.shape[i];
  std::string reduction = ctx.node.attributes.get_string("reduction", "mean");
  if (reduction == "none")
    p.reduction = Reduction::none;
  else if (reduction == "sum")
    p.reduction = Reduction::sum;
  else if (reduction == "mean")
    p.reduction = Reduction::mean;
  else
    throw Error(p.who + ": unknown reduction '" + reduction + "' (none, sum or mean)");
  p.has_ignore = ctx.node.attributes.has("ignore_index");
  p.ignore_index = ctx.node.attributes.get_int("ignore_index", 0);
  p.has_weights = weights_from_input2 && ctx.has_input(2);
  if (p.has_weights) {
    const ValueInfo& w = ctx.input(2);
    if (w.dtype != scores.dtype) throw Error(p.who + ": the weights must have the scores' dtype");
    if (w.shape != Shape{p.classes})
      throw Error(p.who + ": weights shape " + shape_to_string(w.shape) + " is not [C] = [" +
                  std::to_string(p.classes) + "]");
  }
  if (p.reduction == Reduction::none)
    ctx.set_output(0, scores.dtype, expected_target);
  else
    ctx.set_output(0, scores.dtype, {});
  return p;
}

// loss[n, d] = -weight[t] * log_prob[n, t, d] with t = target[n, d] (0 where t is ignored),
// then reduced. Mean divides by the total weight of the targets that were not ignored.
template <typename T>
void negative_log_likelihood(const LossProblem& p, const T* log_prob, const Tensor& target, const T* weights,
                             T* out) {
  using E = Element<T>;
  double total = 0, weight_total = 0;
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t d = 0; d < p.inner; ++d) {
      int64_t flat = n * p.inner + d;
      int64_t t = read_integer(target, flat);
      double loss = 0, weight = 0;
      if (!(p.has_ignore && t == p.ignore_index)) {
        if (t < 0 || t >= p.classes)
          throw Error(p.who + ": target class " + std::to_string(t) + " is outside [0, " +
                      std::to_string(p.classes) + ")");
        weight = weights ? double(E::load(weights[t])) : 1.0;
        loss = -double(E::load(log_prob[(n * p.classes + t) * p.inner + d])) * weight;
      }
      if (p.reduction == Reduction::none) out[flat] = E::store(ComputeOf<T>(loss));
      total += loss;
      weight_total += weight;
    }
  if (p.reduction == Reduction::sum) out[0] = E::store(ComputeOf<T>(total));
  if (p.reduction == Reduction::mean) out[0] = E::store(ComputeOf<T>(total / weight_total));
}

// Log-softmax over the class axis (stride `inner`) of scores [N, C, D], computed in double so the
// loss of a confident wrong prediction keeps its digits.
template <typename T>
void log_softmax_classes(const LossProblem& p, const T* scores, T* log_prob, ThreadPool* pool) {
  using E = Element<T>;
  parallel_range(pool, p.batch * p.inner, 64, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      int64_t n = row / p.inner, d = row % p.inner;
      const T* x = scores + n * p.classes * p.inner + d;
      T* y = log_prob + n * p.classes * p.inner + d;
      double peak = -INFINITY;
      for (int64_t c = 0; c < p.classes; ++c) peak = std::max(peak, double(E::load(x[c * p.inner])));
      double sum = 0;
      for (int64_t c = 0; c < p.classes; ++c) sum += std::exp(double(E::load(x[c * p.inner])) - peak);
      double log_sum = peak + std::log(sum);
      for (int64_t c = 0; c < p.classes; ++c)
        y[c * p.inner] = E::store(ComputeOf<T>(double(E::load(x[c * p.inner])) - log_sum));
    }
  });
}

std::unique_ptr<Kernel> make_negative_log_likelihood_loss(KernelCreateContext& ctx) {
  LossProblem p = describe_loss(ctx, true);
  DType dtype = ctx.input(0).dtype;
  return std::make_unique<LambdaKernel>(
      [p, dtype](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext&) {
        visit_float(dtype, p.who, [&](auto tag) {
          using T = decltype(tag);
          const T* weights = p.has_weights ? in[2]->data<T>() : nullptr;
          negative_log_likelihood<T>(p, in[0]->data<T>(), *in[1], weights, o[0]->data<T>());
        });
      });
}

std::unique_ptr<Kernel> make_softmax_cross_entropy_loss(KernelCreateContext& ctx) {
  LossProblem p = describe_loss(ctx, true);
  DType dtype = ctx.input(0).dtype;
  bool want_log_prob = ctx.node.outputs.size() > 1 && ctx.node.outputs[1] >= 0;
  if (want_log_prob) ctx.set_output(1, dtype, ctx.input(0).shape);
  int64_t numel = shape_numel(ctx.input(0).shape);
  return std::make_unique<LambdaKernel>(
      [p, dtype, numel](const std::vector<const Tensor*>& in, const std::vector<Tensor*>& o, ExecContext& e) {
        // The log-probabilities go to output 1 when it is wanted, else to a scratch tensor.
        Tensor scratch;
        Tensor* log_prob = o.size() > 1 ? o[1] : nullptr;
        if (!log_prob) {
          scratch = Tensor(dtype, {numel});
          log_prob = &scratch;
        }
        visit_float(dtype, p.who, [&](auto tag) {
          using T = decltype(tag);
          log_softmax_classes<T>(p, in[0]->data<T>(), log_prob->data<T>(), &e.pool);
          const T* weights = p.has_weights ? in[2]->data<T>() : nullptr;
          negative_log_likelihood<T>(p, log_prob->data<T>(), *in[1], weights, o[0]->data<T>());
        });
      },
      double(numel) * 4);
}

}  // namespace

void register_loss_operators(OperatorRegistry& registry) {
  registry.add("NegativeLogLikelihoodLoss", 12, 18, make_negative_log_likelihood_loss);
  registry.add("SoftmaxCrossEntropyLoss", 12, 18, make_softmax_cross_entropy_loss);
}

}  // namespace tessera
