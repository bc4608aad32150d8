// The GPT-2 pre-tokenizer regex written out by hand over UTF-8: the alternatives are tried in
// the regex's order at each position, with the same greedy runs and the same backtracking of
// \s+(?!\S), so no regex engine (and no Unicode-aware one, which std::regex is not) is needed.
#include "llm/gpt2_pretokenizer.h"

#include "llm/unicode_classes.h"

namespace tessera::llm {

namespace {

// Length of 's 't 're 've 'm 'll 'd at `position` (an apostrophe), or 0. Case-sensitive, as in
// the regex.
size_t contraction_length(std::string_view text, size_t position) {
  std::string_view rest = text.substr(position + 1);
  if (rest.empty()) return 0;
  char first = rest[0];
  if (first == 's' || first == 't' || first == 'm' || first == 'd') return 2;
  if (rest.size() >= 2) {
    std::string_view two = rest.substr(0, 2);
    if (two == "re" || two == "ve" || two == "ll") return 3;
  }
  return 0;
}

// End of the run of characters of class `wanted` that starts at `position`.
size_t end_of_run(std::string_view text, size_t position, CharClass wanted) {
  while (position < text.size()) {
    ClassifiedCharacter c = classify_utf8_character(text, position);
    if (c.char_class != wanted) break;
    position += c.length;
  }
  return position;
}

// Length of the piece that starts at `position` (< text.size()).
size_t piece_length(std::string_view text, size_t position) {
  if (text[position] == '\'') {
    size_t length = contraction_length(text, position);
    if (length) return length;
  }
  ClassifiedCharacter first = classify_utf8_character(text, position);
  // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": only U+0020 may lead, and only when a character
  // of one of those three classes follows it; the run then takes every character of that class.
  size_t run_start = position;
  CharClass run_class = first.char_class;
  if (text[position] == ' ' && position + 1 < text.size()) {
    CharClass next = classify_utf8_character(text, position + 1).char_class;
    if (next != CharClass::whitespace) run_start = position + 1, run_class = next;
  }
  if (run_class != CharClass::whitespace) return end_of_run(text, run_start, run_class) - position;
  // "\s+(?!\S)": the whole run of spaces at the end of the text; before other text the run gives
  // back its last character (which then leads the next piece, e.g. " word"). "\s+": a single
  // space character before other text.
  size_t run_end = end_of_run(text, position, CharClass::whitespace);
  if (run_end == text.size()) return run_end - position;
  size_t last_start = position;
  for (size_t p = position; p < run_end; p += classify_utf8_character(text, p).length) last_start = p;
  return last_start > position ? last_start - position : run_end - position;
}

}  // namespace

void split_gpt2_pretokens(std::string_view text, std::vector<std::string_view>& pieces) {
  size_t position = 0;
  while (position < text.size()) {
    size_t length = piece_length(text, position);
    pieces.push_back(text.substr(position, length));
    position += length;
  }
}

}  // namespace tessera::llm
