// UTF-8 decoding and the three Unicode classes GPT-2's pre-tokenizer regex distinguishes (\p{L},
// \p{N}, \s), from a generated range table (unicode_class_table.inc) instead of a Unicode library.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tessera::llm {

enum class CharClass : uint8_t { other = 0, letter, number, whitespace };

struct UnicodeClassRange {
  char32_t first;
  char32_t last;
  CharClass char_class;
};

// One step of UTF-8 decoding. Malformed input (a stray continuation byte, an overlong form, a
// surrogate, a value above U+10FFFF, a sequence cut short) yields one byte with is_valid false,
// so that every byte string splits into characters and nothing is ever skipped.
struct Utf8Character {
  char32_t code_point = 0;  // meaningful only when is_valid
  uint8_t length = 1;       // bytes consumed, 1 to 4
  bool is_valid = false;
};
Utf8Character decode_utf8_character(std::string_view text, size_t position);

// The class of a code point; ASCII takes a table lookup, the rest a binary search over ranges.
CharClass classify_code_point(char32_t code_point);

namespace detail {
extern const std::array<CharClass, 128> kAsciiClasses;  // constant-initialized from the range table
}

// The class of the character at `position` (< text.size()) and its length in bytes. Invalid
// bytes are "other", as U+FFFD is, which is what a decoder that replaces them would see. Inline
// because ASCII, nearly all of English text, needs only a table lookup.
struct ClassifiedCharacter {
  CharClass char_class;
  uint8_t length;
};
inline ClassifiedCharacter classify_utf8_character(std::string_view text, size_t position) {
  unsigned char byte = static_cast<unsigned char>(text[position]);
  if (byte < 0x80) return {detail::kAsciiClasses[byte], 1};
  Utf8Character character = decode_utf8_character(text, position);
  if (!character.is_valid) return {CharClass::other, 1};
  return {classify_code_point(character.code_point), character.length};
}

}  // namespace tessera::llm
