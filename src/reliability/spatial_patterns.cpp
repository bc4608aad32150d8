// Spatial error models: parsing the JSON model files and drawing positions and values.
#include "reliability/spatial_patterns.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace tessera::reliability {

namespace {
using nlohmann::json;

// A count: a number or [min, max], with 1 <= min <= max.
CountRange parse_range(const json& j, const std::string& where) {
  CountRange r;
  if (j.is_number_integer()) {
    r.min = r.max = j.get<int64_t>();
  } else if (j.is_array() && j.size() == 2 && j[0].is_number_integer() && j[1].is_number_integer()) {
    r.min = j[0].get<int64_t>();
    r.max = j[1].get<int64_t>();
  } else {
    throw Error(where + ": expected a count or [min, max]");
  }
  if (r.min < 1 || r.max < r.min || r.max > (int64_t(1) << 30)) throw Error(where + ": counts must satisfy 1 <= min <= max");
  return r;
}

ElementShape parse_shape(const json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("shape") || !j["shape"].is_string())
    throw Error(where + ": expected an object with a \"shape\"");
  static const std::map<std::string, ElementShape::Kind> kinds = {
      {"point", ElementShape::Kind::point},     {"row", ElementShape::Kind::row},
      {"column", ElementShape::Kind::column},   {"block", ElementShape::Kind::block},
      {"stride", ElementShape::Kind::stride},   {"alternated_blocks", ElementShape::Kind::alternated_blocks},
      {"all", ElementShape::Kind::all},         {"random", ElementShape::Kind::random}};
  const std::string name = j["shape"].get<std::string>();
  auto kind = kinds.find(name);
  if (kind == kinds.end())
    throw Error(where + ": unknown shape '" + name + "' (point, row, column, block, stride, alternated_blocks, all, random)");
  ElementShape s;
  s.kind = kind->second;
  static const std::set<std::string> known = {"shape", "length", "height", "width", "stride", "block", "blocks"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!known.count(it.key())) throw Error(where + ": unknown field '" + it.key() + "'");
  auto field = [&](const char* key, CountRange& out, bool required) {
    if (j.contains(key))
      out = parse_range(j[key], where + "." + key);
    else if (required)
      throw Error(where + ": shape '" + name + "' needs \"" + key + "\"");
  };
  switch (s.kind) {
    case ElementShape::Kind::row:
    case ElementShape::Kind::column:
    case ElementShape::Kind::random: field("length", s.length, true); break;
    case ElementShape::Kind::block:
      field("height", s.height, true);
      field("width", s.width, true);
      break;
    case ElementShape::Kind::stride:
      field("length", s.length, true);
      if (!j.contains("stride") || !j["stride"].is_number_integer() || j["stride"].get<int64_t>() < 1)
        throw Error(where + ": shape 'stride' needs \"stride\" >= 1");
      s.stride = j["stride"].get<int64_t>();
      break;
    case ElementShape::Kind::alternated_blocks:
      field("block", s.block, true);
      field("blocks", s.blocks, true);
      break;
    default: break;
  }
  return s;
}

std::map<std::string, double> parse_values(const json& j, const std::string& where) {
  if (!j.is_object() || j.empty()) throw Error(where + ": expected {\"in_range\": weight, ...}");
  std::map<std::string, double> values;
  double total = 0;
  for (auto it = j.begin(); it != j.end(); ++it) {
    parse_value_class(it.key());  // validates the name
    if (!it.value().is_number() || it.value().get<double>() < 0)
      throw Error(where + "." + it.key() + ": expected a weight >= 0");
    values[it.key()] = it.value().get<double>();
    total += values[it.key()];
  }
  if (!(total > 0)) throw Error(where + ": the weights add up to 0");
  return values;
}

// Positions of `shape` in an H x W map, anchored at (h0, w0) and clipped to the map.
void add_shape_positions(const ElementShape& shape, int64_t height, int64_t width, int64_t h0, int64_t w0,
                         Rng& rng, std::vector<int64_t>& out) {
  const int64_t size = height * width;
  const int64_t origin = h0 * width + w0;
  switch (shape.kind) {
    case ElementShape::Kind::point: out.push_back(origin); break;
    case ElementShape::Kind::row: {
      const int64_t n = std::min(shape.length.draw(rng), width - w0);
      for (int64_t i = 0; i < n; ++i) out.push_back(origin + i);
      break;
    }
    case ElementShape::Kind::column: {
      const int64_t n = std::min(shape.length.draw(rng), height - h0);
      for (int64_t i = 0; i < n; ++i) out.push_back(origin + i * width);
      break;
    }
    case ElementShape::Kind::block: {
      const int64_t bh = std::min(shape.height.draw(rng), height - h0), bw = std::min(shape.width.draw(rng), width - w0);
      for (int64_t i = 0; i < bh; ++i)
        for (int64_t j = 0; j < bw; ++j) out.push_back(origin + i * width + j);
      break;
    }
    case ElementShape::Kind::stride: {
      const int64_t n = shape.length.draw(rng);
      for (int64_t i = 0; i < n && origin + i * shape.stride < size; ++i) out.push_back(origin + i * shape.stride);
      break;
    }
    case ElementShape::Kind::alternated_blocks: {
      const int64_t block = shape.block.draw(rng), blocks = shape.blocks.draw(rng);
      for (int64_t b = 0; b < blocks; ++b)
        for (int64_t i = 0; i < block; ++i) {
          const int64_t p = origin + 2 * b * block + i;
          if (p < size) out.push_back(p);
        }
      break;
    }
    case ElementShape::Kind::all:
      for (int64_t p = 0; p < size; ++p) out.push_back(p);
      break;
    case ElementShape::Kind::random: {
      const int64_t n = std::min(shape.length.draw(rng), size);
      std::set<int64_t> chosen;
      while (int64_t(chosen.size()) < n) chosen.insert(rng.below(size));
      out.insert(out.end(), chosen.begin(), chosen.end());
      break;
    }
  }
}
}  // namespace

ValueClass parse_value_class(const std::string& name) {
  if (name == "in_range") return ValueClass::in_range;
  if (name == "out_of_range") return ValueClass::out_of_range;
  if (name == "nan_inf") return ValueClass::nan_inf;
  if (name == "zero") return ValueClass::zero;
  throw Error("unknown value class '" + name + "' (in_range, out_of_range, nan_inf, zero)");
}

const char* value_class_name(ValueClass value_class) {
  switch (value_class) {
    case ValueClass::in_range: return "in_range";
    case ValueClass::out_of_range: return "out_of_range";
    case ValueClass::nan_inf: return "nan_inf";
    case ValueClass::zero: return "zero";
  }
  return "?";
}

const SpatialPattern& ErrorModelSet::find(const std::string& name) const {
  for (const SpatialPattern& p : patterns)
    if (p.name == name) return p;
  std::string known;
  for (const SpatialPattern& p : patterns) known += (known.empty() ? "" : ", ") + p.name;
  throw Error("no spatial pattern named '" + name + "' (known: " + known + ")");
}

ErrorModelSet parse_error_models(const std::string& json_text, const std::string& origin) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error(origin + ": not JSON: " + e.what());
  }
  if (!j.is_object() || !j.contains("patterns") || !j["patterns"].is_array() || j["patterns"].empty())
    throw Error(origin + ": expected an object with a non-empty \"patterns\" array");
  ErrorModelSet set;
  set.values = {{"in_range", 1}, {"out_of_range", 1}, {"nan_inf", 1}, {"zero", 1}};
  if (j.contains("values")) set.values = parse_values(j["values"], origin + ": values");
  std::set<std::string> names;
  for (size_t i = 0; i < j["patterns"].size(); ++i) {
    const json& pj = j["patterns"][i];
    std::string where = origin + ": patterns[" + std::to_string(i) + "]";
    if (!pj.is_object() || !pj.contains("name") || !pj["name"].is_string() || pj["name"].get<std::string>().empty())
      throw Error(where + ": expected an object with a \"name\"");
    SpatialPattern p;
    p.name = pj["name"].get<std::string>();
    where += " (" + p.name + ")";
    if (!names.insert(p.name).second) throw Error(where + ": the name is used twice");
    static const std::set<std::string> known = {"name", "weight", "channels", "elements", "first_channel_extra",
                                                "values", "description"};
    for (auto it = pj.begin(); it != pj.end(); ++it)
      if (!known.count(it.key())) throw Error(where + ": unknown field '" + it.key() + "'");
    if (pj.contains("weight")) {
      if (!pj["weight"].is_number() || pj["weight"].get<double>() < 0) throw Error(where + ".weight: expected >= 0");
      p.weight = pj["weight"].get<double>();
    }
    if (pj.contains("channels")) {
      const json& c = pj["channels"];
      if (!c.is_object() || !c.contains("count")) throw Error(where + ".channels: expected {\"count\": ...}");
      if (c["count"].is_string()) {
        if (c["count"].get<std::string>() != "all") throw Error(where + ".channels.count: a count, [min, max] or \"all\"");
        p.all_channels = true;
      } else {
        p.channels = parse_range(c["count"], where + ".channels.count");
      }
      if (c.contains("layout")) {
        const std::string layout = c["layout"].is_string() ? c["layout"].get<std::string>() : "";
        if (layout != "consecutive" && layout != "random")
          throw Error(where + ".channels.layout: \"consecutive\" or \"random\"");
        p.consecutive_channels = layout == "consecutive";
      }
      if (c.contains("same_positions")) {
        if (!c["same_positions"].is_boolean()) throw Error(where + ".channels.same_positions: true or false");
        p.same_positions = c["same_positions"].get<bool>();
      }
    }
    if (!pj.contains("elements")) throw Error(where + ": needs \"elements\"");
    p.elements = parse_shape(pj["elements"], where + ".elements");
    if (pj.contains("first_channel_extra"))
      p.first_channel_extra = parse_shape(pj["first_channel_extra"], where + ".first_channel_extra");
    if (pj.contains("values")) p.values = parse_values(pj["values"], where + ".values");
    set.patterns.push_back(std::move(p));
  }
  double total = 0;
  for (const SpatialPattern& p : set.patterns) total += p.weight;
  if (!(total > 0)) throw Error(origin + ": the patterns' weights add up to 0");
  return set;
}

ErrorModelSet load_error_models(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot open error-model file '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  return parse_error_models(text.str(), path);
}

ChannelView ChannelView::of(const Shape& shape) {
  ChannelView v;
  const int r = int(shape.size());
  if (r == 0) return v;
  if (r == 1) {
    v.width = shape[0];
    return v;
  }
  v.batch = shape[0];
  v.width = shape[size_t(r - 1)];
  if (r == 3) v.height = shape[1];
  if (r >= 4) {
    v.channels = shape[1];
    for (int d = 2; d < r - 1; ++d) v.height *= shape[size_t(d)];
  }
  return v;
}

std::vector<int64_t> draw_pattern_positions(const Shape& shape, const SpatialPattern& pattern, int64_t batch_index,
                                            Rng& rng) {
  const ChannelView view = ChannelView::of(shape);
  if (shape_numel(shape) == 0) return {};
  if (batch_index < 0 || batch_index >= view.batch) throw Error("spatial pattern: batch index out of range");
  // Channels: a consecutive run from a random start, or random distinct ones.
  std::vector<int64_t> channels;
  if (pattern.all_channels) {
    for (int64_t c = 0; c < view.channels; ++c) channels.push_back(c);
  } else {
    const int64_t n = std::min(pattern.channels.draw(rng), view.channels);
    if (pattern.consecutive_channels) {
      const int64_t first = rng.below(view.channels - n + 1);
      for (int64_t c = 0; c < n; ++c) channels.push_back(first + c);
    } else {
      std::set<int64_t> chosen;
      while (int64_t(chosen.size()) < n) chosen.insert(rng.below(view.channels));
      channels.assign(chosen.begin(), chosen.end());
    }
  }
  const int64_t map_size = view.height * view.width;
  std::vector<int64_t> in_map, extra, positions;
  auto draw_map = [&] {
    in_map.clear();
    const int64_t h0 = rng.below(view.height), w0 = rng.below(view.width);
    add_shape_positions(pattern.elements, view.height, view.width, h0, w0, rng, in_map);
    return std::pair{h0, w0};
  };
  auto [h0, w0] = draw_map();
  if (pattern.first_channel_extra)
    add_shape_positions(*pattern.first_channel_extra, view.height, view.width, h0, w0, rng, extra);
  const int64_t batch_base = batch_index * view.channels * map_size;
  for (size_t i = 0; i < channels.size(); ++i) {
    if (i > 0 && !pattern.same_positions) draw_map();
    const int64_t base = batch_base + channels[i] * map_size;
    for (int64_t p : in_map) positions.push_back(base + p);
    if (i == 0)
      for (int64_t p : extra) positions.push_back(base + p);
  }
  std::sort(positions.begin(), positions.end());
  positions.erase(std::unique(positions.begin(), positions.end()), positions.end());
  return positions;
}

const SpatialPattern& draw_pattern(const ErrorModelSet& set, Rng& rng) {
  double total = 0;
  for (const SpatialPattern& p : set.patterns) total += p.weight;
  double x = rng.uniform() * total;
  for (const SpatialPattern& p : set.patterns) {
    if (x < p.weight) return p;
    x -= p.weight;
  }
  return set.patterns.back();
}

ValueClass draw_value_class(const std::map<std::string, double>& weights, Rng& rng) {
  double total = 0;
  for (const auto& [name, w] : weights) total += w;
  double x = rng.uniform() * total;
  std::string last;
  for (const auto& [name, w] : weights) {
    if (w > 0) last = name;
    if (x < w) return parse_value_class(name);
    x -= w;
  }
  return parse_value_class(last);
}

float draw_value(ValueClass value_class, float lo, float hi, Rng& rng) {
  switch (value_class) {
    case ValueClass::in_range: return float(lo + (double(hi) - lo) * rng.uniform());
    case ValueClass::out_of_range: {
      double scale = std::max({std::fabs(double(lo)), std::fabs(double(hi)), 1e-6});
      double v = scale * std::pow(10.0, 1.0 + 5.0 * rng.uniform());
      v = std::min(v, double(std::numeric_limits<float>::max()));
      return float(rng.below(2) ? v : -v);
    }
    case ValueClass::nan_inf: {
      const int64_t which = rng.below(3);
      return which == 0 ? std::numeric_limits<float>::quiet_NaN()
                        : which == 1 ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
    }
    case ValueClass::zero: return 0.f;
  }
  return 0.f;
}

SpatialFault apply_spatial_fault(Tensor& tensor, const SpatialPattern& pattern,
                                 const std::map<std::string, double>& value_weights, Rng& rng) {
  if (tensor.dtype() != DType::f32 || !tensor.is_contiguous())
    throw Error("spatial faults need a contiguous f32 tensor");
  SpatialFault fault;
  fault.value_class = draw_value_class(pattern.values.empty() ? value_weights : pattern.values, rng);
  const ChannelView view = ChannelView::of(tensor.shape());
  fault.positions = draw_pattern_positions(tensor.shape(), pattern, rng.below(view.batch), rng);
  float* data = tensor.data<float>();
  float lo = 0, hi = 0;
  bool first = true;
  for (int64_t i = 0; i < tensor.numel(); ++i)
    if (std::isfinite(data[i])) {
      lo = first ? data[i] : std::min(lo, data[i]);
      hi = first ? data[i] : std::max(hi, data[i]);
      first = false;
    }
  for (int64_t p : fault.positions) data[p] = draw_value(fault.value_class, lo, hi, rng);
  return fault;
}

}  // namespace tessera::reliability
