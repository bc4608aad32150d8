// Elementwise and activation operators checked at the kernel level against plain loops:
// broadcasting edge cases, integer semantics, casts, variadic ops and parameterized activations.
#include <gtest/gtest.h>

#include <cmath>

#include "ops_test_helpers.h"
#include "test_support.h"

namespace tessera::testing {
namespace {

Attributes attrs_int(const std::string& name, int64_t v) {
  Attributes a;
  a.set_int(name, v);
  return a;
}

struct BroadcastCase {
  Shape a, b;
};

const std::vector<BroadcastCase> kBroadcastCases = {
    {{2, 3, 4}, {4}},         {{2, 1, 4}, {3, 1}},       {{}, {5}},
    {{1}, {2, 3}},            {{3, 1, 5, 1}, {1, 4, 1, 6}}, {{7, 33}, {7, 33}},
    {{64, 1000}, {64, 1}},    {{100003}, {100003}},      {{5, 1, 3}, {1, 1, 1}},
    {{2, 0, 3}, {3}},         {{1, 130, 1}, {9, 1, 17}},
};

double reference_binary(const std::string& op, double x, double y) {
  if (op == "Add") return x + y;
  if (op == "Sub") return x - y;
  if (op == "Mul") return x * y;
  if (op == "Div") return x / y;
  if (op == "Max") return std::max(x, y);
  if (op == "Min") return std::min(x, y);
  if (op == "Pow") return std::pow(x, y);
  return 0;
}

TEST(OpsElementwise, FloatBinaryBroadcastMatchesLoops) {
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"}) {
    int seed = 1;
    for (const auto& c : kBroadcastCases) {
      bool is_pow = std::string(op) == "Pow";
      Tensor a = random_tensor(c.a, seed++, is_pow ? 0.1f : -2.f, 2.f);
      Tensor b = random_tensor(c.b, seed++, 0.5f, 2.f);
      Tensor y = run_op(op, 14, {a, b})[0];
      Shape out = y.shape();
      std::vector<double> expected(size_t(y.numel()));
      for (int64_t i = 0; i < y.numel(); ++i)
        expected[size_t(i)] = reference_binary(op, a.data<float>()[broadcast_index(c.a, out, i)],
                                               b.data<float>()[broadcast_index(c.b, out, i)]);
      expect_values(y, expected, 1e-5, std::string(op) + " " + shape_to_string(c.a) + " " +
                                           shape_to_string(c.b));
    }
  }
}

TEST(OpsElementwise, IncompatibleShapesThrowWithNodeName) {
  try {
    run_op("Add", 14, {random_tensor({2, 3}, 1), random_tensor({4}, 2)});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("test_Add"), std::string::npos) << e.what();
  }
}

TEST(OpsElementwise, IntegerArithmeticTruncatesAndBroadcasts) {
  Tensor a = ints({2, 3}, {7, -7, 9, 100, -5, 0});
  Tensor b = ints({3}, {2, 2, -4});
  expect_values(run_op("Add", 14, {a, b})[0], {9, -5, 5, 102, -3, -4});
  expect_values(run_op("Mul", 14, {a, b})[0], {14, -14, -36, 200, -10, 0});
  expect_values(run_op("Div", 14, {a, b})[0], {3, -3, -2, 50, -2, 0});
  Tensor y = run_op("Sub", 14, {a.cast(DType::i32), b.cast(DType::i32)})[0];
  EXPECT_EQ(y.dtype(), DType::i32);
  expect_values(y, {5, -9, 13, 98, -7, 4});
  Tensor u = run_op("Add", 14, {ints({2}, {200, 3}).cast(DType::u8), ints({2}, {100, 4}).cast(DType::u8)})[0];
  expect_values(u, {44, 7});  // uint8 wraps
}

TEST(OpsElementwise, ModFollowsDivisorSignUnlessFmod) {
  Tensor a = ints({4}, {-4, 7, 5, -5}), b = ints({4}, {3, -3, 3, -3});
  expect_values(run_op("Mod", 13, {a, b})[0], {2, -2, 2, -2});
  expect_values(run_op("Mod", 13, {a, b}, attrs_int("fmod", 1))[0], {-1, 1, 2, -2});
  Tensor f = run_op("Mod", 13, {floats({2}, {-4.5f, 7.f}), floats({2}, {2.f, -3.f})}, attrs_int("fmod", 1))[0];
  expect_values(f, {-0.5, 1.0});
}

TEST(OpsElementwise, PowMixedTypesKeepsBaseType) {
  Tensor y = run_op("Pow", 15, {floats({3}, {1.f, 2.f, 3.f}), ints({3}, {4, 5, 6})})[0];
  EXPECT_EQ(y.dtype(), DType::f32);
  expect_values(y, {1, 32, 729});
  Tensor z = run_op("Pow", 15, {ints({3}, {1, 2, 3}), floats({1}, {2.f})})[0];
  EXPECT_EQ(z.dtype(), DType::i64);
  expect_values(z, {1, 4, 9});
}

TEST(OpsElementwise, ComparisonsAndLogic) {
  Tensor a = floats({2, 3}, {1, 2, 3, 4, 5, 6}), b = floats({3}, {2, 2, 7});
  expect_values(run_op("Equal", 11, {a, b})[0], {0, 1, 0, 0, 0, 0});
  expect_values(run_op("Less", 13, {a, b})[0], {1, 0, 1, 0, 0, 1});
  expect_values(run_op("Greater", 13, {a, b})[0], {0, 0, 0, 1, 1, 0});
  expect_values(run_op("LessOrEqual", 16, {a, b})[0], {1, 1, 1, 0, 0, 1});
  Tensor ge = run_op("GreaterOrEqual", 16, {a, b})[0];
  EXPECT_EQ(ge.dtype(), DType::boolean);
  expect_values(ge, {0, 1, 0, 1, 1, 0});
  expect_values(run_op("Equal", 13, {ints({2}, {5, 6}), ints({1}, {6})})[0], {0, 1});
  Tensor p = ints({2, 2}, {1, 1, 0, 0}).cast(DType::boolean), q = ints({2}, {1, 0}).cast(DType::boolean);
  expect_values(run_op("And", 7, {p, q})[0], {1, 0, 0, 0});
  expect_values(run_op("Or", 7, {p, q})[0], {1, 1, 1, 0});
  expect_values(run_op("Xor", 7, {p, q})[0], {0, 1, 1, 0});
  expect_values(run_op("Not", 1, {p})[0], {0, 0, 1, 1});
}

TEST(OpsElementwise, WhereBroadcastsAllThree) {
  Tensor cond = ints({2, 1}, {1, 0}).cast(DType::boolean);
  Tensor x = ints({3}, {1, 2, 3}), y = ints({2, 3}, {10, 20, 30, 40, 50, 60});
  Tensor out = run_op("Where", 16, {cond, x, y})[0];
  EXPECT_EQ(out.shape(), (Shape{2, 3}));
  expect_values(out, {1, 2, 3, 40, 50, 60});
  Tensor f = run_op("Where", 16, {cond, floats({1}, {1.5f}), floats({}, {-2.f})})[0];
  expect_values(f, {1.5, -2});
}

TEST(OpsElementwise, VariadicOpsBroadcastAcrossAllInputs) {
  Tensor a = random_tensor({2, 1, 3}, 3), b = random_tensor({4, 1}, 4), c = random_tensor({3}, 5);
  Shape out{2, 4, 3};
  for (const char* op : {"Sum", "Mean", "Max", "Min"}) {
    Tensor y = run_op(op, 13, {a, b, c})[0];
    ASSERT_EQ(y.shape(), out);
    std::vector<double> expected;
    for (int64_t i = 0; i < 24; ++i) {
      double va = a.data<float>()[broadcast_index(a.shape(), out, i)];
      double vb = b.data<float>()[broadcast_index(b.shape(), out, i)];
      double vc = c.data<float>()[broadcast_index(c.shape(), out, i)];
      std::string o = op;
      expected.push_back(o == "Sum"    ? va + vb + vc
                         : o == "Mean" ? (va + vb + vc) / 3
                         : o == "Max"  ? std::max({va, vb, vc})
                                       : std::min({va, vb, vc}));
    }
    expect_values(y, expected, 1e-5, op);
  }
  expect_values(run_op("Max", 13, {ints({3}, {1, 9, -3})})[0], {1, 9, -3});
  expect_values(run_op("Min", 13, {ints({3}, {1, 9, -3}).cast(DType::i32), ints({1}, {2}).cast(DType::i32)})[0],
                {1, 2, -3});
}

TEST(OpsElementwise, CastRoundsToNearestEvenAndTruncatesToInt) {
  // 1 + 2^-11 is halfway between two f16 values; ties go to the even one (1.0).
  Tensor x = floats({5}, {1.f + 1.f / 2048.f, 1.f + 3.f / 2048.f, -2.7f, 65504.f, 1e-8f});
  Attributes to_f16 = attrs_int("to", 10);
  Tensor h = run_op("Cast", 13, {x}, to_f16)[0];
  EXPECT_EQ(h.dtype(), DType::f16);
  EXPECT_EQ(h.data<uint16_t>()[0], 0x3c00);
  EXPECT_EQ(h.data<uint16_t>()[1], 0x3c02);
  expect_values(h, {1.0, 1.001953125, -2.69921875, 65504, 0}, 1e-6);
  Tensor i = run_op("Cast", 13, {x}, attrs_int("to", 6))[0];
  EXPECT_EQ(i.dtype(), DType::i32);
  expect_values(i, {1, 1, -2, 65504, 0});
  Tensor back = run_op("Cast", 13, {ints({3}, {0, 3, -1})}, attrs_int("to", 9))[0];
  expect_values(back, {0, 1, 1});
  Tensor like = run_op("CastLike", 15, {ints({2}, {3, 4}), floats({1}, {0.f})})[0];
  EXPECT_EQ(like.dtype(), DType::f32);
  expect_values(like, {3, 4});
  EXPECT_THROW(run_op("Cast", 13, {x}, attrs_int("to", 11)), Error);  // double
}

TEST(OpsElementwise, IdentityAndDropoutCopy) {
  Tensor x = random_tensor({3, 5}, 9);
  expect_values(run_op("Identity", 16, {x})[0], values_of(x));
  auto outs = run_op("Dropout", 13, {x}, {}, 2);
  expect_values(outs[0], values_of(x));
  EXPECT_EQ(outs[1].dtype(), DType::boolean);
  expect_values(outs[1], std::vector<double>(15, 1.0));
}

// ---------------------------------------------------------------- activations

TEST(OpsActivation, UnaryOpsMatchScalarFormulas) {
  Tensor x = random_tensor({3, 1001}, 11, -3.f, 3.f);
  struct Case {
    const char* op;
    double (*f)(double);
  };
  const Case cases[] = {
      {"Relu", [](double v) { return std::max(v, 0.0); }},
      {"Sigmoid", [](double v) { return 1 / (1 + std::exp(-v)); }},
      {"Tanh", [](double v) { return std::tanh(v); }},
      {"Exp", [](double v) { return std::exp(v); }},
      {"Neg", [](double v) { return -v; }},
      {"Abs", [](double v) { return std::fabs(v); }},
      {"Floor", [](double v) { return std::floor(v); }},
      {"Ceil", [](double v) { return std::ceil(v); }},
      {"Softsign", [](double v) { return v / (1 + std::fabs(v)); }},
      {"Softplus", [](double v) { return std::log1p(std::exp(v)); }},
      {"Sin", [](double v) { return std::sin(v); }},
      {"Erf", [](double v) { return std::erf(v); }},
      {"Sign", [](double v) { return double((v > 0) - (v < 0)); }},
      {"HardSwish", [](double v) { return v * std::clamp(v / 6 + 0.5, 0.0, 1.0); }},
  };
  for (const auto& c : cases) {
    Tensor y = run_op(c.op, 14, {x})[0];
    std::vector<double> expected;
    for (int64_t i = 0; i < x.numel(); ++i) expected.push_back(c.f(x.data<float>()[i]));
    expect_values(y, expected, 2e-5, c.op);
  }
}

TEST(OpsActivation, AttributesAndDefaults) {
  Tensor x = floats({4}, {-2.f, -0.5f, 0.5f, 2.f});
  Attributes alpha;
  alpha.set_float("alpha", 0.1f);
  expect_values(run_op("LeakyRelu", 16, {x}, alpha)[0], {-0.2, -0.05, 0.5, 2});
  expect_values(run_op("LeakyRelu", 16, {x})[0], {-0.02, -0.005, 0.5, 2});
  expect_values(run_op("Elu", 6, {x})[0], {std::exp(-2.0) - 1, std::exp(-0.5) - 1, 0.5, 2});
  expect_values(run_op("HardSigmoid", 6, {x})[0], {0.1, 0.4, 0.6, 0.9});
  expect_values(run_op("ThresholdedRelu", 10, {x})[0], {0, 0, 0, 2});
}

TEST(OpsActivation, ClipAttributesInputsAndIntegers) {
  Tensor x = floats({5}, {-3, -1, 0, 1, 3});
  Attributes bounds;
  bounds.set_float("min", -1.5f);
  bounds.set_float("max", 0.5f);
  expect_values(run_op("Clip", 6, {x}, bounds)[0], {-1.5, -1, 0, 0.5, 0.5});
  expect_values(run_op("Clip", 13, {x, floats({}, {-2.f}), floats({}, {2.f})})[0], {-2, -1, 0, 1, 2});
  expect_values(run_op("Clip", 13, {x, std::nullopt, floats({}, {0.f})})[0], {-3, -1, 0, 0, 0});
  expect_values(run_op("Clip", 13, {x})[0], {-3, -1, 0, 1, 3});
  Tensor i8 = ints({4}, {-100, -5, 5, 100}).cast(DType::i8);
  Tensor y = run_op("Clip", 13, {i8, ints({}, {-10}).cast(DType::i8), ints({}, {10}).cast(DType::i8)})[0];
  EXPECT_EQ(y.dtype(), DType::i8);
  expect_values(y, {-10, -5, 5, 10});
}

TEST(OpsActivation, PReluBroadcastsSlope) {
  Tensor x = random_tensor({2, 3, 4, 5}, 21, -1.f, 1.f);
  Tensor slope = random_tensor({3, 1, 1}, 22, 0.f, 1.f);
  Tensor y = run_op("PRelu", 16, {x, slope})[0];
  std::vector<double> expected;
  for (int64_t i = 0; i < x.numel(); ++i) {
    double v = x.data<float>()[i];
    expected.push_back(v < 0 ? v * slope.data<float>()[broadcast_index(slope.shape(), x.shape(), i)] : v);
  }
  expect_values(y, expected);
  EXPECT_THROW(run_op("PRelu", 16, {random_tensor({3}, 1), random_tensor({2, 3}, 2)}), Error);
}

TEST(OpsActivation, HalfInputsComputeThroughFloat) {
  Tensor x = floats({4}, {-1.f, 0.f, 0.5f, 2.f}).cast(DType::f16);
  Tensor y = run_op("Relu", 14, {x})[0];
  EXPECT_EQ(y.dtype(), DType::f16);
  expect_values(y, {0, 0, 0.5, 2});
  expect_values(run_op("Abs", 13, {ints({3}, {-4, 0, 4})})[0], {4, 0, 4});
}

}  // namespace
}  // namespace tessera::testing
