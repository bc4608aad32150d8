// Generation: the sampling distribution against Hugging Face's warpers computed in PyTorch
// (scripts/build_gpt2_checkpoints.py), draws that follow it, seeds that reproduce, stop tokens,
// the context limit, and stop strings over streamed text.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "gpt2_test_reference.h"
#include "tessera/text_generation.h"

namespace tessera::llm {
namespace {

struct SamplingCase {
  SamplingOptions options;
  std::vector<float> logits, expected;
};

// The PyTorch distributions, or nothing when the reference has not been built.
std::vector<SamplingCase> sampling_cases() {
  const std::string folder = testing::source_path("models/gpt2/sampling_reference");
  std::ifstream file(folder + "/cases.json");
  if (!file) return {};
  nlohmann::json root = nlohmann::json::parse(file);
  Tensor logits = read_npy(folder + "/" + root["logits"].get<std::string>());
  const int64_t vocabulary = logits.dim(1);
  std::vector<SamplingCase> cases;
  for (const auto& c : root["cases"]) {
    SamplingCase s;
    s.options.temperature = c["temperature"].get<float>();
    s.options.top_k = c["top_k"].get<int64_t>();
    s.options.top_p = c["top_p"].get<float>();
    const float* row = logits.data<float>() + c["row"].get<int64_t>() * vocabulary;
    s.logits.assign(row, row + vocabulary);
    Tensor expected = read_npy(folder + "/" + c["probabilities"].get<std::string>());
    s.expected.assign(expected.data<float>(), expected.data<float>() + expected.numel());
    cases.push_back(std::move(s));
  }
  return cases;
}

std::string describe(const SamplingOptions& o) {
  return "temperature " + std::to_string(o.temperature) + ", top-k " + std::to_string(o.top_k) + ", top-p " +
         std::to_string(o.top_p);
}

TEST(Sampling, DistributionMatchesHuggingFaceWarpersInPyTorch) {
  std::vector<SamplingCase> cases = sampling_cases();
  if (cases.empty())
    GTEST_SKIP() << "models/gpt2/sampling_reference missing: scripts/build_gpt2_checkpoints.py builds it";
  for (const SamplingCase& c : cases) {
    SCOPED_TRACE(describe(c.options));
    std::vector<float> actual = sampling_distribution(c.logits, c.options);
    ASSERT_EQ(actual.size(), c.expected.size());
    int64_t kept = 0;
    for (size_t i = 0; i < actual.size(); ++i) {
      ASSERT_EQ(actual[i] > 0, c.expected[i] > 0) << "token " << i << " kept by one and not the other";
      ASSERT_NEAR(actual[i], c.expected[i], 1e-6) << "token " << i;
      kept += actual[i] > 0;
    }
    if (c.options.top_k > 0) {
      EXPECT_LE(kept, c.options.top_k);
    }
  }
}

TEST(Sampling, DrawsFollowTheDistribution) {
  std::vector<SamplingCase> cases = sampling_cases();
  if (cases.empty())
    GTEST_SKIP() << "models/gpt2/sampling_reference missing: scripts/build_gpt2_checkpoints.py builds it";
  constexpr int kDraws = 20000;
  for (const SamplingCase& c : cases) {
    SCOPED_TRACE(describe(c.options));
    SamplingOptions options = c.options;
    options.seed = 1234;
    TokenSampler sampler(options);
    std::map<int32_t, int> counts;
    for (int i = 0; i < kDraws; ++i) counts[sampler.sample(c.logits)] += 1;
    double total_variation = 0;
    for (size_t token = 0; token < c.expected.size(); ++token) {
      const double p = c.expected[token];
      const double frequency = counts.count(int32_t(token)) ? counts[int32_t(token)] / double(kDraws) : 0.0;
      if (p == 0) {
        ASSERT_EQ(frequency, 0.0) << "token " << token << " is outside top-k / top-p but was drawn";
      }
      // Five standard deviations of a binomial frequency, plus a little for tiny p.
      EXPECT_NEAR(frequency, p, 5 * std::sqrt(p * (1 - p) / kDraws) + 2.0 / kDraws) << "token " << token;
      total_variation += std::fabs(frequency - p) / 2;
    }
    EXPECT_LT(total_variation, 0.1);
  }
}

TEST(Sampling, SeedsAndStreamsReproduce) {
  std::vector<float> logits(500);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(std::sin(double(i) * 0.37) * 2.0);
  auto draws = [&](uint64_t seed, uint64_t stream) {
    TokenSampler sampler({1.0f, 0, 0.95f, seed}, stream);
    std::vector<int32_t> out;
    for (int i = 0; i < 200; ++i) out.push_back(sampler.sample(logits));
    return out;
  };
  EXPECT_EQ(draws(5, 0), draws(5, 0));
  EXPECT_NE(draws(5, 0), draws(6, 0));
  EXPECT_NE(draws(5, 0), draws(5, 1));
}

TEST(Sampling, GreedyAndOptionChecks) {
  std::vector<float> logits{0.5f, 3.f, -1.f, 3.f, 2.f};
  TokenSampler greedy({0.f, 2, 0.5f, 9});
  EXPECT_EQ(greedy.sample(logits), 1);  // ties go to the lowest id
  EXPECT_EQ(sampling_distribution(logits, {}), (std::vector<float>{0, 1, 0, 0, 0}));
  TokenSampler top1({1.f, 1, 1.f, 9});
  for (int i = 0; i < 20; ++i) {
    const int32_t token = top1.sample(logits);
    EXPECT_TRUE(token == 1 || token == 3) << token;  // ties with the k-th are kept
  }
  EXPECT_THROW(TokenSampler({-1.f, 0, 1.f, 0}), Error);
  EXPECT_THROW(TokenSampler({NAN, 0, 1.f, 0}), Error);
  EXPECT_THROW(TokenSampler({1.f, -1, 1.f, 0}), Error);
  EXPECT_THROW(TokenSampler({1.f, 0, 0.f, 0}), Error);
  EXPECT_THROW(TokenSampler({1.f, 0, 1.5f, 0}), Error);
  TokenSampler sampler({1.f, 0, 1.f, 0});
  EXPECT_THROW(sampler.sample(std::vector<float>{}), Error);
  EXPECT_THROW(sampler.sample(std::vector<float>{-INFINITY, NAN}), Error);
}

class Generation : public ::testing::Test {
 protected:
  void SetUp() override {
    reference_ = testing::load_gpt2_reference("tiny");
    if (!reference_) GTEST_SKIP() << "models/gpt2/tiny missing: scripts/build_gpt2_checkpoints.py builds it";
    model_ = std::make_unique<Gpt2Model>(Gpt2Model::load(reference_->folder));
  }
  std::optional<testing::Gpt2Reference> reference_;
  std::unique_ptr<Gpt2Model> model_;
  ThreadPool pool_{2};
};

TEST_F(Generation, SamplingIsReproducibleFromASeed) {
  const auto& prompt = reference_->prompts[1].ids;
  GenerationOptions options;
  options.max_new_tokens = 24;
  options.sampling = {0.9f, 50, 0.95f, 7};
  GenerationResult first = generate(*model_, std::span(&prompt, 1), options, &pool_);
  GenerationResult again = generate(*model_, std::span(&prompt, 1), options, nullptr);  // one thread too
  EXPECT_EQ(first.tokens, again.tokens);
  EXPECT_EQ(first.tokens[0].size(), 24u);
  options.sampling.seed = 8;
  EXPECT_NE(generate(*model_, std::span(&prompt, 1), options, &pool_).tokens, first.tokens);
}

TEST_F(Generation, StopTokensAndCallbackEndASequence) {
  const auto& prompt = reference_->prompts[2];
  const std::vector<int32_t>& greedy = prompt.greedy;
  size_t stop_at = 3;
  while (std::find(greedy.begin(), greedy.begin() + std::ptrdiff_t(stop_at), greedy[stop_at]) !=
         greedy.begin() + std::ptrdiff_t(stop_at))
    ++stop_at;  // a token that has not appeared before
  GenerationOptions options;
  options.max_new_tokens = int64_t(greedy.size());
  options.stop_tokens = {greedy[stop_at]};
  GenerationResult result = generate(*model_, std::span(&prompt.ids, 1), options, &pool_);
  EXPECT_EQ(result.tokens[0], std::vector<int32_t>(greedy.begin(), greedy.begin() + std::ptrdiff_t(stop_at)));
  EXPECT_EQ(result.stop_reasons[0], StopReason::stop_token);

  options.stop_tokens.clear();
  std::vector<int32_t> seen;
  result = generate(*model_, std::span(&prompt.ids, 1), options, &pool_, [&](int sequence, int32_t token) {
    EXPECT_EQ(sequence, 0);
    seen.push_back(token);
    return seen.size() < 2;
  });
  EXPECT_EQ(seen, std::vector<int32_t>(greedy.begin(), greedy.begin() + 2));
  EXPECT_EQ(result.tokens[0], seen);
  EXPECT_EQ(result.stop_reasons[0], StopReason::callback);
  EXPECT_EQ(result.timings.prompt_tokens, int64_t(prompt.ids.size()));
  EXPECT_EQ(result.timings.decode_steps, 1);
}

TEST_F(Generation, ContextLimitAndZeroTokens) {
  const int64_t context = model_->config().n_positions;
  std::vector<int32_t> prompt(size_t(context - 6), 464);
  GenerationOptions options;
  options.max_new_tokens = 20;
  GenerationResult result = generate(*model_, std::span(&prompt, 1), options, &pool_);
  // Six tokens fill the context; the seventh comes from the logits of the full context.
  EXPECT_EQ(result.tokens[0].size(), 7u);
  EXPECT_EQ(result.stop_reasons[0], StopReason::context_full);

  options.max_new_tokens = 0;
  result = generate(*model_, std::span(&prompt, 1), options, &pool_);
  EXPECT_TRUE(result.tokens[0].empty());
  std::vector<int32_t> too_long(size_t(context + 1), 464), empty;
  EXPECT_THROW(generate(*model_, std::span(&too_long, 1), options, &pool_), Error);
  EXPECT_THROW(generate(*model_, std::span(&empty, 1), options, &pool_), Error);
}

TEST(StopText, HoldsBackOnlyPossibleStartsAndCutsAtTheFirstStop) {
  StopTextFilter filter({"STOP", "\n\n"});
  std::string shown = filter.push("Hello S");
  EXPECT_EQ(shown, "Hello ");  // "S" may begin "STOP"
  shown += filter.push("T");
  EXPECT_EQ(shown, "Hello ");
  shown += filter.push("x and \n");
  EXPECT_EQ(shown, "Hello STx and ");
  EXPECT_FALSE(filter.stopped());
  shown += filter.push("more ST");
  shown += filter.push("OP after");
  EXPECT_TRUE(filter.stopped());
  EXPECT_EQ(shown, "Hello STx and \nmore ");
  EXPECT_EQ(filter.push("ignored"), "");
  EXPECT_EQ(filter.finish(), "");

  StopTextFilter unstopped({"abc"});
  EXPECT_EQ(unstopped.push("xxab"), "xx");
  EXPECT_EQ(unstopped.finish(), "ab");
  StopTextFilter none({"", ""});
  EXPECT_EQ(none.push("anything"), "anything");
  StopTextFilter overlapping({"aab"});
  EXPECT_EQ(overlapping.push("aaa"), "a");  // "aa" may begin "aab"
  EXPECT_EQ(overlapping.push("b!"), "");
  EXPECT_TRUE(overlapping.stopped());
}

}  // namespace
}  // namespace tessera::llm
