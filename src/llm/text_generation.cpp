// The generation loop (one prefill of all prompts, then one decode step per token for the
// sequences still running) and stop strings over streamed text.
#include "tessera/text_generation.h"

#include <algorithm>
#include <chrono>

#include "tessera/error.h"

namespace tessera::llm {

namespace {
double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

GenerationResult generate(const Gpt2Model& model, std::span<const std::vector<int32_t>> prompts,
                          const GenerationOptions& options, ThreadPool* pool, const TokenCallback& on_token) {
  check_sampling_options(options.sampling);
  TESSERA_CHECK(options.max_new_tokens >= 0, "max_new_tokens must be >= 0");
  TESSERA_CHECK(!prompts.empty(), "no prompts to generate from");
  const int64_t context = model.config().n_positions;
  int64_t longest = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    TESSERA_CHECK(!prompts[i].empty(), "prompt " + std::to_string(i + 1) + " has no tokens");
    TESSERA_CHECK(int64_t(prompts[i].size()) <= context,
                  "prompt " + std::to_string(i + 1) + " has " + std::to_string(prompts[i].size()) +
                      " tokens; the model's context is " + std::to_string(context));
    longest = std::max(longest, int64_t(prompts[i].size()));
  }
  const int sequences = int(prompts.size());
  GenerationResult result;
  result.tokens.resize(prompts.size());
  result.stop_reasons.assign(prompts.size(), StopReason::max_tokens);
  GenerationTimings& timings = result.timings;
  // The last sampled token is never fed back, hence the - 1.
  Gpt2State state(model, sequences,
                  std::min(context, longest + std::max<int64_t>(options.max_new_tokens - 1, 0)));

  std::vector<TokenSampler> samplers;
  for (int i = 0; i < sequences; ++i) samplers.emplace_back(options.sampling, uint64_t(i));

  std::vector<Gpt2Input> inputs;
  for (int i = 0; i < sequences; ++i) inputs.push_back({i, prompts[size_t(i)]});
  for (const auto& p : prompts) timings.prompt_tokens += int64_t(p.size());
  if (options.max_new_tokens == 0) return result;

  auto start = std::chrono::steady_clock::now();
  Tensor logits = model.forward(state, inputs, LogitRows::last, pool);
  timings.prefill_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();

  const int64_t vocabulary = model.config().vocab_size;
  std::vector<int32_t> next(prompts.size());
  for (;;) {
    // Row r of the logits belongs to inputs[r]; the sequences still running come next.
    std::vector<Gpt2Input> running;
    for (size_t row = 0; row < inputs.size(); ++row) {
      const int sequence = inputs[row].sequence;
      const size_t s = size_t(sequence);
      const int32_t token = samplers[s].sample(
          std::span<const float>(logits.data<float>() + int64_t(row) * vocabulary, size_t(vocabulary)));
      if (std::find(options.stop_tokens.begin(), options.stop_tokens.end(), token) !=
          options.stop_tokens.end()) {
        result.stop_reasons[s] = StopReason::stop_token;
        continue;
      }
      result.tokens[s].push_back(token);
      if (on_token && !on_token(sequence, token)) {
        result.stop_reasons[s] = StopReason::callback;
      } else if (int64_t(result.tokens[s].size()) >= options.max_new_tokens) {
        result.stop_reasons[s] = StopReason::max_tokens;
      } else if (state.length(sequence) >= context) {
        result.stop_reasons[s] = StopReason::context_full;
      } else {
        next[s] = token;
        running.push_back({sequence, std::span<const int32_t>(&next[s], 1)});
      }
    }
    if (running.empty()) break;
    inputs = std::move(running);
    logits = model.forward(state, inputs, LogitRows::last, pool);
    timings.decode_steps += 1;
    timings.decode_tokens += int64_t(inputs.size());
  }
  timings.decode_seconds = seconds_since(start);
  return result;
}

StopTextFilter::StopTextFilter(std::vector<std::string> stop_strings) {
  for (std::string& s : stop_strings)
    if (!s.empty()) stops_.push_back(std::move(s));
}

std::string StopTextFilter::push(std::string_view bytes) {
  if (stopped_) return {};
  pending_.append(bytes);
  // Bytes before `pending_` were shown only when no stop string could start in them, so any
  // match lies inside pending_.
  size_t first_match = std::string::npos;
  for (const std::string& stop : stops_) first_match = std::min(first_match, pending_.find(stop));
  if (first_match != std::string::npos) {
    stopped_ = true;
    std::string shown = pending_.substr(0, first_match);
    pending_.clear();
    return shown;
  }
  // Hold back the longest end of the text that is the beginning of a stop string.
  size_t hold = 0;
  for (const std::string& stop : stops_)
    for (size_t length = std::min(stop.size() - 1, pending_.size()); length > hold; --length)
      if (pending_.compare(pending_.size() - length, length, stop, 0, length) == 0) {
        hold = length;
        break;
      }
  std::string shown = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return shown;
}

std::string StopTextFilter::finish() {
  std::string rest;
  rest.swap(pending_);
  return rest;
}

}  // namespace tessera::llm
