// GPT-2 byte-level BPE: pre-tokenize, then merge each piece's bytes by rank with a priority queue
// (O(n log n) even for a megabyte-long piece), remembering pieces already seen.
#include "tessera/bpe_tokenizer.h"

#include <algorithm>
#include <climits>

#include "llm/bpe_model.h"
#include "llm/gpt2_pretokenizer.h"
#include "tessera/error.h"

namespace tessera::llm {

namespace {

struct Symbol {
  int32_t id;        // token id; -1 once merged into the symbol on its left
  int32_t previous;  // index of the live symbol on the left, -1 at the start
  int32_t next;      // index of the live symbol on the right, -1 at the end
};

// A pair of adjacent symbols that a merge rule applies to, as it was when found. It is stale
// once either symbol has changed: a symbol's id only ever changes into a longer token, so
// comparing ids tells.
struct MergeCandidate {
  int32_t rank;
  int32_t left;  // symbol index; indices grow along the text
  int32_t left_id;
  int32_t right_id;
  int32_t merged_id;
};

// Min-heap order: lowest rank first, then leftmost.
bool comes_later(const MergeCandidate& a, const MergeCandidate& b) {
  return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
}

// GPT-2 merges, at each step, every occurrence of the lowest-ranked adjacent pair, left to right
// (so "aaa" becomes "aa a"), and repeats until no pair has a rule. Here all candidates of the
// lowest rank are taken out of the heap together and applied in text order before any pair they
// create is considered, which is the same step even for merge files whose ranks are not in the
// order BPE training produces.
void merge_piece(const BpeTokenizer::Model& model, std::string_view piece, std::vector<int32_t>& ids) {
  TESSERA_CHECK(piece.size() <= size_t(INT32_MAX),
                "cannot encode a piece of text over 2 GiB without a break");
  const int32_t count = int32_t(piece.size());
  std::vector<Symbol> symbols(count);
  for (int32_t i = 0; i < count; ++i)
    symbols[i] = {model.byte_token_ids[static_cast<unsigned char>(piece[i])], i - 1,
                  i + 1 < count ? i + 1 : -1};

  std::vector<MergeCandidate> heap;
  auto consider = [&](int32_t left) {
    if (left < 0 || symbols[left].next < 0) return;
    int32_t left_id = symbols[left].id, right_id = symbols[symbols[left].next].id;
    auto rule = model.merges.find(BpeTokenizer::Model::pair_key(left_id, right_id));
    if (rule == model.merges.end()) return;
    heap.push_back({rule->second.rank, left, left_id, right_id, rule->second.merged_id});
    std::push_heap(heap.begin(), heap.end(), comes_later);
  };
  for (int32_t i = 0; i + 1 < count; ++i) consider(i);

  std::vector<MergeCandidate> same_rank;
  while (!heap.empty()) {
    same_rank.clear();
    const int32_t rank = heap.front().rank;
    while (!heap.empty() && heap.front().rank == rank) {
      std::pop_heap(heap.begin(), heap.end(), comes_later);
      same_rank.push_back(heap.back());
      heap.pop_back();
    }
    // New pairs never have this rank (a merged token is longer than either of its parts), so
    // the ones `consider` pushes below wait for a later round.
    for (const MergeCandidate& candidate : same_rank) {
      Symbol& left = symbols[candidate.left];
      if (left.id != candidate.left_id || left.next < 0) continue;
      Symbol& right = symbols[left.next];
      if (right.id != candidate.right_id) continue;
      left.id = candidate.merged_id;
      right.id = -1;
      left.next = right.next;
      if (left.next >= 0) symbols[left.next].previous = candidate.left;
      consider(left.previous);
      consider(candidate.left);
    }
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
}

void encode_piece(const BpeTokenizer::Model& model, std::string_view piece, std::vector<int32_t>& ids) {
  if (piece.size() == 1) {
    ids.push_back(model.byte_token_ids[static_cast<unsigned char>(piece[0])]);
    return;
  }
  const bool cacheable = piece.size() <= BpeTokenizer::Model::kMaxCachedPieceBytes;
  if (cacheable) {
    std::lock_guard lock(model.cache_mutex);
    auto found = model.cache.find(piece);
    if (found != model.cache.end()) {
      ids.insert(ids.end(), found->second.begin(), found->second.end());
      return;
    }
  }
  size_t first = ids.size();
  merge_piece(model, piece, ids);
  if (cacheable) {
    std::lock_guard lock(model.cache_mutex);
    if (model.cache.size() >= BpeTokenizer::Model::kMaxCachedPieces) model.cache.clear();
    model.cache.emplace(std::string(piece), std::vector<int32_t>(ids.begin() + first, ids.end()));
  }
}

void encode_ordinary_text(const BpeTokenizer::Model& model, std::string_view text,
                          std::vector<int32_t>& ids) {
  std::vector<std::string_view> pieces;
  split_gpt2_pretokens(text, pieces);
  for (std::string_view piece : pieces) encode_piece(model, piece, ids);
}

}  // namespace

BpeTokenizer::BpeTokenizer(std::unique_ptr<Model> model) : model_(std::move(model)) {}
BpeTokenizer::BpeTokenizer(BpeTokenizer&&) noexcept = default;
BpeTokenizer& BpeTokenizer::operator=(BpeTokenizer&&) noexcept = default;
BpeTokenizer::~BpeTokenizer() = default;

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, SpecialTokens special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);  // English averages about 4 bytes a token
  encode_append(text, ids, special);
  return ids;
}

void BpeTokenizer::encode_append(std::string_view text, std::vector<int32_t>& ids,
                                 SpecialTokens special) const {
  if (special == SpecialTokens::as_text) return encode_ordinary_text(*model_, text, ids);
  // The text between special tokens is encoded on its own: a special token also ends a piece.
  std::string_view marker = model_->token_bytes[model_->end_of_text_id];
  for (size_t position = 0;;) {
    size_t found = text.find(marker, position);
    encode_ordinary_text(*model_, text.substr(position, found - position), ids);
    if (found == std::string_view::npos) break;
    ids.push_back(model_->end_of_text_id);
    position = found + marker.size();
  }
}

std::string_view BpeTokenizer::token_bytes(int32_t id) const {
  if (id < 0 || size_t(id) >= model_->token_bytes.size() || model_->token_bytes[id].empty())
    throw Error("token id " + std::to_string(id) + " is not in the vocabulary (ids 0.." +
                std::to_string(model_->token_bytes.size() - 1) + ")");
  return model_->token_bytes[id];
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids) const {
  std::string text;
  text.reserve(ids.size() * 4);
  for (int32_t id : ids) text += token_bytes(id);
  return text;
}

int32_t BpeTokenizer::end_of_text_id() const { return model_->end_of_text_id; }
size_t BpeTokenizer::vocabulary_size() const { return model_->token_bytes.size(); }
size_t BpeTokenizer::merge_count() const { return model_->merges.size(); }

}  // namespace tessera::llm
