// ABFT on whole models (the PyTorch zoo built by scripts/build_zoo.py): no false positives on
// clean runs with random inputs under every scheme; single bit flips injected into GEMM register
// tiles are detected whenever they matter; correction gives the clean output back; `fail` names
// the layer.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "reliability/abft.h"
#include "tessera/npy.h"
#include "tessera/session.h"
#include "test_support.h"

using namespace tessera;
using reliability::AbftAction;
using reliability::AbftMonitor;
using reliability::AbftOptions;
using reliability::AbftPolicy;

namespace {

struct ZooModel {
  std::string folder;
  std::map<std::string, Tensor> inputs;  // the reference inputs
};

ZooModel load_zoo(const std::string& name) {
  ZooModel m;
  m.folder = tessera::testing::source_path("models/zoo/" + name);
  std::ifstream meta_file(m.folder + "/meta.json");
  if (!meta_file) return m;
  const nlohmann::json meta = nlohmann::json::parse(meta_file);
  for (const auto& in : meta["inputs"])
    m.inputs[in["name"].get<std::string>()] = read_npy(m.folder + "/" + in["file"].get<std::string>());
  return m;
}

// Fresh inputs from a seed: floats redrawn in [-2, 2], integer token ids shuffled (they stay valid
// ids), attention masks kept.
std::map<std::string, Tensor> random_inputs(const ZooModel& m, uint32_t seed) {
  std::map<std::string, Tensor> result;
  std::mt19937 rng(seed);
  for (const auto& [name, t] : m.inputs) {
    if (t.dtype() == DType::f32) {
      result[name] = tessera::testing::random_tensor(t.shape(), seed, -2.f, 2.f);
    } else if (name.find("mask") == std::string::npos && t.dtype() == DType::i64) {
      Tensor copy = t.clone();
      int64_t* ids = copy.data<int64_t>();
      std::shuffle(ids, ids + copy.numel(), rng);
      result[name] = copy;
    } else {
      result[name] = t;
    }
  }
  return result;
}

AbftOptions options_for(AbftPolicy policy, AbftAction action) {
  AbftOptions o;
  o.policy = policy;
  o.action = action;
  // A fixed balance point so the auto policy puts layers on both sides (no machine measurement
  // in tests): 14 FLOP/byte is this machine's measured 1-thread balance.
  o.roof.peak_gflops = 140;
  o.roof.bandwidth_gbs = 10;
  return o;
}

const char* kModels[] = {"resnet18", "mobilenet_v2", "bert_tiny", "gpt2_tiny"};

TEST(Abft, CleanRunsRaiseNoDetectionUnderAnyScheme) {
  for (const char* name : kModels) {
    const ZooModel m = load_zoo(name);
    if (m.inputs.empty()) GTEST_SKIP() << "models/zoo/" << name << " missing: scripts/build_zoo.py builds it";
    Session session = Session::from_file(m.folder + "/model.onnx", SessionOptions{2});
    for (AbftPolicy policy : {AbftPolicy::global, AbftPolicy::thread, AbftPolicy::automatic}) {
      AbftMonitor monitor(options_for(policy, AbftAction::fail));
      for (uint32_t seed = 1; seed <= 4; ++seed) {
        const auto inputs = random_inputs(m, seed);
        session.clear_observers();
        const auto clean = session.run(inputs);
        session.add_observer(&monitor);
        const auto checked = session.run(inputs);  // `fail`: a false positive throws
        for (const auto& [out, t] : clean)
          EXPECT_LT(tessera::testing::relative_l2_error(checked.at(out), t), 1e-5) << name << " " << out;
      }
      SCOPED_TRACE(std::string(name) + " " + reliability::abft_policy_name(policy));
      EXPECT_EQ(monitor.detections(), 0);
      EXPECT_GT(monitor.checks(), 0);
      EXPECT_LT(monitor.worst_clean_ratio(), 1.f);
      int protected_layers = 0, global = 0, thread = 0;
      for (const auto* layer : monitor.layers()) {
        if (!layer->protected_layer) continue;
        ++protected_layers;
        (layer->scheme == primitives::GemmCheckScheme::global ? global : thread)++;
        // Depthwise convolutions run no GEMM, so they have no checks: every other one must.
        if (layer->op_type != "Conv") EXPECT_GT(layer->counters.checks.load(), 0) << layer->name;
      }
      EXPECT_GT(protected_layers, 0);
      if (policy == AbftPolicy::global) EXPECT_EQ(thread, 0);
      if (policy == AbftPolicy::thread) EXPECT_EQ(global, 0);
      std::printf("%s %s: %d protected layers (%d global, %d thread), %lld checks, worst clean |diff|/bound %.2e\n",
                  name, reliability::abft_policy_name(policy), protected_layers, global, thread,
                  static_cast<long long>(monitor.checks()), double(monitor.worst_clean_ratio()));
    }
  }
}

// Flips one bit of one element of the `target`-th register tile the step's GEMMs produce, once.
struct TileBitFlip {
  std::atomic<int64_t> tiles{0};
  int64_t target = -1;  // -1: only count tiles
  int row = 0, col = 0, bit = 0;
  std::atomic<bool> done{false};
  // The same flip again (target, element, bit), not yet done.
  void aim_like(const TileBitFlip& other) {
    target = other.target;
    row = other.row;
    col = other.col;
    bit = other.bit;
  }
  static void hook(void* context, int64_t, int64_t, int rows, int cols, float* c, int64_t ldc) {
    auto* f = static_cast<TileBitFlip*>(context);
    const int64_t index = f->tiles.fetch_add(1);
    if (index != f->target || f->done.exchange(true)) return;
    float* v = c + (f->row % rows) * ldc + (f->col % cols);
    uint32_t bits;
    std::memcpy(&bits, v, 4);
    bits ^= 1u << f->bit;
    std::memcpy(v, &bits, 4);
  }
};

int64_t argmax(const Tensor& t) {
  const float* p = t.data<float>();
  return std::max_element(p, p + t.numel()) - p;
}

// One flip per (layer, bit) on resnet18 and bert_tiny, both schemes, action `report`: flips are
// detected, correction restores the clean output, and undetected flips (below the bound, whose
// exactness the GEMM-level tests check) are counted with the output error they caused; on the
// classifier none of them may change the top-1 class. One thread, so that tile order is the same
// from run to run and a flip can be replayed.
TEST(Abft, InjectedFlipsAreDetectedAndCorrected) {
  for (const char* name : {"resnet18", "bert_tiny"}) {
    const ZooModel m = load_zoo(name);
    if (m.inputs.empty()) GTEST_SKIP() << "models/zoo/" << name << " missing";
    Session session = Session::from_file(m.folder + "/model.onnx", SessionOptions{1});
    const auto clean = session.run(m.inputs);
    const std::string output = clean.begin()->first;
    std::vector<StepInfo> steps = session.plan_steps();
    std::vector<int> gemm_steps;
    for (const auto& s : steps)
      if (reliability::is_gemm_backed(s.node->op_type)) gemm_steps.push_back(s.step_index);
    ASSERT_FALSE(gemm_steps.empty());
    std::mt19937 rng(2024);
    int detected = 0, undetected = 0, top1_changed_undetected = 0, trials = 0;
    double worst_undetected_error = 0;
    for (auto scheme : {AbftPolicy::global, AbftPolicy::thread}) {
      for (int bit = 0; bit < 32; ++bit) {
        const int step = gemm_steps[rng() % gemm_steps.size()];
        // Count the step's tiles, then flip a random element of a random one.
        TileBitFlip counter;
        AbftMonitor counting(options_for(scheme, AbftAction::report));
        counting.set_fault_hook(step, &TileBitFlip::hook, &counter);
        session.clear_observers();
        session.add_observer(&counting);
        session.run(m.inputs);
        if (counter.tiles.load() == 0) continue;  // a depthwise Conv: no GEMM tiles
        TileBitFlip flip;
        flip.target = int64_t(rng() % uint64_t(counter.tiles.load()));
        flip.row = int(rng() % 64);
        flip.col = int(rng() % 64);
        flip.bit = bit;
        AbftMonitor reporting(options_for(scheme, AbftAction::report));
        reporting.set_fault_hook(step, &TileBitFlip::hook, &flip);
        session.clear_observers();
        session.add_observer(&reporting);
        const auto corrupted = session.run(m.inputs);
        ASSERT_TRUE(flip.done.load());
        ++trials;
        const double error = tessera::testing::relative_l2_error(corrupted.at(output), clean.at(output));
        if (reporting.detections() > 0) {
          ++detected;
          // Correction: the same flip (one-shot) under `correct` gives the clean answer back.
          TileBitFlip again;
          again.aim_like(flip);
          AbftMonitor correcting(options_for(scheme, AbftAction::correct));
          correcting.set_fault_hook(step, &TileBitFlip::hook, &again);
          session.clear_observers();
          session.add_observer(&correcting);
          const auto corrected = session.run(m.inputs);
          EXPECT_EQ(correcting.recomputations(), 1);
          EXPECT_LT(tessera::testing::relative_l2_error(corrected.at(output), clean.at(output)), 1e-6)
              << name << " step " << step << " bit " << bit;
        } else {
          ++undetected;
          worst_undetected_error = std::max(worst_undetected_error, error);
          if (argmax(corrupted.at(output)) != argmax(clean.at(output))) ++top1_changed_undetected;
        }
      }
    }
    std::printf("%s: %d flips, %d detected, %d below the bound (largest output error %.2e, top-1 changed by %d)\n",
                name, trials, detected, undetected, worst_undetected_error, top1_changed_undetected);
    EXPECT_GT(detected, trials / 4);
    if (std::string(name) == "resnet18") EXPECT_EQ(top1_changed_undetected, 0);
  }
}

TEST(Abft, FailActionNamesTheLayer) {
  const ZooModel m = load_zoo("resnet18");
  if (m.inputs.empty()) GTEST_SKIP() << "models/zoo/resnet18 missing";
  Session session = Session::from_file(m.folder + "/model.onnx", SessionOptions{1});
  session.run(m.inputs);
  int step = -1;
  for (const auto& s : session.plan_steps())
    if (s.node->op_type == "Conv" && step < 0) step = s.step_index;
  TileBitFlip flip;
  flip.target = 0;
  flip.bit = 30;  // the top exponent bit: far above any bound
  AbftMonitor monitor(options_for(AbftPolicy::automatic, AbftAction::fail));
  monitor.set_fault_hook(step, &TileBitFlip::hook, &flip);
  session.add_observer(&monitor);
  try {
    session.run(m.inputs);
    FAIL() << "no error";
  } catch (const reliability::AbftError& e) {
    EXPECT_NE(std::string(e.what()).find(session.plan_steps()[size_t(step)].node->name), std::string::npos) << e.what();
  }
}

}  // namespace
