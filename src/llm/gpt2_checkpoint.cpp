// Loads a Hugging Face GPT-2 checkpoint folder: config.json for the sizes, model.safetensors for
// the weights (checked tensor by tensor against the config), packed once for the runtime.
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "compression/bcq.h"
#include "llm/gpt2_weights.h"
#include "tessera/error.h"
#include "tessera/onnx.h"

namespace tessera::llm {

namespace {

namespace fs = std::filesystem;

constexpr const char* kOnnxConfigKey = "tessera.gpt2.config";

[[noreturn]] void fail(const std::string& source, const std::string& problem) {
  throw Error(source + ": " + problem);
}

std::string read_text_file(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) fail(path.string(), "cannot open");
  std::ostringstream contents;
  contents << file.rdbuf();
  if (file.bad()) fail(path.string(), "read error");
  return std::move(contents).str();
}

std::vector<float> to_vector(const Tensor& t) {
  const float* p = t.data<float>();
  return std::vector<float>(p, p + t.numel());
}

// The checkpoint's tensors by name, from a safetensors file or an ONNX model's initializers.
class NamedTensors {
 public:
  virtual ~NamedTensors() = default;
  virtual const std::string& name() const = 0;  // the file, for messages
  virtual std::vector<std::string> names() const = 0;
  virtual const Shape* shape(const std::string& tensor) const = 0;  // nullptr when absent
  virtual Tensor read_f32(const std::string& tensor) const = 0;
};

class SafetensorsTensors final : public NamedTensors {
 public:
  explicit SafetensorsTensors(const SafetensorsFile& file) : file_(file) {}
  const std::string& name() const override { return file_.name(); }
  std::vector<std::string> names() const override {
    std::vector<std::string> all;
    for (const SafetensorsEntry& e : file_.entries()) all.push_back(e.name);
    return all;
  }
  const Shape* shape(const std::string& tensor) const override {
    const SafetensorsEntry* e = file_.find(tensor);
    return e ? &e->shape : nullptr;
  }
  Tensor read_f32(const std::string& tensor) const override { return file_.read_f32(tensor); }

 private:
  const SafetensorsFile& file_;
};

// An ONNX model's initializers (scripts/export_gpt2_onnx.py keeps the checkpoint's names).
class OnnxInitializers final : public NamedTensors {
 public:
  OnnxInitializers(const Graph& graph, std::string file) : file_(std::move(file)) {
    for (const Value& v : graph.values)
      if (v.is_constant()) tensors_.emplace(v.name, v.constant);
  }
  const std::string& name() const override { return file_; }
  std::vector<std::string> names() const override {
    std::vector<std::string> all;
    for (const auto& [name, tensor] : tensors_) all.push_back(name);
    return all;
  }
  const Shape* shape(const std::string& tensor) const override {
    auto it = tensors_.find(tensor);
    return it == tensors_.end() ? nullptr : &it->second.shape();
  }
  Tensor read_f32(const std::string& tensor) const override {
    const Tensor& t = tensors_.at(tensor);
    if (t.dtype() == DType::f32) return t;
    if (t.dtype() != DType::f16 && t.dtype() != DType::bf16)
      fail(file_, "initializer '" + tensor + "' is " + dtype_name(t.dtype()) + "; GPT-2 weights are read from f32, f16 or bf16");
    Tensor converted(DType::f32, t.shape());
    const uint16_t* bits = t.data<uint16_t>();
    float* out = converted.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i)
      out[i] = t.dtype() == DType::f16 ? f16_to_f32(bits[i]) : bf16_to_f32(bits[i]);
    return converted;
  }

 private:
  std::string file_;
  std::map<std::string, Tensor> tensors_;
};

// Looks tensors up by their GPT2Model names, with the "transformer." prefix that
// GPT2LMHeadModel checkpoints carry or without it, and checks each one's shape.
class TensorSource {
 public:
  explicit TensorSource(const NamedTensors& tensors) : tensors_(tensors) {
    if (tensors.shape("transformer.wte.weight")) prefix_ = "transformer.";
  }

  // The name a tensor is stored under, or "" when absent.
  std::string find(const std::string& name) const {
    if (tensors_.shape(prefix_ + name)) return prefix_ + name;
    return tensors_.shape(name) ? name : std::string();
  }

  Tensor read(const std::string& name, const Shape& expected) {
    const std::string stored = find(name);
    if (stored.empty()) fail(tensors_.name(), "missing tensor '" + prefix_ + name + "'");
    const Shape& shape = *tensors_.shape(stored);
    if (shape != expected)
      fail(tensors_.name(), "tensor '" + stored + "' has shape " + shape_to_string(shape) +
                                " but config.json implies " + shape_to_string(expected));
    Tensor t = tensors_.read_f32(stored);
    parameters_ += t.numel();
    return t;
  }

  std::vector<float> vector(const std::string& name, int64_t size) { return to_vector(read(name, {size})); }

  // A Conv1D weight [in, out] and its bias [out]; with BCQ options the weight is fitted (as
  // [out, in]: one scale per output row and group of inputs) and only the packed form is kept.
  Gpt2Linear conv1d(const std::string& name, int64_t in, int64_t out, const Gpt2WeightOptions& options,
                    ThreadPool* pool) {
    Gpt2Linear linear;
    Tensor weight = read(name + ".weight", {in, out});
    if (options.bcq_bits == 0) {
      linear.weight = primitives::PackedB(in, out, weight.data<float>(), out, false);
    } else {
      std::vector<float> by_output(size_t(in * out));
      primitives::transpose_2d(in, out, weight.data<float>(), out, by_output.data(), in, sizeof(float));
      const compression::BcqOptions bcq{options.bcq_bits, options.bcq_group_size, options.bcq_refine_iterations};
      linear.bcq = compression::PackedBcq(compression::bcq_fit(by_output.data(), out, in, in, bcq, pool));
    }
    linear.bias = vector(name + ".bias", out);
    return linear;
  }

  int64_t parameters() const { return parameters_; }
  const std::string& prefix() const { return prefix_; }

 private:
  const NamedTensors& tensors_;
  std::string prefix_;
  int64_t parameters_ = 0;
};

// A tensor of a layer the config does not have means config.json and the weights disagree.
void check_layer_count(const NamedTensors& tensors, const std::string& prefix, int64_t n_layer) {
  for (const std::string& full_name : tensors.names()) {
    std::string_view name = full_name;
    if (name.starts_with(prefix)) name.remove_prefix(prefix.size());
    if (!name.starts_with("h.")) continue;
    name.remove_prefix(2);
    int64_t layer = 0;
    size_t digits = 0;
    while (digits < name.size() && digits < 9 && name[digits] >= '0' && name[digits] <= '9')
      layer = layer * 10 + (name[digits++] - '0');
    if (digits > 0 && layer >= n_layer)
      fail(tensors.name(), "tensor '" + full_name + "' belongs to layer " + std::to_string(layer) +
                               " but config.json has n_layer = " + std::to_string(n_layer));
  }
}

std::unique_ptr<Gpt2Model::Weights> load_weights(const Gpt2Config& config, const NamedTensors& tensors,
                                                 const Gpt2WeightOptions& options, ThreadPool* pool) {
  if (options.bcq_bits != 0)
    compression::check_bcq_options(
        compression::BcqOptions{options.bcq_bits, options.bcq_group_size, options.bcq_refine_iterations});
  // Fitting BCQ takes seconds: on all cores unless the caller gave a pool.
  std::unique_ptr<ThreadPool> own_pool;
  if (options.bcq_bits != 0 && !pool) {
    own_pool = std::make_unique<ThreadPool>(0);
    pool = own_pool.get();
  }
  auto w = std::make_unique<Gpt2Model::Weights>();
  w->config = config;
  w->options = options;
  const int64_t C = config.n_embd, V = config.vocab_size;
  TensorSource source(tensors);
  check_layer_count(tensors, source.prefix(), config.n_layer);

  w->position_embedding = to_vector(source.read("wpe.weight", {config.n_positions, C}));
  {
    Tensor wte = source.read("wte.weight", {V, C});
    std::string head = "lm_head.weight";
    if (!tensors.shape(head)) head = source.prefix() + head;
    if (const Shape* head_shape = tensors.shape(head)) {
      if (*head_shape != Shape{V, C})
        fail(tensors.name(), "tensor '" + head + "' has shape " + shape_to_string(*head_shape) +
                                 " but config.json implies " + shape_to_string({V, C}));
      Tensor lm_head = tensors.read_f32(head);
      w->lm_head.weight = primitives::PackedB(C, V, lm_head.data<float>(), C, true);
      w->lm_head_tied = false;
      w->token_embedding = to_vector(wte);
    } else {
      w->lm_head.weight = primitives::PackedB(C, V, wte.data<float>(), C, true);
    }
  }
  for (int64_t layer = 0; layer < config.n_layer; ++layer) {
    const std::string h = "h." + std::to_string(layer) + ".";
    Gpt2LayerWeights l;
    l.ln_1_weight = source.vector(h + "ln_1.weight", C);
    l.ln_1_bias = source.vector(h + "ln_1.bias", C);
    l.attn_qkv = source.conv1d(h + "attn.c_attn", C, 3 * C, options, pool);
    l.attn_out = source.conv1d(h + "attn.c_proj", C, C, options, pool);
    l.ln_2_weight = source.vector(h + "ln_2.weight", C);
    l.ln_2_bias = source.vector(h + "ln_2.bias", C);
    l.mlp_in = source.conv1d(h + "mlp.c_fc", C, config.n_inner, options, pool);
    l.mlp_out = source.conv1d(h + "mlp.c_proj", config.n_inner, C, options, pool);
    w->layers.push_back(std::move(l));
  }
  w->ln_f_weight = source.vector("ln_f.weight", C);
  w->ln_f_bias = source.vector("ln_f.bias", C);
  w->parameter_count = source.parameters() + (w->lm_head_tied ? 0 : V * C);
  return w;
}

// An ONNX export (scripts/export_gpt2_onnx.py): the model is read with the ONNX loader's checks
// (external data stays inside the model's folder); the config comes from the model's metadata,
// or else from a config.json beside it; the initializers are the checkpoint's tensors.
std::unique_ptr<Gpt2Model::Weights> load_onnx_weights(const std::string& path, const Gpt2WeightOptions& options,
                                                      ThreadPool* pool) {
  const Graph graph = load_onnx_model(path);
  Gpt2Config config;
  if (auto it = graph.metadata.find(kOnnxConfigKey); it != graph.metadata.end()) {
    config = Gpt2Config::from_json(it->second, path + " (metadata " + kOnnxConfigKey + ")");
  } else {
    const fs::path beside = fs::path(path).parent_path() / "config.json";
    if (!fs::exists(beside))
      fail(path, std::string("no GPT-2 config: neither metadata '") + kOnnxConfigKey +
                     "' (scripts/export_gpt2_onnx.py writes it) nor a config.json beside the model");
    config = Gpt2Config::from_json(read_text_file(beside), beside.string());
  }
  return load_weights(config, OnnxInitializers(graph, path), options, pool);
}

}  // namespace

void Gpt2Model::Weights::embed_token(int32_t id, float* out) const {
  const int64_t width = config.n_embd;
  if (!lm_head_tied) {
    std::copy_n(token_embedding.data() + int64_t(id) * width, width, out);
    return;
  }
  // Row `id` of wte is column `id` of the packed wte^T: one float per panel row.
  const primitives::PackedB& packed = lm_head.weight;
  const float* panel = packed.panel(id / packed.panel_width());
  const int64_t lane = id % packed.panel_width();
  for (int64_t k = 0; k < width; ++k) out[k] = panel[k * packed.panel_width() + lane];
}

Gpt2Model::Gpt2Model(std::unique_ptr<Weights> weights) : weights_(std::move(weights)) {}
Gpt2Model::Gpt2Model(Gpt2Model&&) noexcept = default;
Gpt2Model& Gpt2Model::operator=(Gpt2Model&&) noexcept = default;
Gpt2Model::~Gpt2Model() = default;

const Gpt2Config& Gpt2Model::config() const { return weights_->config; }

Gpt2WeightOptions Gpt2WeightOptions::parse(std::string_view spec) {
  const std::string text(spec);
  const std::string forms = "f32, bcq2, bcq3 or bcq4, optionally with :g<group size> (e.g. bcq3:g64)";
  Gpt2WeightOptions options;
  if (text == "f32") return options;
  const size_t colon = text.find(':');
  const std::string kind = text.substr(0, colon);
  if (kind != "bcq2" && kind != "bcq3" && kind != "bcq4")
    throw Error("weights '" + text + "': expected " + forms);
  options.bcq_bits = kind[3] - '0';
  if (colon != std::string::npos) {
    const std::string group = text.substr(colon + 1);
    if (group.size() < 2 || group[0] != 'g' || group.size() > 7 ||
        group.find_first_not_of("0123456789", 1) != std::string::npos)
      throw Error("weights '" + text + "': expected " + forms);
    options.bcq_group_size = std::stoll(group.substr(1));
  }
  compression::check_bcq_options(
      compression::BcqOptions{options.bcq_bits, options.bcq_group_size, options.bcq_refine_iterations});
  return options;
}

Gpt2Model Gpt2Model::load(const std::string& path, const Gpt2WeightOptions& options) {
  return load(path, options, nullptr);
}

Gpt2Model Gpt2Model::load(const std::string& path, const Gpt2WeightOptions& options, ThreadPool* pool) {
  const fs::path source(path);
  if (fs::is_regular_file(source)) {
    if (source.extension() != ".onnx")
      fail(path, "a file that is not .onnx (give the checkpoint folder, or an ONNX export from "
                 "scripts/export_gpt2_onnx.py)");
    return Gpt2Model(load_onnx_weights(path, options, pool));
  }
  if (!fs::is_directory(source))
    fail(path, "not a folder or an ONNX file (a GPT-2 checkpoint folder holds config.json and model.safetensors)");
  const fs::path config_path = source / "config.json", weights_path = source / "model.safetensors";
  if (!fs::exists(config_path)) fail(path, "no config.json in this folder");
  if (!fs::exists(weights_path)) fail(path, "no model.safetensors in this folder");
  const Gpt2Config config = Gpt2Config::from_json(read_text_file(config_path), config_path.string());
  const SafetensorsFile file = SafetensorsFile::open(weights_path.string());
  return load(config, file, options, pool);
}

Gpt2Model Gpt2Model::load(const Gpt2Config& config, const SafetensorsFile& file, const Gpt2WeightOptions& options) {
  return load(config, file, options, nullptr);
}

Gpt2Model Gpt2Model::load(const Gpt2Config& config, const SafetensorsFile& file, const Gpt2WeightOptions& options,
                          ThreadPool* pool) {
  return Gpt2Model(load_weights(config, SafetensorsTensors(file), options, pool));
}

int64_t Gpt2Model::parameter_count() const { return weights_->parameter_count; }

int64_t Gpt2Model::decode_weight_bytes() const {
  const Gpt2Config& c = weights_->config;
  const int64_t vectors_per_layer = 4 * c.n_embd               // two layer norms
                                    + 3 * c.n_embd + c.n_embd  // attention biases
                                    + c.n_inner + c.n_embd;    // MLP biases
  int64_t matrices = 0;
  for (const Gpt2LayerWeights& l : weights_->layers)
    matrices += l.attn_qkv.weight_bytes() + l.attn_out.weight_bytes() + l.mlp_in.weight_bytes() +
                l.mlp_out.weight_bytes();
  return matrices +
         int64_t(sizeof(float)) * (c.n_layer * vectors_per_layer + 2 * c.n_embd + c.vocab_size * c.n_embd);
}

const Gpt2WeightOptions& Gpt2Model::weight_options() const { return weights_->options; }

}  // namespace tessera::llm
