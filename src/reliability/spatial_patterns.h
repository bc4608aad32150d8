// Spatial error models on operator outputs, after CLASSES (Bolchini et al., IEEE TC 2022): a
// fault inside an accelerator's operator corrupts not one element but a pattern of them (a
// row, the same position in many channels, a block...) with values of some class. The patterns
// are data: a JSON file (data/error_models/classes.json) that users edit or extend; the format
// is in docs/FAULT_INJECTION.md.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "reliability/random.h"
#include "tessera/tensor.h"

namespace tessera::reliability {

struct CountRange {
  int64_t min = 1, max = 1;  // inclusive, drawn uniformly
  int64_t draw(Rng& rng) const { return rng.between(min, max); }
};

// A set of positions in one channel's H x W map, anchored at a drawn origin.
struct ElementShape {
  enum class Kind { point, row, column, block, stride, alternated_blocks, all, random };
  Kind kind = Kind::point;
  CountRange length;           // row, column, stride: elements; random: how many
  CountRange height, width;    // block
  int64_t stride = 2;          // stride: distance between corrupted elements (row-major)
  CountRange block{4, 4};      // alternated_blocks: elements per block (and per gap)
  CountRange blocks{2, 2};     // alternated_blocks: how many blocks
};

struct SpatialPattern {
  std::string name;
  double weight = 1;  // relative frequency when a pattern is drawn at random
  CountRange channels;
  bool all_channels = false;
  bool consecutive_channels = true;  // else random distinct channels
  bool same_positions = true;        // every channel gets the same positions (else drawn anew)
  ElementShape elements;
  std::optional<ElementShape> first_channel_extra;  // more positions in the first channel only
  std::map<std::string, double> values;  // value classes for this pattern (else the file's)
};

// How the corrupted elements' new values are drawn, from the clean tensor's range [lo, hi]:
// in_range: uniform in [lo, hi]; out_of_range: beyond it (random sign, magnitude max(|lo|,|hi|)
// times 10^u, u uniform in [1, 6]); nan_inf: NaN, +Inf or -Inf; zero: 0.
enum class ValueClass { in_range, out_of_range, nan_inf, zero };
ValueClass parse_value_class(const std::string& name);
const char* value_class_name(ValueClass value_class);

struct ErrorModelSet {
  std::vector<SpatialPattern> patterns;
  std::map<std::string, double> values;  // value class -> weight
  const SpatialPattern& find(const std::string& name) const;  // Error naming the known ones
};

// Parses the JSON text of an error-model file (errors name the field); `origin` names it.
ErrorModelSet parse_error_models(const std::string& json_text, const std::string& origin);
ErrorModelSet load_error_models(const std::string& path);

// A tensor seen as [batch][channels][height][width]: rank 4 is NCHW; rank 3 [N, H, W] and
// rank 2 [N, W] have one channel; rank 5+ folds the middle dims into height; rank 1 is one row.
struct ChannelView {
  int64_t batch = 1, channels = 1, height = 1, width = 1;
  static ChannelView of(const Shape& shape);
};

// Draws the pattern's positions in batch item `batch_index`: flat, contiguous-order element
// indices, sorted and distinct.
std::vector<int64_t> draw_pattern_positions(const Shape& shape, const SpatialPattern& pattern, int64_t batch_index,
                                            Rng& rng);
const SpatialPattern& draw_pattern(const ErrorModelSet& set, Rng& rng);
ValueClass draw_value_class(const std::map<std::string, double>& weights, Rng& rng);
float draw_value(ValueClass value_class, float lo, float hi, Rng& rng);

// One spatial fault on an f32 tensor: draws a batch item, the pattern's positions and a value
// class, and writes new values there, drawn from the tensor's finite range before the fault.
struct SpatialFault {
  std::vector<int64_t> positions;  // corrupted elements (flat indices)
  ValueClass value_class = ValueClass::in_range;
};
SpatialFault apply_spatial_fault(Tensor& tensor, const SpatialPattern& pattern,
                                 const std::map<std::string, double>& value_weights, Rng& rng);

}  // namespace tessera::reliability
