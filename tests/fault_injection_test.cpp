// Fault injection: each bit-level fault model and each spatial pattern corrupts exactly the
// elements and bits it claims (checked on the tensors); outcomes are classified as a plain
// double-precision re-computation of a hand-made model says; golden-run reuse gives the same
// records as full re-runs; a campaign with a fixed seed is reproducible over threads and splits;
// the statistics match their textbook formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "reliability/fault_campaign.h"
#include "reliability/fault_models.h"
#include "reliability/spatial_patterns.h"
#include "tessera/npy.h"
#include "tessera/onnx.h"
#include "test_support.h"

using namespace tessera;
using namespace tessera::reliability;

namespace {

uint32_t float_bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}
float bits_float(uint32_t b) {
  float x;
  std::memcpy(&x, &b, 4);
  return x;
}

// ------------------------------------------------------------------------- bit-level models

// Applies `model` to one element and checks that only that element changed, in the bits the model
// names.
void check_bit_fault(DType dtype, const std::string& text, uint64_t seed) {
  SCOPED_TRACE(text + " on " + dtype_name(dtype));
  Tensor t = tessera::testing::random_tensor({7, 5}, uint32_t(seed), 0.5f, 1.5f).cast(dtype);
  Tensor before = t.clone();
  const FaultModel model = parse_fault_model(text);
  const int width = element_bits(dtype);
  Rng rng(seed);
  const int64_t index = int64_t(seed % 35);
  const ElementFault f = apply_fault(t, index, model, rng);
  EXPECT_EQ(f.before, read_element_bits(before, index));
  EXPECT_EQ(f.after, read_element_bits(t, index));
  for (int64_t i = 0; i < t.numel(); ++i)
    if (i != index) EXPECT_EQ(read_element_bits(t, i), read_element_bits(before, i)) << "element " << i;
  const uint64_t changed = f.before ^ f.after;
  EXPECT_EQ(changed >> width, 0u);
  switch (model.kind) {
    case FaultKind::bit_flip:
      EXPECT_EQ(__builtin_popcountll(changed), 1);
      if (model.bit >= 0) EXPECT_EQ(changed, uint64_t(1) << model.bit);
      break;
    case FaultKind::adjacent_bit_flips: {
      EXPECT_EQ(__builtin_popcountll(changed), model.bits);
      const int low = __builtin_ctzll(changed);
      EXPECT_EQ(changed, ((uint64_t(1) << model.bits) - 1) << low);  // one run of set bits
      if (model.bit >= 0) EXPECT_EQ(low, model.bit);
      break;
    }
    case FaultKind::random_bit_flips: EXPECT_EQ(__builtin_popcountll(changed), model.bits); break;
    case FaultKind::stuck_at_0:
    case FaultKind::stuck_at_1: {
      EXPECT_LE(__builtin_popcountll(changed), 1);
      const int bit = changed ? __builtin_ctzll(changed) : model.bit;
      if (model.bit >= 0) EXPECT_EQ(bit, model.bit);
      if (bit >= 0) EXPECT_EQ((f.after >> bit) & 1, model.kind == FaultKind::stuck_at_1 ? 1u : 0u);
      break;
    }
    case FaultKind::random_value: break;  // any pattern of the element's width (checked above)
    case FaultKind::zero: EXPECT_EQ(f.after, 0u); break;
  }
}

TEST(FaultModels, EachModelChangesExactlyTheBitsItNames) {
  const std::vector<std::string> f32_models = {"bitflip", "bitflip:0", "bitflip:22", "bitflip:23", "bitflip:30",
                                               "bitflip:31", "adjacent:2", "adjacent:3@20", "multibit:3",
                                               "multibit:8", "stuck-at-0", "stuck-at-1:30", "stuck-at-0:29",
                                               "random-value", "zero"};
  for (uint64_t seed = 1; seed <= 20; ++seed)
    for (const std::string& m : f32_models) check_bit_fault(DType::f32, m, seed);
  const std::vector<std::string> i8_models = {"bitflip", "bitflip:7", "adjacent:2", "adjacent:2@6", "multibit:3",
                                              "stuck-at-1", "stuck-at-0:0", "random-value", "zero"};
  for (uint64_t seed = 1; seed <= 20; ++seed)
    for (const std::string& m : i8_models) check_bit_fault(DType::i8, m, seed);
}

TEST(FaultModels, StuckAtIsMaskedWhereTheBitAlreadyHasThatValue) {
  Tensor t(DType::f32, {1});
  t.data<float>()[0] = 1.0f;  // 0x3F800000: bit 30 is 0, bits 23..29 are 1
  Rng rng(1);
  EXPECT_EQ(apply_fault(t, 0, parse_fault_model("stuck-at-1:29"), rng).changed_bits(), 0u);
  EXPECT_EQ(t.data<float>()[0], 1.0f);
  EXPECT_EQ(apply_fault(t, 0, parse_fault_model("stuck-at-1:30"), rng).changed_bits(), uint64_t(1) << 30);
  EXPECT_TRUE(std::isinf(t.data<float>()[0]));  // exponent all ones, mantissa 0
}

TEST(FaultModels, ParseRejectsMalformedModels) {
  for (const char* bad : {"", "flip", "bitflip:", "bitflip:x", "bitflip:64", "adjacent", "adjacent:0",
                          "multibit:2@3", "zero:1", "random-value:3", "stuck-at-2"})
    EXPECT_THROW(parse_fault_model(bad), Error) << bad;
  Rng rng(1);
  Tensor t(DType::i8, {4});
  EXPECT_THROW(apply_fault(t, 0, parse_fault_model("bitflip:8"), rng), Error);  // beyond 8 bits
  EXPECT_THROW(apply_fault(t, 4, parse_fault_model("bitflip"), rng), Error);    // beyond the tensor
  EXPECT_EQ(parse_fault_model("adjacent:3@20").text(), "adjacent:3@20");
}

// --------------------------------------------------------------------------- spatial patterns

ErrorModelSet default_models() {
  return load_error_models(tessera::testing::source_path("data/error_models/classes.json"));
}

struct Coord {
  int64_t n, c, h, w;
};
Coord coord(const Shape& s, int64_t flat) {  // NCHW, by plain division
  Coord k;
  k.w = flat % s[3];
  flat /= s[3];
  k.h = flat % s[2];
  flat /= s[2];
  k.c = flat % s[1];
  k.n = flat / s[1];
  return k;
}

// Checks the geometry each named pattern of the default file promises.
void check_pattern_geometry(const SpatialPattern& p, const Shape& shape, const std::vector<int64_t>& positions) {
  ASSERT_FALSE(positions.empty());
  const int64_t H = shape[2], W = shape[3];
  std::vector<Coord> k;
  std::set<int64_t> channels;
  for (int64_t flat : positions) {
    k.push_back(coord(shape, flat));
    channels.insert(k.back().c);
    EXPECT_EQ(k.back().n, k[0].n) << "one batch item";
  }
  const int64_t first_channel = *channels.begin(), channel_count = int64_t(channels.size());
  const bool consecutive = *channels.rbegin() - first_channel + 1 == channel_count;
  auto in_channel = [&](int64_t c) {
    std::vector<Coord> r;
    for (const Coord& x : k)
      if (x.c == c) r.push_back(x);
    return r;
  };
  if (p.name == "single_point") {
    EXPECT_EQ(positions.size(), 1u);
  } else if (p.name == "same_row") {
    EXPECT_EQ(channel_count, 1);
    EXPECT_GE(positions.size(), 1u);
    EXPECT_LE(positions.size(), 16u);
    for (size_t i = 0; i < k.size(); ++i) {
      EXPECT_EQ(k[i].h, k[0].h);
      EXPECT_EQ(k[i].w, k[0].w + int64_t(i));  // consecutive in the row
    }
  } else if (p.name == "bullet_wake") {
    EXPECT_TRUE(consecutive);
    EXPECT_GE(channel_count, 2);
    EXPECT_LE(channel_count, 32);
    for (const Coord& x : k) EXPECT_TRUE(x.h == k[0].h && x.w == k[0].w);
    EXPECT_EQ(int64_t(positions.size()), channel_count);
  } else if (p.name == "skip_2" || p.name == "skip_4") {
    const int64_t stride = p.name == "skip_2" ? 2 : 4;
    EXPECT_EQ(channel_count, 1);
    for (size_t i = 1; i < positions.size(); ++i) EXPECT_EQ(positions[i] - positions[i - 1], stride);
  } else if (p.name == "single_block" || p.name == "multichannel_block") {
    if (p.name == "single_block") EXPECT_EQ(channel_count, 1);
    if (p.name == "multichannel_block") {
      EXPECT_TRUE(consecutive);
      EXPECT_GE(channel_count, std::min<int64_t>(2, shape[1]));
    }
    std::vector<Coord> c0 = in_channel(first_channel);
    int64_t h0 = H, h1 = -1, w0 = W, w1 = -1;
    for (const Coord& x : c0) h0 = std::min(h0, x.h), h1 = std::max(h1, x.h), w0 = std::min(w0, x.w), w1 = std::max(w1, x.w);
    EXPECT_EQ(int64_t(c0.size()), (h1 - h0 + 1) * (w1 - w0 + 1)) << "a full rectangle";
    EXPECT_LE(h1 - h0 + 1, 4);
    EXPECT_LE(w1 - w0 + 1, 8);
    for (int64_t c : channels) {
      std::vector<Coord> other = in_channel(c);
      ASSERT_EQ(other.size(), c0.size());
      for (size_t i = 0; i < c0.size(); ++i) EXPECT_TRUE(other[i].h == c0[i].h && other[i].w == c0[i].w);
    }
  } else if (p.name == "alternated_blocks") {
    EXPECT_EQ(channel_count, 1);
    // Runs of equal length separated by gaps of that length (the last run may be cut short).
    std::vector<int64_t> runs{1};
    for (size_t i = 1; i < positions.size(); ++i) {
      if (positions[i] == positions[i - 1] + 1) {
        ++runs.back();
      } else {
        EXPECT_EQ(positions[i] - positions[i - 1] - 1, runs[0]) << "gap equals the block";
        runs.push_back(1);
      }
    }
    for (size_t r = 0; r + 1 < runs.size(); ++r) EXPECT_EQ(runs[r], runs[0]);
  } else if (p.name == "full_channel") {
    EXPECT_EQ(channel_count, 1);
    EXPECT_EQ(int64_t(positions.size()), H * W);
  } else if (p.name == "shattered_channel") {
    EXPECT_TRUE(consecutive);
    const Coord origin = in_channel(*std::next(channels.begin()))[0];  // the point of channel 2
    for (int64_t c : channels) {
      std::vector<Coord> in = in_channel(c);
      if (c != first_channel) {
        ASSERT_EQ(in.size(), 1u);
        EXPECT_TRUE(in[0].h == origin.h && in[0].w == origin.w);
        continue;
      }
      for (size_t i = 0; i < in.size(); ++i) {  // a row starting at the wake's position
        EXPECT_EQ(in[i].h, origin.h);
        EXPECT_EQ(in[i].w, origin.w + int64_t(i));
      }
    }
  } else if (p.name == "random") {
    EXPECT_LE(channel_count, 8);
    for (int64_t c : channels) EXPECT_LE(in_channel(c).size(), 8u);
  } else {
    ADD_FAILURE() << "no geometry check for pattern " << p.name;
  }
}

TEST(SpatialPatterns, EveryDefaultPatternHasItsGeometry) {
  const ErrorModelSet models = default_models();
  EXPECT_EQ(models.patterns.size(), 11u);
  for (const Shape& shape : {Shape{2, 40, 9, 13}, Shape{1, 3, 5, 4}})
    for (const SpatialPattern& p : models.patterns)
      for (uint64_t seed = 1; seed <= 50; ++seed) {
        SCOPED_TRACE(p.name + " seed " + std::to_string(seed) + " shape " + shape_to_string(shape));
        Rng rng(seed);
        const std::vector<int64_t> positions = draw_pattern_positions(shape, p, int64_t(seed % shape[0]), rng);
        for (int64_t x : positions) ASSERT_TRUE(x >= 0 && x < shape_numel(shape));
        EXPECT_EQ(coord(shape, positions[0]).n, int64_t(seed % shape[0]));
        check_pattern_geometry(p, shape, positions);
        if (::testing::Test::HasFailure()) return;
      }
}

TEST(SpatialPatterns, CorruptExactlyTheirPositionsWithValuesOfTheirClass) {
  const ErrorModelSet models = default_models();
  for (const char* value_class : {"in_range", "out_of_range", "nan_inf", "zero"})
    for (const SpatialPattern& p : models.patterns)
      for (uint64_t seed = 1; seed <= 10; ++seed) {
        SCOPED_TRACE(p.name + std::string(" ") + value_class);
        Tensor t = tessera::testing::random_tensor({1, 16, 6, 7}, uint32_t(seed), 1.f, 2.f);
        const Tensor clean = t.clone();
        Rng rng(seed);
        SpatialPattern only = p;
        only.values = {{value_class, 1.0}};
        const SpatialFault fault = apply_spatial_fault(t, only, models.values, rng);
        EXPECT_STREQ(value_class_name(fault.value_class), value_class);
        const std::set<int64_t> claimed(fault.positions.begin(), fault.positions.end());
        float lo = 2, hi = 1;
        for (int64_t i = 0; i < clean.numel(); ++i) lo = std::min(lo, clean.data<float>()[i]), hi = std::max(hi, clean.data<float>()[i]);
        for (int64_t i = 0; i < t.numel(); ++i) {
          const float now = t.data<float>()[i], was = clean.data<float>()[i];
          if (!claimed.count(i)) {
            EXPECT_EQ(float_bits(now), float_bits(was)) << "unclaimed element " << i << " changed";
            continue;
          }
          switch (fault.value_class) {
            case ValueClass::in_range: EXPECT_TRUE(now >= lo && now <= hi) << now; break;
            case ValueClass::out_of_range: EXPECT_GT(std::fabs(now), 10 * std::max(std::fabs(lo), std::fabs(hi))); break;
            case ValueClass::nan_inf: EXPECT_FALSE(std::isfinite(now)); break;
            case ValueClass::zero: EXPECT_EQ(now, 0.f); break;
          }
        }
      }
}

TEST(SpatialPatterns, MalformedModelFilesNameTheProblem) {
  auto error_of = [](const std::string& text) {
    try {
      parse_error_models(text, "m.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of("{").find("not JSON"), std::string::npos);
  EXPECT_NE(error_of("{\"patterns\": []}").find("non-empty"), std::string::npos);
  EXPECT_NE(error_of(R"({"patterns": [{"name": "a", "elements": {"shape": "blob"}}]})").find("unknown shape 'blob'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"patterns": [{"name": "a", "elements": {"shape": "row"}}]})").find("needs \"length\""),
            std::string::npos);
  EXPECT_NE(error_of(R"({"patterns": [{"name": "a", "elements": {"shape": "row", "length": [5, 2]}}]})").find("min <= max"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"patterns": [{"name": "a", "elements": {"shape": "point"}}, {"name": "a", "elements": {"shape": "point"}}]})")
                .find("used twice"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"values": {"purple": 1}, "patterns": [{"name": "a", "elements": {"shape": "point"}}]})")
                .find("unknown value class 'purple'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"patterns": [{"name": "a", "colour": 1, "elements": {"shape": "point"}}]})").find("unknown field 'colour'"),
            std::string::npos);
  EXPECT_THROW(load_error_models("/nonexistent/models.json"), Error);
  EXPECT_THROW(default_models().find("no_such_pattern"), Error);
}

// ------------------------------------------------------------------------------- statistics

TEST(CampaignStatistics, LeveugleAndWilsonMatchTheirFormulas) {
  EXPECT_NEAR(normal_quantile_two_sided(0.95), 1.959964, 1e-5);
  EXPECT_NEAR(normal_quantile_two_sided(0.99), 2.575829, 1e-5);
  // Infinite population: n = z^2 / (4 e^2) = 9604 for 1% at 95%.
  EXPECT_EQ(leveugle_sample_size(1e15, 0.01, 0.95), 9604);
  // Small populations need fewer: N = 1000 -> 1000 / (1 + 1e-4 * 999 / 0.9604) = 906.
  EXPECT_EQ(leveugle_sample_size(1000, 0.01, 0.95), 906);
  EXPECT_EQ(leveugle_sample_size(1e9, 0.05, 0.95), 385);
  // Wilson: 10 of 100 at 95%: (0.0552, 0.1744) (textbook values).
  auto [lo, hi] = wilson_interval(10, 100, 0.95);
  EXPECT_NEAR(lo, 0.0552, 1e-4);
  EXPECT_NEAR(hi, 0.1744, 1e-4);
  auto [lo0, hi0] = wilson_interval(0, 50, 0.95);
  EXPECT_EQ(lo0, 0);
  EXPECT_NEAR(hi0, 0.0714, 1e-4);
}

TEST(CampaignOptionsParsing, SitesAndMetrics) {
  SiteSelector s = parse_site_selector("accumulator:op=Conv,layer=conv1,element=7");
  EXPECT_EQ(*s.site, FaultSite::accumulator);
  EXPECT_EQ(s.op_type, "Conv");
  EXPECT_EQ(s.layer, "conv1");
  EXPECT_EQ(s.element, 7);
  EXPECT_FALSE(parse_site_selector("any").site.has_value());
  for (const char* bad : {"everywhere", "weight:", "weight:layer", "weight:colour=red", "weight:element=-1"})
    EXPECT_THROW(parse_site_selector(bad), Error) << bad;
  EXPECT_EQ(parse_outcome_metric("pixels").threshold, 0.01);
  EXPECT_EQ(parse_outcome_metric("l2:0.5").threshold, 0.5);
  for (const char* bad : {"top5", "l2:x", "l2:-1", "top1:3"}) EXPECT_THROW(parse_outcome_metric(bad), Error) << bad;
}

// ------------------------------------------------------------------ outcomes on a hand-made model

// logits = Relu(x W1) W2: x [1, 6], W1 [6, 5], W2 [5, 4]. After fusion: step 0 MatMul(+Relu),
// step 1 MatMul.
struct TinyModel {
  Graph graph;
  std::vector<float> x, w1, w2;
  std::string hidden_layer, output_layer;
};

TinyModel tiny_model() {
  TinyModel m;
  tessera::testing::GraphBuilder b;
  const Tensor w1 = tessera::testing::random_tensor({6, 5}, 11), w2 = tessera::testing::random_tensor({5, 4}, 12);
  const Tensor x = tessera::testing::random_tensor({1, 6}, 13);
  m.x.assign(x.data<float>(), x.data<float>() + 6);
  m.w1.assign(w1.data<float>(), w1.data<float>() + 30);
  m.w2.assign(w2.data<float>(), w2.data<float>() + 20);
  int in = b.input("x", {1, 6});
  int h = b.node("MatMul", {in, b.constant("W1", w1)});
  int r = b.node("Relu", {h});
  int y = b.node("MatMul", {r, b.constant("W2", w2)});
  b.g.outputs = {y};
  m.graph = b.g;
  return m;
}

std::map<std::string, Tensor> tiny_input(const TinyModel& m) {
  Tensor x(DType::f32, {1, 6});
  std::copy(m.x.begin(), m.x.end(), x.data<float>());
  return {{"x", x}};
}

// What a fault should do, by plain loops in double: the outcome of the corrupted logits against
// the clean ones.
Outcome expected_outcome(const std::vector<double>& clean, const std::vector<double>& corrupted) {
  bool same = true, finite = true;
  for (size_t i = 0; i < clean.size(); ++i) {
    same = same && (clean[i] == corrupted[i] || (std::isnan(clean[i]) && std::isnan(corrupted[i])));
    finite = finite && std::isfinite(corrupted[i]);
  }
  if (same) return Outcome::masked;
  if (!finite) return Outcome::non_finite;
  auto top = [](const std::vector<double>& v) { return std::max_element(v.begin(), v.end()) - v.begin(); };
  return top(clean) == top(corrupted) ? Outcome::tolerable_sdc : Outcome::critical_sdc;
}

struct TinyReference {
  const TinyModel& m;
  // h = x W1 (f32 products, as the engine stores them), r = relu(h), logits = r W2, in double.
  std::vector<float> hidden() const {
    std::vector<float> h(5);
    for (int j = 0; j < 5; ++j) {
      double s = 0;
      for (int k = 0; k < 6; ++k) s += double(m.x[size_t(k)]) * m.w1[size_t(k * 5 + j)];
      h[size_t(j)] = float(s);
    }
    return h;
  }
  std::vector<double> logits(const std::vector<float>& relu_out, const std::vector<float>& w2) const {
    std::vector<double> y(4, 0.0);
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 5; ++k) y[size_t(j)] += double(relu_out[size_t(k)]) * w2[size_t(k * 4 + j)];
    return y;
  }
  static std::vector<float> relu(std::vector<float> h) {
    for (float& v : h) v = std::isnan(v) ? v : std::max(v, 0.f);
    return h;
  }
};

CampaignResult tiny_campaign(const TinyModel& m, const std::string& site, const std::string& fault, int64_t n) {
  CampaignOptions o;
  o.site = parse_site_selector(site);
  o.fault = parse_fault_model(fault);
  o.injections = n;
  o.threads = 1;
  return run_fault_campaign(m.graph, {tiny_input(m)}, o);
}

TEST(FaultCampaign, OutcomesOfActivationFaultsMatchPlainLoops) {
  const TinyModel m = tiny_model();
  const TinyReference ref{m};
  const std::vector<float> r = TinyReference::relu(ref.hidden());
  const std::vector<double> clean = ref.logits(r, m.w2);
  std::map<Outcome, int> seen;
  // Every element of the hidden layer's output, every bit: 160 hand-computable cases.
  for (int e = 0; e < 5; ++e)
    for (int bit = 0; bit < 32; ++bit) {
      CampaignResult result = tiny_campaign(m, "activation:op=MatMul,element=" + std::to_string(e),
                                            "bitflip:" + std::to_string(bit), 1);
      ASSERT_EQ(result.records.size(), 1u);
      const InjectionRecord& rec = result.records[0];
      if (rec.step != 0) continue;  // the draw picked the output layer's element e
      // The engine's f32 sum may differ from ours in the last bit: flip the value it held.
      EXPECT_NEAR(rec.before, r[size_t(e)], 1e-6 * (1 + std::fabs(r[size_t(e)])));
      std::vector<float> corrupted = r;
      corrupted[size_t(e)] = bits_float(float_bits(float(rec.before)) ^ (1u << bit));
      std::vector<float> clean_engine = r;
      clean_engine[size_t(e)] = float(rec.before);
      const Outcome expected = expected_outcome(ref.logits(clean_engine, m.w2), ref.logits(corrupted, m.w2));
      EXPECT_EQ(rec.outcome, expected) << "element " << e << " bit " << bit << ": " << rec.before << " -> "
                                       << corrupted[size_t(e)];
      EXPECT_EQ(rec.bit, bit);
      ++seen[expected];
    }
  EXPECT_GT(seen[Outcome::tolerable_sdc], 0);
  EXPECT_GT(seen[Outcome::critical_sdc], 0);
  EXPECT_GT(seen[Outcome::non_finite], 0);
}

TEST(FaultCampaign, OutcomesOfWeightAndAccumulatorFaultsMatchPlainLoops) {
  const TinyModel m = tiny_model();
  const TinyReference ref{m};
  const std::vector<float> h = ref.hidden();
  const std::vector<double> clean = ref.logits(TinyReference::relu(h), m.w2);
  int checked_weight = 0, checked_accumulator = 0, masked = 0;
  // Bits well above the rounding of a 6-term f32 sum (whose last bit our double reference may
  // round differently), so each flip's effect is unambiguous.
  for (int bit : {10, 12, 22, 23, 27, 30, 31})
    for (int e = 0; e < 20; ++e) {
      // W2 is read by step 1 only; W1's element e of the first 20.
      CampaignResult w = tiny_campaign(m, "weight:element=" + std::to_string(e), "bitflip:" + std::to_string(bit), 1);
      const InjectionRecord& rec = w.records[0];
      std::vector<float> w1 = m.w1, w2 = m.w2;
      std::vector<float>& target = rec.step == 0 ? w1 : w2;
      ASSERT_EQ(rec.before, target[size_t(e)]);
      target[size_t(e)] = bits_float(float_bits(target[size_t(e)]) ^ (1u << bit));
      TinyModel changed = m;
      changed.w1 = w1;
      const std::vector<double> corrupted = TinyReference{changed}.logits(TinyReference::relu(TinyReference{changed}.hidden()), w2);
      EXPECT_EQ(rec.outcome, expected_outcome(clean, corrupted)) << "weight element " << e << " bit " << bit << " step " << rec.step;
      masked += rec.outcome == Outcome::masked;
      ++checked_weight;
    }
  // Accumulators of the first MatMul: the raw product before its fused Relu.
  for (int bit : {0, 22, 23, 30, 31})
    for (int e = 0; e < 5; ++e) {
      CampaignResult a =
          tiny_campaign(m, "accumulator:element=" + std::to_string(e), "bitflip:" + std::to_string(bit), 1);
      const InjectionRecord& rec = a.records[0];
      ASSERT_EQ(rec.elements, 1) << "the hook reached the element";
      if (rec.step != 0) continue;
      EXPECT_NEAR(rec.before, h[size_t(e)], 1e-6 * (1 + std::fabs(h[size_t(e)])));
      std::vector<float> clean_engine = h, corrupted = h;
      clean_engine[size_t(e)] = float(rec.before);
      corrupted[size_t(e)] = bits_float(float_bits(float(rec.before)) ^ (1u << bit));
      EXPECT_EQ(rec.outcome, expected_outcome(ref.logits(TinyReference::relu(clean_engine), m.w2),
                                              ref.logits(TinyReference::relu(corrupted), m.w2)))
          << "accumulator " << e << " bit " << bit;
      ++checked_accumulator;
    }
  EXPECT_EQ(checked_weight, 140);
  EXPECT_GT(checked_accumulator, 0);
  EXPECT_GT(masked, 0);  // flips of W1 rows meeting a Relu-zeroed column, for one
}

// -------------------------------------------------------------------- zoo models: reuse, seeds

std::map<std::string, Tensor> zoo_inputs(const std::string& name) {
  const std::string folder = tessera::testing::source_path("models/zoo/" + name);
  std::ifstream meta_file(folder + "/meta.json");
  std::map<std::string, Tensor> inputs;
  if (!meta_file) return inputs;
  const nlohmann::json meta = nlohmann::json::parse(meta_file);
  for (const auto& in : meta["inputs"])
    inputs[in["name"].get<std::string>()] = read_npy(folder + "/" + in["file"].get<std::string>());
  return inputs;
}

void expect_same_records(const CampaignResult& a, const CampaignResult& b) {
  ASSERT_EQ(a.records.size(), b.records.size());
  for (size_t i = 0; i < a.records.size(); ++i) {
    const InjectionRecord &x = a.records[i], &y = b.records[i];
    SCOPED_TRACE("injection " + std::to_string(x.index) + " " + fault_site_name(x.site) + " at " + x.layer);
    EXPECT_EQ(x.index, y.index);
    EXPECT_EQ(x.step, y.step);
    EXPECT_EQ(x.site, y.site);
    EXPECT_EQ(x.element, y.element);
    EXPECT_EQ(x.bit, y.bit);
    EXPECT_EQ(x.pattern, y.pattern);
    EXPECT_TRUE(x.before == y.before || (std::isnan(x.before) && std::isnan(y.before)));
    EXPECT_EQ(x.outcome, y.outcome);
    EXPECT_TRUE(x.output_error == y.output_error || (std::isnan(x.output_error) && std::isnan(y.output_error)));
  }
}

TEST(FaultCampaign, GoldenReuseMatchesFullRerunsOnZooModels) {
  for (const char* name : {"resnet18", "bert_tiny"}) {
    SCOPED_TRACE(name);
    const auto inputs = zoo_inputs(name);
    if (inputs.empty()) GTEST_SKIP() << "model zoo not built (scripts/build_zoo.py)";
    const Graph model = load_onnx_model(tessera::testing::source_path(std::string("models/zoo/") + name + "/model.onnx"));
    for (const char* site : {"any", "activation", "accumulator"}) {
      CampaignOptions o;
      o.site = parse_site_selector(site);
      o.fault = parse_fault_model("bitflip");
      o.injections = 12;
      o.seed = 7;
      o.threads = 2;
      const CampaignResult reuse = run_fault_campaign(model, {inputs}, o);
      o.full_rerun = true;
      const CampaignResult full = run_fault_campaign(model, {inputs}, o);
      expect_same_records(reuse, full);
      int64_t steps_reuse = 0, steps_full = 0;
      for (size_t i = 0; i < reuse.records.size(); ++i) {
        steps_reuse += reuse.records[i].steps_run;
        steps_full += full.records[i].steps_run;
      }
      EXPECT_LT(steps_reuse, steps_full);
    }
    // Spatial patterns too.
    CampaignOptions o;
    o.pattern = "any";
    o.error_models = default_models();
    o.site = parse_site_selector("activation");
    o.injections = 12;
    o.threads = 2;
    const CampaignResult reuse = run_fault_campaign(model, {inputs}, o);
    o.full_rerun = true;
    expect_same_records(reuse, run_fault_campaign(model, {inputs}, o));
  }
}

TEST(FaultCampaign, FixedSeedIsReproducibleOverThreadsAndSplits) {
  const TinyModel m = tiny_model();
  std::vector<std::map<std::string, Tensor>> samples;
  for (uint32_t s = 0; s < 3; ++s) samples.push_back({{"x", tessera::testing::random_tensor({1, 6}, 100 + s)}});
  CampaignOptions o;
  o.fault = parse_fault_model("multibit:2");
  o.injections = 300;
  o.seed = 42;
  o.threads = 1;
  const CampaignResult one = run_fault_campaign(m.graph, samples, o);
  o.threads = 2;
  expect_same_records(one, run_fault_campaign(m.graph, samples, o));
  // Three shares, as three processes would run them.
  o.shares = 3;
  CampaignResult merged;
  for (o.share = 0; o.share < 3; ++o.share) {
    CampaignResult part = run_fault_campaign(m.graph, samples, o);
    EXPECT_EQ(part.records.size(), 100u);
    merged.records.insert(merged.records.end(), part.records.begin(), part.records.end());
  }
  expect_same_records(one, merged);
  // Another seed draws other faults.
  o.share = 0;
  o.shares = 1;
  o.seed = 43;
  const CampaignResult other = run_fault_campaign(m.graph, samples, o);
  int differing = 0;
  for (size_t i = 0; i < other.records.size(); ++i)
    differing += other.records[i].element != one.records[i].element || other.records[i].bit != one.records[i].bit;
  EXPECT_GT(differing, 200);
  // Every sample and every site kind was drawn.
  std::set<int> sample_seen;
  std::set<FaultSite> site_seen;
  for (const InjectionRecord& r : one.records) sample_seen.insert(r.sample), site_seen.insert(r.site);
  EXPECT_EQ(sample_seen.size(), 3u);
  EXPECT_EQ(site_seen.size(), 3u);
}

TEST(FaultCampaign, AbftDetectsAccumulatorFlipsThatMatter) {
  const auto inputs = zoo_inputs("resnet18");
  if (inputs.empty()) GTEST_SKIP() << "model zoo not built (scripts/build_zoo.py)";
  const Graph model = load_onnx_model(tessera::testing::source_path("models/zoo/resnet18/model.onnx"));
  CampaignOptions o;
  o.site = parse_site_selector("accumulator");
  o.fault = parse_fault_model("bitflip:30");  // exponent: always far beyond the bound
  o.injections = 16;
  o.threads = 2;
  AbftOptions abft;
  abft.policy = AbftPolicy::global;
  o.abft = abft;
  const CampaignResult result = run_fault_campaign(model, {inputs}, o);
  for (const InjectionRecord& r : result.records) {
    SCOPED_TRACE(r.layer + " " + std::to_string(r.before) + " -> " + std::to_string(r.after));
    // Below 1 in magnitude, setting bit 30 multiplies by 2^128: far beyond any bound. (Zero
    // becomes 2, which a row of large magnitude may hold within its bound; above 1 the flip
    // divides by 2^128, an error of the element's own size.)
    if (r.before != 0 && std::fabs(r.before) < 1) EXPECT_EQ(r.outcome, Outcome::detected);
    EXPECT_NE(r.effect, Outcome::detected);
  }
  // Activation faults happen after the GEMM's check, and the next layer's check sees consistent
  // (corrupted) operands: mantissa flips go unseen. (Flips to huge or non-finite values can
  // still trip later checks through overflow.)
  o.site = parse_site_selector("activation:op=Conv");
  o.fault = parse_fault_model("bitflip:20");
  for (const InjectionRecord& r : run_fault_campaign(model, {inputs}, o).records) EXPECT_NE(r.outcome, Outcome::detected);
}

TEST(FaultCampaign, BadRequestsAreClearErrors) {
  const TinyModel m = tiny_model();
  CampaignOptions o;
  o.injections = 1;
  o.site = parse_site_selector("activation:layer=nope");
  EXPECT_THROW(run_fault_campaign(m.graph, {tiny_input(m)}, o), Error);
  o.site = parse_site_selector("weight:element=1000000");
  EXPECT_THROW(run_fault_campaign(m.graph, {tiny_input(m)}, o), Error);
  o.site = parse_site_selector("weight");
  o.pattern = "single_point";
  o.error_models = default_models();
  EXPECT_THROW(run_fault_campaign(m.graph, {tiny_input(m)}, o), Error);  // patterns go on activations
  EXPECT_THROW(run_fault_campaign(m.graph, {}, CampaignOptions{}), Error);
}

}  // namespace
