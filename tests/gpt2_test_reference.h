// The GPT-2 checkpoints and PyTorch references that scripts/build_gpt2_checkpoints.py writes under
// models/gpt2/, as the GPT-2 tests read them.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tessera/npy.h"
#include "test_support.h"

namespace tessera::testing {

struct Gpt2ReferencePrompt {
  std::string name;
  std::vector<int32_t> ids;     // the prompt
  std::vector<int32_t> greedy;  // PyTorch's greedy continuation
  std::string logits_path;      // PyTorch's logits at every position, [ids, vocab]
  std::string text;             // the prompt as text, for tokenizer cases
};

struct Gpt2Reference {
  std::string folder;
  std::vector<Gpt2ReferencePrompt> prompts;
};

inline std::string gpt2_checkpoint_folder(const std::string& name) {
  return source_path("models/gpt2/" + name);
}

// nullopt when the checkpoint has not been built.
inline std::optional<Gpt2Reference> load_gpt2_reference(const std::string& name) {
  const std::string folder = gpt2_checkpoint_folder(name);
  std::ifstream file(folder + "/reference/references.json");
  if (!file) return std::nullopt;
  nlohmann::json root = nlohmann::json::parse(file);
  Gpt2Reference reference{folder, {}};
  for (const auto& p : root["prompts"]) {
    Gpt2ReferencePrompt prompt;
    prompt.name = p["name"].get<std::string>();
    prompt.ids = p["ids"].get<std::vector<int32_t>>();
    prompt.greedy = p["greedy"].get<std::vector<int32_t>>();
    prompt.logits_path = folder + "/reference/" + p["logits"].get<std::string>();
    if (p.contains("text_utf8_hex")) {
      const std::string hex = p["text_utf8_hex"].get<std::string>();
      for (size_t i = 0; i + 1 < hex.size(); i += 2)
        prompt.text.push_back(char(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    reference.prompts.push_back(std::move(prompt));
  }
  return reference;
}

#define TESSERA_GPT2_REFERENCE_OR_SKIP(variable, name)                                        \
  auto variable##_loaded = ::tessera::testing::load_gpt2_reference(name);                     \
  if (!variable##_loaded)                                                                     \
    GTEST_SKIP() << "models/gpt2/" << (name)                                                  \
                 << " missing: /usr/bin/python3 scripts/build_gpt2_checkpoints.py builds it"; \
  const ::tessera::testing::Gpt2Reference& variable = *variable##_loaded

// ||a - b|| / ||b|| over n floats.
inline double relative_l2(const float* actual, const float* expected, int64_t n) {
  double difference = 0, norm = 0;
  for (int64_t i = 0; i < n; ++i) {
    difference += (double(actual[i]) - expected[i]) * (double(actual[i]) - expected[i]);
    norm += double(expected[i]) * expected[i];
  }
  return std::sqrt(difference / std::max(norm, 1e-30));
}

}  // namespace tessera::testing
