// UTF-8 decoding (strict: RFC 3629) and code point classification for the GPT-2 pre-tokenizer.
// The ranges come from scripts/generate_unicode_classes.mjs; regenerate them for a newer Unicode.
#include "llm/unicode_classes.h"

#include <algorithm>
#include <iterator>

namespace tessera::llm {

namespace {
#include "llm/unicode_class_table.inc"
}  // namespace

namespace {
constexpr CharClass class_from_table(char32_t code_point) {
  // The first range whose last code point is >= code_point; inside it or in a gap before it.
  const UnicodeClassRange* end = std::end(kUnicodeClassRanges);
  const UnicodeClassRange* range =
      std::lower_bound(std::begin(kUnicodeClassRanges), end, code_point,
                       [](const UnicodeClassRange& r, char32_t value) { return r.last < value; });
  if (range == end || range->first > code_point) return CharClass::other;
  return range->char_class;
}

constexpr std::array<CharClass, 128> ascii_classes() {
  std::array<CharClass, 128> classes{};
  for (char32_t c = 0; c < 128; ++c) classes[c] = class_from_table(c);
  return classes;
}
}  // namespace

namespace detail {
// Computed at compile time from the same table, so the fast path cannot disagree with it.
constinit const std::array<CharClass, 128> kAsciiClasses = ascii_classes();
}  // namespace detail

CharClass classify_code_point(char32_t code_point) { return class_from_table(code_point); }

Utf8Character decode_utf8_character(std::string_view text, size_t position) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  size_t available = text.size() - position;
  unsigned char lead = bytes[position];
  if (lead < 0x80) return {lead, 1, true};
  // Sequence length and the bounds on the second byte that rule out overlong forms, surrogates
  // and code points above U+10FFFF (the table in RFC 3629, section 4).
  uint8_t length;
  unsigned char second_low = 0x80, second_high = 0xBF;
  char32_t code_point;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2, code_point = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3, code_point = lead & 0x0F;
    if (lead == 0xE0) second_low = 0xA0;
    if (lead == 0xED) second_high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4, code_point = lead & 0x07;
    if (lead == 0xF0) second_low = 0x90;
    if (lead == 0xF4) second_high = 0x8F;
  } else {
    return {};  // continuation byte, C0/C1 (always overlong) or F5..FF
  }
  if (available < length) return {};
  for (uint8_t i = 1; i < length; ++i) {
    unsigned char byte = bytes[position + i];
    unsigned char low = i == 1 ? second_low : 0x80, high = i == 1 ? second_high : 0xBF;
    if (byte < low || byte > high) return {};
    code_point = code_point << 6 | (byte & 0x3F);
  }
  return {code_point, length, true};
}

}  // namespace tessera::llm
