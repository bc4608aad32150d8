// The loaded form of a GPT-2 BPE vocabulary, shared by the file loader (bpe_vocabulary_files.cpp)
// and the encoder (bpe_tokenizer.cpp), plus GPT-2's byte-to-character map that the files are written in.
#pragma once
#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tessera/bpe_tokenizer.h"

namespace tessera::llm {

// GPT-2 writes every byte as a printable character so that vocabulary entries are readable text:
// bytes that are printable Latin-1 stand for themselves, the other 68 (controls, space, DEL,
// NBSP, soft hyphen) become U+0100..U+0143 in byte order. Token strings in vocab.json and
// merges.txt are spelled with these characters (a leading space is "Ġ", U+0120).
constexpr std::array<char32_t, 256> gpt2_byte_to_character() {
  std::array<char32_t, 256> characters{};
  char32_t next_substitute = 0x100;
  for (int byte = 0; byte < 256; ++byte) {
    bool printable = (byte >= 0x21 && byte <= 0x7E) || (byte >= 0xA1 && byte <= 0xAC) || byte >= 0xAE;
    characters[byte] = printable ? char32_t(byte) : next_substitute++;
  }
  return characters;
}

// The byte a character of that alphabet stands for, or nullopt for any other character.
std::optional<uint8_t> gpt2_character_to_byte(char32_t character);

struct BpeMerge {
  int32_t rank;       // lower merges first (the line order of merges.txt)
  int32_t merged_id;  // the token the pair becomes
};

// Hash for string keys that also accepts string_view, so cache lookups need no allocation.
struct TransparentStringHash {
  using is_transparent = void;
  size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};

struct BpeTokenizer::Model {
  std::vector<std::string> token_bytes;           // by id; empty where the vocabulary has no such id
  std::array<int32_t, 256> byte_token_ids{};      // the one-byte tokens, where BPE starts
  std::unordered_map<uint64_t, BpeMerge> merges;  // key: left id << 32 | right id
  int32_t end_of_text_id = -1;

  static uint64_t pair_key(int32_t left, int32_t right) {
    return uint64_t(uint32_t(left)) << 32 | uint32_t(right);
  }

  // Pieces seen before and their ids: most words of a text repeat, so most pieces skip BPE.
  // Bounded (cleared when full) so that endless distinct input cannot grow it without limit.
  static constexpr size_t kMaxCachedPieces = size_t(1) << 16;
  static constexpr size_t kMaxCachedPieceBytes = 64;
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>, TransparentStringHash, std::equal_to<>> cache;
};

}  // namespace tessera::llm
