// Reads a Hugging Face GPT2Config (config.json): the sizes, with the library's defaults for absent
// fields, and refuses options that would change the math in ways this runtime does not implement.
#include <cmath>

#include "nlohmann/json.hpp"
#include "tessera/error.h"
#include "tessera/gpt2.h"

namespace tessera::llm {

namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& name, const std::string& problem) {
  throw Error(name + ": " + problem);
}

// An integer field in [1, limit], or `fallback` when absent (or null, where allowed).
int64_t size_field(const json& root, const std::string& name, const char* key, int64_t fallback,
                   int64_t limit) {
  auto found = root.find(key);
  if (found == root.end() || found->is_null()) return fallback;
  if (!found->is_number_integer() && !found->is_number_unsigned())
    fail(name, std::string("\"") + key + "\" must be an integer");
  const bool in_range = found->is_number_unsigned()
                            ? found->get<uint64_t>() >= 1 && found->get<uint64_t>() <= uint64_t(limit)
                            : found->get<int64_t>() >= 1 && found->get<int64_t>() <= limit;
  if (!in_range)
    fail(name, std::string("\"") + key + "\" is " + found->dump() + "; it must be between 1 and " +
                   std::to_string(limit));
  return found->get<int64_t>();
}

bool flag_field(const json& root, const std::string& name, const char* key, bool fallback) {
  auto found = root.find(key);
  if (found == root.end() || found->is_null()) return fallback;
  if (!found->is_boolean()) fail(name, std::string("\"") + key + "\" must be true or false");
  return found->get<bool>();
}

}  // namespace

Gpt2Config Gpt2Config::from_json(std::string_view text, const std::string& name) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    fail(name, std::string("not valid JSON: ") + e.what());
  }
  if (!root.is_object()) fail(name, "not a JSON object");
  if (auto type = root.find("model_type"); type != root.end() && (!type->is_string() || *type != "gpt2"))
    fail(name, "model_type is " + type->dump() + "; only \"gpt2\" checkpoints are supported");

  Gpt2Config c;
  c.vocab_size = size_field(root, name, "vocab_size", 50257, int64_t(1) << 24);
  // Old configs call the context length n_ctx.
  c.n_positions =
      size_field(root, name, "n_positions", size_field(root, name, "n_ctx", 1024, 1 << 20), 1 << 20);
  c.n_embd = size_field(root, name, "n_embd", 768, 1 << 16);
  c.n_head = size_field(root, name, "n_head", 12, 1 << 12);
  c.n_layer = size_field(root, name, "n_layer", 12, 1 << 12);
  c.n_inner = size_field(root, name, "n_inner", 4 * c.n_embd, 1 << 18);
  if (c.n_embd % c.n_head != 0)
    fail(name,
         "n_embd " + std::to_string(c.n_embd) + " is not a multiple of n_head " + std::to_string(c.n_head));

  if (auto eps = root.find("layer_norm_epsilon"); eps != root.end() && !eps->is_null()) {
    if (!eps->is_number() || !(eps->get<double>() > 0) || !std::isfinite(eps->get<double>()) ||
        eps->get<double>() > 1)
      fail(name, "\"layer_norm_epsilon\" must be a number in (0, 1]");
    c.layer_norm_epsilon = float(eps->get<double>());
  }
  if (auto act = root.find("activation_function"); act != root.end() && !act->is_null()) {
    if (!act->is_string()) fail(name, "\"activation_function\" must be a string");
    const std::string a = act->get<std::string>();
    if (a == "gelu_new" || a == "gelu_pytorch_tanh")
      c.activation = Gpt2Activation::gelu_tanh;
    else if (a == "gelu")
      c.activation = Gpt2Activation::gelu_erf;
    else if (a == "relu")
      c.activation = Gpt2Activation::relu;
    else
      fail(name,
           "activation_function \"" + a + "\" is not supported (gelu_new, gelu_pytorch_tanh, gelu, relu)");
  }
  if (!flag_field(root, name, "scale_attn_weights", true))
    fail(name, "scale_attn_weights false is not supported");
  if (flag_field(root, name, "scale_attn_by_inverse_layer_idx", false))
    fail(name, "scale_attn_by_inverse_layer_idx true is not supported");
  if (flag_field(root, name, "add_cross_attention", false))
    fail(name, "add_cross_attention true (an encoder-decoder GPT-2) is not supported");
  return c;
}

}  // namespace tessera::llm
