// GPT-2 with BCQ linear layers (Gpt2WeightOptions): the option's parsing; decode through
// LUT-GEMM (one row per step) agrees with prefill through a GEMM on the dequantized weights (two
// independent paths over the same BCQ weights, at every position, on every ISA); the logits'
// distance to the f32 model shrinks as bits grow; fewer weight bytes per token.
#include <gtest/gtest.h>

#include <cmath>

#include "gpt2_test_reference.h"
#include "tessera/error.h"
#include "tessera/gpt2.h"

namespace tessera {
namespace {

using llm::Gpt2Input;
using llm::Gpt2Model;
using llm::Gpt2State;
using llm::Gpt2WeightOptions;
using llm::LogitRows;

TEST(Gpt2Bcq, ParsesWeightSpecs) {
  EXPECT_EQ(Gpt2WeightOptions::parse("f32").bcq_bits, 0);
  const Gpt2WeightOptions three = Gpt2WeightOptions::parse("bcq3");
  EXPECT_EQ(three.bcq_bits, 3);
  EXPECT_EQ(three.bcq_group_size, 128);
  const Gpt2WeightOptions two = Gpt2WeightOptions::parse("bcq2:g64");
  EXPECT_EQ(two.bcq_bits, 2);
  EXPECT_EQ(two.bcq_group_size, 64);
  for (const char* bad : {"bcq5", "int8", "bcq3:g48", "bcq3:x", "bcq3:g", "", "bcq3:g64:g32"})
    EXPECT_THROW(Gpt2WeightOptions::parse(bad), Error) << bad;
}

std::vector<int32_t> prompt_ids(int64_t count) {
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < count; ++i) ids.push_back(int32_t((i * 7919 + 13) % 50257));
  return ids;
}

// Logits at every position of `ids`: one forward over the whole prompt.
Tensor prefill_logits(const Gpt2Model& m, const std::vector<int32_t>& ids, ThreadPool& pool) {
  Gpt2State state(m, 1);
  const Gpt2Input input{0, ids};
  return m.forward(state, std::span(&input, 1), LogitRows::all, &pool);
}

double relative_l2(const float* a, const float* b, int64_t n) {
  double d = 0, s = 0;
  for (int64_t i = 0; i < n; ++i) {
    d += double(a[i] - b[i]) * double(a[i] - b[i]);
    s += double(b[i]) * double(b[i]);
  }
  return std::sqrt(d / s);
}

TEST(Gpt2Bcq, LutDecodeMatchesDequantizedPrefillAtEveryPosition) {
  const std::string folder = testing::gpt2_checkpoint_folder("tiny");
  if (!std::filesystem::exists(folder + "/model.safetensors"))
    GTEST_SKIP() << "no " << folder << ": /usr/bin/python3 scripts/build_gpt2_checkpoints.py";
  ThreadPool pool(2);
  const Gpt2Model m = Gpt2Model::load(folder, Gpt2WeightOptions::parse("bcq3:g32"), &pool);
  const std::vector<int32_t> ids = prompt_ids(24);  // 24 rows > 16: prefill takes the dequantized GEMM
  const Tensor full = prefill_logits(m, ids, pool);
  const int64_t vocab = m.config().vocab_size;
  testing::for_each_isa([&](primitives::Isa) {
    Gpt2State state(m, 1);
    for (size_t i = 0; i < ids.size(); ++i) {
      const Gpt2Input step{0, std::span(&ids[i], 1)};
      const Tensor logits = m.forward(state, std::span(&step, 1), LogitRows::last, &pool);
      ASSERT_LT(relative_l2(logits.data<float>(), full.data<float>() + int64_t(i) * vocab, vocab), 1e-4)
          << "position " << i;
    }
  });
}

TEST(Gpt2Bcq, MoreBitsCloserToF32AndFewerBytes) {
  const std::string folder = testing::gpt2_checkpoint_folder("tiny");
  if (!std::filesystem::exists(folder + "/model.safetensors"))
    GTEST_SKIP() << "no " << folder << ": /usr/bin/python3 scripts/build_gpt2_checkpoints.py";
  ThreadPool pool(2);
  const Gpt2Model f32 = Gpt2Model::load(folder);
  const std::vector<int32_t> ids = prompt_ids(12);
  const Tensor reference = prefill_logits(f32, ids, pool);
  double previous = 1e30;
  for (const char* spec : {"bcq2:g32", "bcq3:g32", "bcq4:g32"}) {
    const Gpt2Model m = Gpt2Model::load(folder, Gpt2WeightOptions::parse(spec), &pool);
    const Tensor logits = prefill_logits(m, ids, pool);
    const double error = relative_l2(logits.data<float>(), reference.data<float>(), reference.numel());
    std::printf("%s: logits relative L2 error vs f32 %.4f\n", spec, error);
    EXPECT_LT(error, previous) << spec;
    EXPECT_GT(error, 0.0) << spec;
    previous = error;
    EXPECT_LT(m.decode_weight_bytes(), f32.decode_weight_bytes());
  }
}

}  // namespace
}  // namespace tessera
