// GPT-2 natively against PyTorch (scripts/build_gpt2_checkpoints.py): logits at every position and
// greedy tokens for checkpoints of several sizes and storage formats, on every ISA; KV-cache
// decode against full recomputation; a batch of prompts of different lengths against each alone;
// and malformed checkpoints refused with messages that name the problem.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "gpt2_test_reference.h"
#include "tessera/gpt2.h"
#include "tessera/onnx.h"
#include "tessera/session.h"
#include "tessera/text_generation.h"

namespace tessera::llm {
namespace {

namespace fs = std::filesystem;
using testing::relative_l2;

constexpr double kLogitTolerance = 1e-4;     // relative L2 against PyTorch
constexpr double kSameMathTolerance = 1e-5;  // Tessera against itself along another path

Tensor prompt_logits(const Gpt2Model& model, const std::vector<int32_t>& ids, ThreadPool* pool) {
  Gpt2State state(model, 1);
  Gpt2Input input{0, ids};
  return model.forward(state, std::span(&input, 1), LogitRows::all, pool);
}

std::vector<int32_t> greedy_tokens(const Gpt2Model& model, const std::vector<int32_t>& prompt, int64_t count,
                                   ThreadPool* pool) {
  GenerationOptions options;
  options.max_new_tokens = count;
  GenerationResult result = generate(model, std::span(&prompt, 1), options, pool);
  return result.tokens[0];
}

class Gpt2Checkpoint : public ::testing::TestWithParam<std::string> {};

TEST_P(Gpt2Checkpoint, LogitsAtEveryPositionMatchPyTorchOnEveryIsa) {
  TESSERA_GPT2_REFERENCE_OR_SKIP(reference, GetParam());
  Gpt2Model model = Gpt2Model::load(reference.folder);
  ThreadPool pool(2);
  testing::for_each_isa([&](primitives::Isa) {
    for (const auto& prompt : reference.prompts) {
      SCOPED_TRACE(prompt.name);
      Tensor expected = read_npy(prompt.logits_path);
      Tensor actual = prompt_logits(model, prompt.ids, &pool);
      ASSERT_EQ(actual.shape(), expected.shape());
      EXPECT_LT(testing::relative_l2_error(actual, expected), kLogitTolerance);
      // Every position on its own, so that no row hides behind the others' norm.
      const int64_t vocabulary = expected.dim(1);
      for (int64_t row = 0; row < expected.dim(0); ++row)
        ASSERT_LT(relative_l2(actual.data<float>() + row * vocabulary,
                              expected.data<float>() + row * vocabulary, vocabulary),
                  kLogitTolerance)
            << "position " << row;
    }
  });
}

TEST_P(Gpt2Checkpoint, GreedyTokensMatchPyTorch) {
  TESSERA_GPT2_REFERENCE_OR_SKIP(reference, GetParam());
  Gpt2Model model = Gpt2Model::load(reference.folder);
  ThreadPool pool(2);
  for (const auto& prompt : reference.prompts) {
    SCOPED_TRACE(prompt.name);
    EXPECT_EQ(greedy_tokens(model, prompt.ids, int64_t(prompt.greedy.size()), &pool), prompt.greedy);
  }
}

TEST_P(Gpt2Checkpoint, BatchOfPromptsOfDifferentLengthsEqualsEachAlone) {
  TESSERA_GPT2_REFERENCE_OR_SKIP(reference, GetParam());
  Gpt2Model model = Gpt2Model::load(reference.folder);
  ThreadPool pool(2);
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& prompt : reference.prompts) prompts.push_back(prompt.ids);

  // Prefill of all prompts at once, the longest first: logits of every position.
  Gpt2State state(model, int(prompts.size()));
  std::vector<Gpt2Input> inputs;
  for (int i = int(prompts.size()) - 1; i >= 0; --i) inputs.push_back({i, prompts[size_t(i)]});
  Tensor batch = model.forward(state, inputs, LogitRows::all, &pool);
  const int64_t vocabulary = model.config().vocab_size;
  int64_t row = 0;
  for (const Gpt2Input& input : inputs) {
    SCOPED_TRACE(reference.prompts[size_t(input.sequence)].name);
    const int64_t n = int64_t(input.tokens.size());
    Tensor alone = prompt_logits(model, prompts[size_t(input.sequence)], &pool);
    Tensor expected = read_npy(reference.prompts[size_t(input.sequence)].logits_path);
    const float* rows = batch.data<float>() + row * vocabulary;
    EXPECT_LT(relative_l2(rows, alone.data<float>(), n * vocabulary), kSameMathTolerance);
    EXPECT_LT(relative_l2(rows, expected.data<float>(), n * vocabulary), kLogitTolerance);
    EXPECT_EQ(state.length(input.sequence), n);
    row += n;
  }

  // Greedy generation of the whole batch: the sequences decode together, each as PyTorch's.
  GenerationOptions options;
  options.max_new_tokens = 0;
  for (const auto& prompt : reference.prompts)
    options.max_new_tokens = std::max<int64_t>(options.max_new_tokens, int64_t(prompt.greedy.size()));
  GenerationResult result = generate(model, prompts, options, &pool);
  for (size_t i = 0; i < prompts.size(); ++i) {
    SCOPED_TRACE(reference.prompts[i].name);
    const auto& expected = reference.prompts[i].greedy;
    ASSERT_GE(result.tokens[i].size(), expected.size());
    EXPECT_EQ(std::vector<int32_t>(result.tokens[i].begin(),
                                   result.tokens[i].begin() + std::ptrdiff_t(expected.size())),
              expected);
  }
}

TEST_P(Gpt2Checkpoint, KvCacheDecodeEqualsFullRecomputation) {
  TESSERA_GPT2_REFERENCE_OR_SKIP(reference, GetParam());
  Gpt2Model model = Gpt2Model::load(reference.folder);
  ThreadPool pool(2);
  // The longest prompt followed by its greedy continuation, computed whole.
  const auto& prompt =
      *std::max_element(reference.prompts.begin(), reference.prompts.end(),
                        [](const auto& a, const auto& b) { return a.ids.size() < b.ids.size(); });
  std::vector<int32_t> tokens = prompt.ids;
  tokens.insert(tokens.end(), prompt.greedy.begin(), prompt.greedy.end() - 1);
  const int64_t vocabulary = model.config().vocab_size, total = int64_t(tokens.size());
  Tensor full = prompt_logits(model, tokens, &pool);

  for (int64_t prefill : {int64_t(1), int64_t(prompt.ids.size())}) {
    SCOPED_TRACE("prefill of " + std::to_string(prefill));
    Gpt2State state(model, 1);
    // Prefill in two chunks (the second continues after the cache), then one token at a time.
    const int64_t half = prefill / 2;
    std::vector<std::pair<int64_t, int64_t>> steps;
    if (half > 0) steps.push_back({0, half});
    steps.push_back({half, prefill});
    for (int64_t t = prefill; t < total; ++t) steps.push_back({t, t + 1});
    for (auto [begin, end] : steps) {
      Gpt2Input input{0, std::span(tokens).subspan(size_t(begin), size_t(end - begin))};
      Tensor logits = model.forward(state, std::span(&input, 1), LogitRows::all, &pool);
      ASSERT_LT(relative_l2(logits.data<float>(), full.data<float>() + begin * vocabulary,
                            (end - begin) * vocabulary),
                kSameMathTolerance)
          << "tokens " << begin << " to " << end;
    }
    EXPECT_EQ(state.length(0), total);
  }
}

// The checkpoint's ONNX export (scripts/export_gpt2_onnx.py) two ways: run as a graph by the
// Session (which checks the exported math against PyTorch) and loaded natively into the KV-cache
// runtime (which must give the folder's logits and PyTorch's greedy tokens).
TEST_P(Gpt2Checkpoint, OnnxExportRunsAsAGraphAndNativelyLikePyTorch) {
  TESSERA_GPT2_REFERENCE_OR_SKIP(reference, GetParam());
  const std::string onnx = reference.folder + "/onnx/model.onnx";
  if (!fs::exists(onnx)) GTEST_SKIP() << onnx << " missing: scripts/build_gpt2_checkpoints.py exports it";
  Gpt2Model from_onnx = Gpt2Model::load(onnx);
  Gpt2Model from_folder = Gpt2Model::load(reference.folder);
  EXPECT_EQ(from_onnx.parameter_count(), from_folder.parameter_count());
  EXPECT_EQ(from_onnx.config().n_head, from_folder.config().n_head);
  ThreadPool pool(2);
  Session session = Session::from_file(onnx, SessionOptions{2});
  for (const auto& prompt : reference.prompts) {
    SCOPED_TRACE(prompt.name);
    Tensor expected = read_npy(prompt.logits_path);
    std::vector<int64_t> ids(prompt.ids.begin(), prompt.ids.end());
    Tensor graph_logits =
        session.run({{"input_ids", Tensor::from_int64(ids, {1, int64_t(ids.size())})}}).at("logits");
    ASSERT_EQ(graph_logits.shape(), (Shape{1, expected.dim(0), expected.dim(1)}));
    EXPECT_LT(relative_l2(graph_logits.data<float>(), expected.data<float>(), expected.numel()), kLogitTolerance);
    Tensor native = prompt_logits(from_onnx, prompt.ids, &pool);
    Tensor folder = prompt_logits(from_folder, prompt.ids, &pool);
    ASSERT_EQ(native.shape(), expected.shape());
    EXPECT_EQ(std::memcmp(native.data<float>(), folder.data<float>(), size_t(native.numel()) * sizeof(float)), 0)
        << "the ONNX initializers are the checkpoint's tensors, so the logits are the same bits";
    EXPECT_EQ(greedy_tokens(from_onnx, prompt.ids, int64_t(prompt.greedy.size()), &pool), prompt.greedy);
  }
}

// f16 and bf16 initializers are widened at load: a model whose weight is stored in 16 bits gives
// the same logits, bit for bit, as one storing the same rounded values in f32.
TEST(Gpt2Model, OnnxExportWithSixteenBitInitializers) {
  TESSERA_GPT2_REFERENCE_OR_SKIP(reference, "odd");
  const std::string onnx = reference.folder + "/onnx/model.onnx";
  if (!fs::exists(onnx)) GTEST_SKIP() << onnx << " missing";
  const Graph graph = load_onnx_model(onnx);
  const fs::path dir = fs::temp_directory_path() / ("tessera_gpt2_16bit_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  ThreadPool pool(2);
  const std::vector<int32_t>& ids = reference.prompts.back().ids;
  for (DType dtype : {DType::f16, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dtype));
    Graph narrow = graph, rounded = graph;
    for (const char* name : {"transformer.h.0.mlp.c_fc.weight", "transformer.wpe.weight"}) {
      const Tensor& original = graph.values[size_t(graph.find_value(name))].constant;
      Tensor bits(dtype, original.shape()), widened(DType::f32, original.shape());
      for (int64_t i = 0; i < original.numel(); ++i) {
        const float x = original.data<float>()[i];
        const uint16_t h = dtype == DType::f16 ? f32_to_f16(x) : f32_to_bf16(x);
        bits.data<uint16_t>()[i] = h;
        widened.data<float>()[i] = dtype == DType::f16 ? f16_to_f32(h) : bf16_to_f32(h);
      }
      Value& n = narrow.values[size_t(narrow.find_value(name))];
      n.constant = bits;
      n.dtype = dtype;
      rounded.values[size_t(rounded.find_value(name))].constant = widened;
    }
    save_onnx_model(narrow, (dir / "narrow.onnx").string());
    save_onnx_model(rounded, (dir / "rounded.onnx").string());
    Tensor a = prompt_logits(Gpt2Model::load((dir / "narrow.onnx").string()), ids, &pool);
    Tensor b = prompt_logits(Gpt2Model::load((dir / "rounded.onnx").string()), ids, &pool);
    ASSERT_EQ(a.shape(), b.shape());
    EXPECT_EQ(std::memcmp(a.data<float>(), b.data<float>(), size_t(a.numel()) * sizeof(float)), 0);
  }
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Sizes, Gpt2Checkpoint, ::testing::Values("tiny", "odd", "small"));

TEST(Gpt2Model, ConfigParametersAndDecodeBytes) {
  TESSERA_GPT2_REFERENCE_OR_SKIP(reference, "tiny");
  Gpt2Model model = Gpt2Model::load(reference.folder);
  const Gpt2Config& c = model.config();
  EXPECT_EQ(c.n_layer, 2);
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.n_inner, 256);
  EXPECT_EQ(c.vocab_size, 50257);
  const int64_t per_layer = 4 * 64 + 64 * 192 + 192 + 64 * 64 + 64 + 64 * 256 + 256 + 256 * 64 + 64;
  EXPECT_EQ(model.parameter_count(), 50257 * 64 + 128 * 64 + 2 * per_layer + 2 * 64);
  EXPECT_EQ(model.decode_weight_bytes(), 4 * (2 * per_layer + 2 * 64 + 50257 * 64));
}

TEST(Gpt2Model, ForwardRefusesBadInputs) {
  TESSERA_GPT2_REFERENCE_OR_SKIP(reference, "odd");
  Gpt2Model model = Gpt2Model::load(reference.folder);
  Gpt2State state(model, 2, 10);
  EXPECT_EQ(state.capacity(), 10);
  std::vector<int32_t> ok{1, 2, 3}, bad_id{1, 1000}, long_prompt(11, 5);
  auto run = [&](std::vector<Gpt2Input> inputs) {
    return model.forward(state, inputs, LogitRows::last, nullptr);
  };
  auto expect_error = [&](std::vector<Gpt2Input> inputs, const std::string& expected) {
    try {
      run(inputs);
      ADD_FAILURE() << "accepted; expected: " << expected;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  };
  expect_error({{0, bad_id}}, "token id 1000 is outside the vocabulary");
  expect_error({{2, ok}}, "no sequence 2");
  expect_error({{0, ok}, {0, ok}}, "appears twice");
  expect_error({{0, {}}}, "has no tokens");
  expect_error({{1, long_prompt}}, "room for 10");
  EXPECT_EQ(state.length(0), 0);  // refused calls change nothing
  EXPECT_EQ(run({{0, ok}, {1, ok}}).shape(), (Shape{2, 1000}));
  EXPECT_EQ(state.length(1), 3);
  state.clear(1);
  EXPECT_EQ(state.length(1), 0);

  TESSERA_GPT2_REFERENCE_OR_SKIP(tiny, "tiny");
  Gpt2Model other = Gpt2Model::load(tiny.folder);
  Gpt2State other_state(other, 1);
  Gpt2Input input{0, ok};
  EXPECT_THROW(model.forward(other_state, std::span(&input, 1), LogitRows::last, nullptr), Error);
}

// Checkpoint folders made from the tiny one with one thing wrong each.
class MalformedCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    auto reference = testing::load_gpt2_reference("tiny");
    if (!reference) GTEST_SKIP() << "models/gpt2/tiny missing: scripts/build_gpt2_checkpoints.py builds it";
    source_ = reference->folder;
    root_ = fs::temp_directory_path() / ("tessera_gpt2_malformed_" + std::to_string(::getpid()));
    fs::create_directories(root_);
    std::ifstream config(source_ + "/config.json");
    config_ = nlohmann::json::parse(config);
  }
  void TearDown() override {
    if (!root_.empty()) fs::remove_all(root_);
  }
  // A folder with the given config.json text and the tiny weights (linked, not copied).
  std::string folder(const std::string& name, const std::string& config_text, bool with_weights = true) {
    fs::path dir = root_ / name;
    fs::create_directories(dir);
    std::ofstream(dir / "config.json") << config_text;
    if (with_weights)
      fs::create_symlink(fs::absolute(source_ + "/model.safetensors"), dir / "model.safetensors");
    return dir.string();
  }
  std::string config_with(const std::string& key, const nlohmann::json& value) {
    nlohmann::json c = config_;
    c[key] = value;
    return c.dump();
  }
  void expect_load_error(const std::string& dir, const std::string& expected) {
    try {
      Gpt2Model::load(dir);
      ADD_FAILURE() << dir << " loaded; expected: " << expected;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  }
  std::string source_;
  fs::path root_;
  nlohmann::json config_;
};

TEST_F(MalformedCheckpoint, FolderAndFiles) {
  expect_load_error((root_ / "absent").string(), "not a folder");
  expect_load_error(folder("no_weights", config_.dump(), false), "no model.safetensors");
  fs::create_directories(root_ / "no_config");
  expect_load_error((root_ / "no_config").string(), "no config.json");
}

TEST_F(MalformedCheckpoint, BadConfig) {
  expect_load_error(folder("bad_json", "{\"n_embd\": 64,"), "config.json: not valid JSON");
  expect_load_error(folder("array", "[1, 2]"), "not a JSON object");
  expect_load_error(folder("heads", config_with("n_head", 5)), "not a multiple of n_head");
  expect_load_error(folder("zero", config_with("n_layer", 0)), "\"n_layer\" is 0");
  expect_load_error(folder("float", config_with("n_embd", 64.5)), "\"n_embd\" must be an integer");
  expect_load_error(folder("activation", config_with("activation_function", "swish")),
                    "swish\" is not supported");
  expect_load_error(folder("type", config_with("model_type", "llama")), "only \"gpt2\"");
  expect_load_error(folder("eps", config_with("layer_norm_epsilon", -1)), "layer_norm_epsilon");
  expect_load_error(folder("scaling", config_with("scale_attn_by_inverse_layer_idx", true)), "not supported");
}

TEST_F(MalformedCheckpoint, WeightsThatDisagreeWithTheConfig) {
  expect_load_error(folder("more_layers", config_with("n_layer", 3)), "missing tensor 'h.2.ln_1.weight'");
  expect_load_error(folder("fewer_layers", config_with("n_layer", 1)),
                    "belongs to layer 1 but config.json has n_layer = 1");
  expect_load_error(folder("narrower", config_with("n_embd", 32)),
                    "'wpe.weight' has shape [128,64] but config.json implies [128,32]");
  expect_load_error(folder("vocabulary", config_with("vocab_size", 50000)),
                    "'wte.weight' has shape [50257,64]");
  expect_load_error(folder("inner", config_with("n_inner", 128)), "'h.0.mlp.c_fc.weight' has shape [64,256]");
}

TEST_F(MalformedCheckpoint, OnnxExportWithoutConfigOrWithAWrongTensor) {
  const std::string onnx = source_ + "/onnx/model.onnx";
  if (!fs::exists(onnx)) GTEST_SKIP() << onnx << " missing";
  Graph graph = load_onnx_model(onnx);
  // No config in the metadata and none beside the file.
  Graph no_config = graph;
  no_config.metadata.clear();
  const fs::path bare = root_ / "bare";
  fs::create_directories(bare);
  save_onnx_model(no_config, (bare / "model.onnx").string());
  expect_load_error((bare / "model.onnx").string(), "no GPT-2 config");
  // A config.json beside it stands in for the metadata, and is checked against the weights.
  std::ofstream(bare / "config.json") << config_with("n_layer", 3);
  expect_load_error((bare / "model.onnx").string(), "missing tensor 'h.2.ln_1.weight'");
  std::ofstream(bare / "config.json", std::ios::trunc) << config_.dump();
  EXPECT_EQ(Gpt2Model::load((bare / "model.onnx").string()).config().n_layer, 2);
  // An initializer of the wrong shape.
  Graph wrong = graph;
  Value& bias = wrong.values[size_t(wrong.find_value("h.1.mlp.c_proj.bias"))];
  bias.constant = Tensor(DType::f32, {63});
  const fs::path wrong_dir = root_ / "wrong";
  fs::create_directories(wrong_dir);
  save_onnx_model(wrong, (wrong_dir / "model.onnx").string());
  expect_load_error((wrong_dir / "model.onnx").string(), "'h.1.mlp.c_proj.bias' has shape [63]");
  // An initializer of a type that is not a float.
  Graph integer = graph;
  Value& ln = integer.values[size_t(integer.find_value("ln_f.bias"))];
  ln.constant = Tensor(DType::i64, {64});
  ln.dtype = DType::i64;
  const fs::path integer_dir = root_ / "integer";
  fs::create_directories(integer_dir);
  save_onnx_model(integer, (integer_dir / "model.onnx").string());
  expect_load_error((integer_dir / "model.onnx").string(), "initializer 'ln_f.bias' is int64");
  // Not an ONNX model at all; a weights file given instead of its folder.
  std::ofstream(root_ / "garbage.onnx") << "not a model";
  expect_load_error((root_ / "garbage.onnx").string(), "not a valid ONNX model");
  expect_load_error(source_ + "/model.safetensors", "give the checkpoint folder");
}

TEST_F(MalformedCheckpoint, DamagedSafetensors) {
  const std::string dir = folder("truncated", config_.dump(), false);
  {
    std::ifstream in(source_ + "/model.safetensors", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(fs::path(dir) / "model.safetensors", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  expect_load_error(dir, "model.safetensors: tensor '");
  const std::string garbage = folder("garbage", config_.dump(), false);
  std::ofstream(fs::path(garbage) / "model.safetensors", std::ios::binary)
      << "this is not a safetensors file";
  expect_load_error(garbage, "not a safetensors file");
}

}  // namespace
}  // namespace tessera::llm
