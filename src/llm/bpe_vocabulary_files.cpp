// Loads a GPT-2 BPE vocabulary (vocab.json: token -> id; merges.txt: one merge rule a line) and
// checks it whole, so that a wrong or damaged file fails here with one message and not later.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "llm/bpe_model.h"
#include "llm/unicode_classes.h"
#include "nlohmann/json.hpp"
#include "tessera/error.h"

namespace tessera::llm {

namespace {

namespace fs = std::filesystem;

// Ids index a table, so a corrupt id must not make us allocate gigabytes; GPT-2 has 50257.
constexpr int64_t kMaxTokenId = (int64_t(1) << 24) - 1;
constexpr char kEndOfText[] = "<|endoftext|>";

[[noreturn]] void fail(const std::string& source, const std::string& problem) {
  throw Error(source + ": " + problem);
}

std::string read_whole_file(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) fail(path.string(), std::string("cannot open (") + std::strerror(errno) + ")");
  std::ostringstream contents;
  contents << file.rdbuf();
  if (file.bad()) fail(path.string(), "read error");
  return std::move(contents).str();
}

std::string hex_code_point(char32_t c) {
  char text[16];
  std::snprintf(text, sizeof text, "U+%04X", unsigned(c));
  return text;
}

// The raw bytes a token spelled in GPT-2's byte characters stands for; nullopt with the reason
// in `problem` when it is not such a spelling.
std::optional<std::string> spelling_to_bytes(std::string_view spelling, std::string& problem) {
  std::string bytes;
  bytes.reserve(spelling.size());
  for (size_t position = 0; position < spelling.size();) {
    Utf8Character character = decode_utf8_character(spelling, position);
    if (!character.is_valid) {
      problem = "is not valid UTF-8";
      return std::nullopt;
    }
    std::optional<uint8_t> byte = gpt2_character_to_byte(character.code_point);
    if (!byte) {
      problem = "contains " + hex_code_point(character.code_point) +
                ", which is not one of GPT-2's 256 byte characters";
      return std::nullopt;
    }
    bytes.push_back(char(*byte));
    position += character.length;
  }
  return bytes;
}

fs::path first_existing(const fs::path& folder, const char* preferred, const char* alternative) {
  if (fs::exists(folder / preferred)) return folder / preferred;
  if (fs::exists(folder / alternative)) return folder / alternative;
  fail(folder.string(), std::string("no ") + preferred + " (or " + alternative + ") in this folder");
}

}  // namespace

std::optional<uint8_t> gpt2_character_to_byte(char32_t character) {
  static constexpr auto kInverse = [] {
    constexpr auto forward = gpt2_byte_to_character();
    std::array<int16_t, 0x144> inverse{};
    inverse.fill(-1);
    for (int byte = 0; byte < 256; ++byte) inverse[forward[byte]] = int16_t(byte);
    return inverse;
  }();
  if (character >= kInverse.size() || kInverse[character] < 0) return std::nullopt;
  return uint8_t(kInverse[character]);
}

BpeTokenizer BpeTokenizer::from_folder(const std::string& folder) {
  std::error_code error;
  if (!fs::is_directory(folder, error)) {
    fail(folder, fs::exists(folder, error)
                     ? "not a folder (expected a GPT-2 checkpoint folder with vocab.json and merges.txt)"
                     : "no such folder");
  }
  fs::path vocab = first_existing(folder, "vocab.json", "encoder.json");
  fs::path merges = first_existing(folder, "merges.txt", "vocab.bpe");
  return from_files(vocab.string(), merges.string());
}

BpeTokenizer BpeTokenizer::from_files(const std::string& vocab_path, const std::string& merges_path) {
  std::string vocab_json = read_whole_file(vocab_path);
  std::string merges_text = read_whole_file(merges_path);
  return from_contents(vocab_json, merges_text, vocab_path, merges_path);
}

BpeTokenizer BpeTokenizer::from_contents(std::string_view vocab_json, std::string_view merges_text,
                                         const std::string& vocab_name, const std::string& merges_name) {
  auto model = std::make_unique<Model>();

  // vocab.json: {"token spelling": id, ...}
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(vocab_json);
  } catch (const nlohmann::json::parse_error& e) {
    std::string detail = e.what();
    size_t bracket = detail.find("] ");  // drop nlohmann's "[json.exception.parse_error.101] "
    fail(vocab_name,
         "not valid JSON: " + (bracket == std::string::npos ? detail : detail.substr(bracket + 2)));
  }
  if (!vocab.is_object() || vocab.empty())
    fail(vocab_name, "expected a JSON object mapping each token to its id, found " +
                         std::string(vocab.is_object() ? "an empty object" : vocab.type_name()));
  std::unordered_map<std::string, int32_t> id_of_bytes;
  id_of_bytes.reserve(vocab.size());
  for (const auto& [spelling, value] : vocab.items()) {
    if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > kMaxTokenId)
      fail(vocab_name, "the id of token '" + spelling + "' is " + value.dump() + ", not an integer in 0.." +
                           std::to_string(kMaxTokenId));
    auto id = int32_t(value.get<int64_t>());
    std::string problem;
    std::optional<std::string> bytes = spelling_to_bytes(spelling, problem);
    if (!bytes || bytes->empty())
      fail(vocab_name, "token '" + spelling + "' " + (bytes ? "is empty" : problem));
    if (size_t(id) >= model->token_bytes.size()) model->token_bytes.resize(size_t(id) + 1);
    if (!model->token_bytes[id].empty())
      fail(vocab_name, "id " + std::to_string(id) + " is given to two tokens");
    model->token_bytes[id] = *bytes;
    id_of_bytes.emplace(std::move(*bytes), id);
  }
  for (int byte = 0; byte < 256; ++byte) {
    auto found = id_of_bytes.find(std::string(1, char(byte)));
    if (found == id_of_bytes.end())
      fail(vocab_name, "no token for byte " + std::to_string(byte) + " (spelled " +
                           hex_code_point(gpt2_byte_to_character()[byte]) +
                           "): not a byte-level BPE vocabulary");
    model->byte_token_ids[byte] = found->second;
  }
  auto end_of_text = id_of_bytes.find(kEndOfText);
  if (end_of_text == id_of_bytes.end())
    fail(vocab_name, std::string("no ") + kEndOfText + " token: not a GPT-2 vocabulary");
  model->end_of_text_id = end_of_text->second;

  // merges.txt: an optional "#version" line, then "left right" a line, highest priority first.
  int32_t rank = 0;
  size_t line_number = 0;
  for (size_t line_start = 0; line_start < merges_text.size();) {
    size_t line_end = merges_text.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = merges_text.size();
    std::string_view line = merges_text.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_number == 1 && line.starts_with("#version")) continue;
    // Fields split at spaces and tabs; neither can be part of a token (GPT-2 spells them Ġ and ĉ).
    std::vector<std::string_view> fields;
    for (size_t p = 0; p < line.size();) {
      size_t start = line.find_first_not_of(" \t", p);
      if (start == std::string_view::npos) break;
      size_t end = std::min(line.find_first_of(" \t", start), line.size());
      fields.push_back(line.substr(start, end - start));
      p = end;
    }
    if (fields.empty()) continue;
    std::string where = merges_name + ": line " + std::to_string(line_number);
    if (fields.size() != 2)
      throw Error(where + ": expected two tokens separated by a space, found " +
                  std::to_string(fields.size()));
    int32_t ids[2];
    std::string merged;
    for (int side = 0; side < 2; ++side) {
      std::string problem;
      std::optional<std::string> bytes = spelling_to_bytes(fields[side], problem);
      if (!bytes) throw Error(where + ": token '" + std::string(fields[side]) + "' " + problem);
      auto found = id_of_bytes.find(*bytes);
      if (found == id_of_bytes.end())
        throw Error(where + ": token '" + std::string(fields[side]) + "' is not in " + vocab_name);
      ids[side] = found->second;
      merged += *bytes;
    }
    auto merged_found = id_of_bytes.find(merged);
    if (merged_found == id_of_bytes.end())
      throw Error(where + ": the merged token '" + std::string(fields[0]) + std::string(fields[1]) +
                  "' is not in " + vocab_name);
    // A repeated rule takes its later rank, as in GPT-2's dict of ranks.
    model->merges[Model::pair_key(ids[0], ids[1])] = {rank++, merged_found->second};
  }
  if (model->merges.empty()) fail(merges_name, "no merge rules (expected lines of two tokens, e.g. \"Ġ t\")");
  return BpeTokenizer(std::move(model));
}

}  // namespace tessera::llm
