// GPT-2's pre-tokenizer: splits text into the pieces that BPE then encodes one by one, exactly as
// the regex 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ would.
#pragma once
#include <string_view>
#include <vector>

namespace tessera::llm {

// Appends the pieces of `text` to `pieces`, in order; they cover `text` exactly. Any bytes are
// accepted: a byte that is not part of valid UTF-8 counts as one character of class "other"
// (neither letter, number nor space), as U+FFFD would. \s is Unicode's White_Space property,
// as in the Python `regex` module GPT-2 was made with (JavaScript's \s differs: it has U+FEFF
// and lacks U+0085).
void split_gpt2_pretokens(std::string_view text, std::vector<std::string_view>& pieces);

inline std::vector<std::string_view> split_gpt2_pretokens(std::string_view text) {
  std::vector<std::string_view> pieces;
  split_gpt2_pretokens(text, pieces);
  return pieces;
}

}  // namespace tessera::llm
