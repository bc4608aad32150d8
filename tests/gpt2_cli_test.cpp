// `tessera generate` end to end: greedy text equal to PyTorch's greedy tokens decoded, timings on
// stderr, stop strings, a batch of prompts, seeded sampling, and one `error:` line for bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "gpt2_test_reference.h"
#include "tessera/bpe_tokenizer.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

struct Output {
  int exit_code;
  std::string out, err;
};

std::string shell_quoted(const std::string& text) {
  std::string q = "'";
  for (char c : text) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

class GenerateCli : public ::testing::Test {
 protected:
  void SetUp() override {
    reference_ = testing::load_gpt2_reference("tiny");
    if (!reference_) GTEST_SKIP() << "models/gpt2/tiny missing: scripts/build_gpt2_checkpoints.py builds it";
    dir_ = fs::temp_directory_path() / ("tessera_gpt2_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    tokenizer_ = std::make_unique<llm::BpeTokenizer>(llm::BpeTokenizer::from_folder(reference_->folder));
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  Output run(const std::string& args) {
    const std::string err_file = (dir_ / "stderr.txt").string();
    const std::string command =
        std::string(TESSERA_BINARY_DIR) + "/tessera generate " + args + " 2>" + err_file;
    FILE* pipe = popen(command.c_str(), "r");
    Output result;
    std::array<char, 4096> buffer;
    while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) result.out.append(buffer.data(), n);
    int status = pclose(pipe);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::ifstream err(err_file);
    result.err.assign(std::istreambuf_iterator<char>(err), std::istreambuf_iterator<char>());
    return result;
  }

  // PyTorch's greedy continuation of prompt `index` as text, up to <|endoftext|>.
  std::string greedy_text(size_t index, size_t tokens) {
    std::vector<int32_t> ids = reference_->prompts[index].greedy;
    ids.resize(std::min(ids.size(), tokens));
    auto end = std::find(ids.begin(), ids.end(), tokenizer_->end_of_text_id());
    return tokenizer_->decode(std::vector<int32_t>(ids.begin(), end));
  }

  void expect_one_line_error(const std::string& args, const std::string& needle) {
    SCOPED_TRACE(args);
    Output r = run(args);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.err;
    EXPECT_EQ(r.out, "");
  }

  std::string model() const { return shell_quoted(reference_->folder); }

  std::optional<testing::Gpt2Reference> reference_;
  std::unique_ptr<llm::BpeTokenizer> tokenizer_;
  fs::path dir_;
};

TEST_F(GenerateCli, GreedyTextIsPyTorchsGreedyTokensAndTimingsGoToStderr) {
  const auto& prompt = reference_->prompts[1];  // "The quick brown fox jumps over the lazy dog."
  ASSERT_EQ(tokenizer_->encode(prompt.text), prompt.ids);
  Output r =
      run("--model " + model() + " --prompt " + shell_quoted(prompt.text) + " --max-tokens 20 --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, greedy_text(1, 20) + "\n");
  EXPECT_NE(r.err.find("model: 2 layers, 64 wide, 4 heads, vocabulary 50257, context 128"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("prefill: 10 tokens in "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" tokens/s\ndecode: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" ms/token\n"), std::string::npos) << r.err;
  // The last line is the decode timing.
  EXPECT_EQ(r.err.rfind("decode: "), r.err.rfind('\n', r.err.size() - 2) + 1) << r.err;
}

// The ONNX export (scripts/export_gpt2_onnx.py) with the tokenizer files beside it: the same text.
TEST_F(GenerateCli, OnnxExportGeneratesPyTorchsGreedyText) {
  const std::string onnx = reference_->folder + "/onnx/model.onnx";
  if (!fs::exists(onnx)) GTEST_SKIP() << onnx << " missing: scripts/build_gpt2_checkpoints.py exports it";
  const auto& prompt = reference_->prompts[1];
  Output r = run("--model " + shell_quoted(onnx) + " --prompt " + shell_quoted(prompt.text) +
                 " --max-tokens 20 --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, greedy_text(1, 20) + "\n");
  EXPECT_NE(r.err.find("model: 2 layers, 64 wide, 4 heads, vocabulary 50257, context 128"), std::string::npos)
      << r.err;
}

// --weights bcq4 loads the checkpoint with BCQ attention and MLP weights (their numerics are
// checked in gpt2_bcq_test) and generates with the LUT-GEMM decode path.
TEST_F(GenerateCli, BcqWeightsGenerateWithTimings) {
  Output r = run("--model " + model() + " --prompt " + shell_quoted("Hello there") +
                 " --max-tokens 6 --threads 2 --weights bcq4:g32");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
  EXPECT_NE(r.err.find("decode: "), std::string::npos) << r.err;
}

TEST_F(GenerateCli, StopStringCutsTheText) {
  const std::string full = greedy_text(1, 20);
  ASSERT_GT(full.size(), 12u);
  // A piece from the middle of the text; the output ends where it first appears.
  const std::string stop = full.substr(full.size() / 2, 3);
  Output r = run("--model " + model() + " --prompt " + shell_quoted(reference_->prompts[1].text) +
                 " --max-tokens 20 --stop " + shell_quoted(stop) + " --stop 'never appears'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, full.substr(0, full.find(stop)) + "\n");
}

TEST_F(GenerateCli, BatchOfPromptsPrintsEachContinuation) {
  Output r = run("--model " + model() + " --prompt " + shell_quoted(reference_->prompts[0].text) +
                 " --prompt " + shell_quoted(reference_->prompts[1].text) + " --max-tokens 12");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "=== 1 ===\n" + greedy_text(0, 12) + "\n=== 2 ===\n" + greedy_text(1, 12) + "\n");
  EXPECT_NE(r.err.find("prefill: 12 tokens"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ms/step of up to 2 sequences"), std::string::npos) << r.err;
}

TEST_F(GenerateCli, SamplingIsReproducibleFromTheSeed) {
  const std::string args =
      "--model " + model() +
      " --prompt 'Once upon a time' --max-tokens 16 --temperature 0.8 --top-k 40 --top-p 0.95 ";
  Output a = run(args + "--seed 3"), b = run(args + "--seed 3 --threads 1"), c = run(args + "--seed 4");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
  // An empty prompt starts from <|endoftext|>.
  Output empty = run("--model " + model() + " --prompt '' --max-tokens 4");
  EXPECT_EQ(empty.exit_code, 0) << empty.err;
  EXPECT_NE(empty.err.find("prefill: 1 tokens"), std::string::npos) << empty.err;
}

TEST_F(GenerateCli, ErrorsAreOneLine) {
  expect_one_line_error("--model /nonexistent/gpt2 --prompt hi", "not a folder");
  expect_one_line_error("--model " + model() + " --prompt hi --top-p 1.5", "top-p must be in (0, 1]");
  expect_one_line_error("--model " + model() + " --prompt hi --temperature -1", "temperature must be");
  expect_one_line_error("--model " + model() + " --prompt hi --top-k -2", "top-k must be");
  expect_one_line_error("--model " + model() + " --prompt hi --weights bcq9", "expected f32, bcq2, bcq3 or bcq4");
  expect_one_line_error("--model " + model() + " --prompt hi --max-tokens -1", "max-tokens");
  expect_one_line_error("--model " + model() + " --prompt hi --max-tokens lots", "max-tokens");
  expect_one_line_error("--model " + model(), "--prompt");
  expect_one_line_error("--prompt hi", "--model");
  auto odd = testing::load_gpt2_reference("odd");
  if (odd) expect_one_line_error("--model " + shell_quoted(odd->folder) + " --prompt hi", "vocab.json");

  const fs::path broken = dir_ / "broken";
  fs::create_directories(broken);
  fs::copy_file(reference_->folder + "/config.json", broken / "config.json");
  std::ofstream(broken / "model.safetensors", std::ios::binary)
      << std::string("\x10\0\0\0\0\0\0\0{\"a\":1}", 15);
  expect_one_line_error("--model " + shell_quoted(broken.string()) + " --prompt hi", "model.safetensors");
  std::ofstream(broken / "config.json") << "{ not json";
  expect_one_line_error("--model " + shell_quoted(broken.string()) + " --prompt hi",
                        "config.json: not valid JSON");
}

}  // namespace
}  // namespace tessera
