// `tessera generate`: GPT-2 text generation from a Hugging Face checkpoint folder. The text goes
// to stdout as it is produced (one prompt) or per prompt at the end (several); load, prefill and
// decode timings go to stderr.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "fmt/format.h"
#include "tessera/bpe_tokenizer.h"
#include "tessera/commands.h"
#include "tessera/gpt2.h"
#include "tessera/text_generation.h"

namespace tessera::cli {

namespace {

void write_stdout(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

std::string rate(double count, double seconds) {
  return seconds > 0 ? fmt::format("{:.1f}", count / seconds) : std::string("n/a");
}

}  // namespace

void add_generate_command(CLI::App& app) {
  struct Options {
    std::string model;
    std::vector<std::string> prompts, stops;
    int64_t max_tokens = 64;
    float temperature = 0.f, top_p = 1.f;
    int64_t top_k = 0;
    uint64_t seed = 0;
    int threads = 0;
    std::string weights = "f32";
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd =
      app.add_subcommand("generate", "Generate text with a GPT-2 checkpoint (Hugging Face folder or its ONNX export)");
  cmd->add_option("--model", options->model,
                  "checkpoint folder (config.json, model.safetensors, vocab.json, merges.txt), or an ONNX "
                  "file from scripts/export_gpt2_onnx.py with vocab.json and merges.txt beside it")
      ->required();
  cmd->add_option("--prompt", options->prompts, "prompt text; repeat for a batch of prompts")->required();
  cmd->add_option("--max-tokens", options->max_tokens, "tokens to generate per prompt (default 64)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20));
  cmd->add_option("--temperature", options->temperature, "sampling temperature; 0 is greedy (default 0)");
  cmd->add_option("--top-k", options->top_k, "sample from the k most probable tokens (default 0: off)");
  cmd->add_option("--top-p", options->top_p,
                  "sample from the smallest set with probability >= p (default 1: off)");
  cmd->add_option("--seed", options->seed, "random seed for sampling (default 0)");
  cmd->add_option("--stop", options->stops,
                  "stop a prompt's text where TEXT appears (repeatable); "
                  "<|endoftext|> always stops");
  cmd->add_option("--threads", options->threads, "worker threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--weights", options->weights,
                  "f32, or bcq2|bcq3|bcq4[:g<group>]: attention and MLP weights in BCQ, products by "
                  "LUT-GEMM (embeddings, norms and the LM head stay f32; docs/COMPRESSION_LUT_GEMM.md)");
  cmd->callback([options] {
    llm::GenerationOptions generation;
    generation.max_new_tokens = options->max_tokens;
    generation.sampling = {options->temperature, options->top_k, options->top_p, options->seed};
    llm::check_sampling_options(generation.sampling);  // before the slow part
    const llm::Gpt2WeightOptions weights = llm::Gpt2WeightOptions::parse(options->weights);

    auto start = std::chrono::steady_clock::now();
    ThreadPool pool(options->threads);
    llm::Gpt2Model model = llm::Gpt2Model::load(options->model, weights, &pool);
    // The tokenizer files sit in the checkpoint folder, or beside the ONNX file.
    const std::filesystem::path model_path(options->model);
    llm::BpeTokenizer tokenizer = llm::BpeTokenizer::from_folder(
        std::filesystem::is_regular_file(model_path) ? model_path.parent_path().string() : options->model);
    const llm::Gpt2Config& c = model.config();
    if (int64_t(tokenizer.vocabulary_size()) > c.vocab_size)
      throw Error(fmt::format("{}: the tokenizer's vocabulary ({} tokens) is larger than the model's ({})",
                              options->model, tokenizer.vocabulary_size(), c.vocab_size));
    const double load_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cerr << fmt::format(
        "model: {} layers, {} wide, {} heads, vocabulary {}, context {}; {:.1f}M parameters; "
        "loaded in {:.2f} s; {} threads\n",
        c.n_layer, c.n_embd, c.n_head, c.vocab_size, c.n_positions, double(model.parameter_count()) / 1e6,
        load_seconds, pool.size());

    // "<|endoftext|>" written in a prompt is the token itself (a document boundary); an empty
    // prompt starts from it, as GPT-2's unconditional samples do.
    std::vector<std::vector<int32_t>> prompts;
    for (const std::string& text : options->prompts) {
      prompts.push_back(tokenizer.encode(text, llm::SpecialTokens::recognized));
      if (prompts.back().empty()) prompts.back().push_back(tokenizer.end_of_text_id());
    }
    generation.stop_tokens = {tokenizer.end_of_text_id()};

    const bool streaming = prompts.size() == 1;
    std::vector<llm::StopTextFilter> filters(prompts.size(), llm::StopTextFilter(options->stops));
    std::vector<std::string> texts(prompts.size());
    auto on_token = [&](int sequence, int32_t token) {
      llm::StopTextFilter& filter = filters[size_t(sequence)];
      std::string shown = filter.push(tokenizer.token_bytes(token));
      if (streaming)
        write_stdout(shown);
      else
        texts[size_t(sequence)] += shown;
      return !filter.stopped();
    };
    llm::GenerationResult result = llm::generate(model, prompts, generation, &pool, on_token);

    for (size_t i = 0; i < prompts.size(); ++i) texts[i] += filters[i].finish();
    if (streaming) {
      write_stdout(texts[0] + "\n");
    } else {
      for (size_t i = 0; i < prompts.size(); ++i)
        write_stdout(fmt::format("=== {} ===\n{}\n", i + 1, texts[i]));
    }
    const llm::GenerationTimings& t = result.timings;
    std::cerr << fmt::format("prefill: {} tokens in {:.1f} ms, {} tokens/s\n", t.prompt_tokens,
                             t.prefill_seconds * 1e3, rate(double(t.prompt_tokens), t.prefill_seconds));
    const std::string per_step =
        t.decode_steps > 0 ? fmt::format("{:.2f}", t.decode_seconds * 1e3 / double(t.decode_steps)) : "n/a";
    std::cerr << fmt::format(
        "decode: {} tokens in {:.1f} ms, {} tokens/s, {} ms/{}\n", t.decode_tokens, t.decode_seconds * 1e3,
        rate(double(t.decode_tokens), t.decode_seconds), per_step,
        prompts.size() == 1 ? "token" : fmt::format("step of up to {} sequences", prompts.size()));
  });
}

}  // namespace tessera::cli
