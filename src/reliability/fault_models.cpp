// Bit-level fault models.
#include "reliability/fault_models.h"

#include <cstring>

namespace tessera::reliability {

namespace {
int parse_int(const std::string& text, const std::string& whole) {
  if (text.empty() || text.size() > 3 || text.find_first_not_of("0123456789") != std::string::npos)
    throw Error("fault model '" + whole + "': '" + text + "' is not a bit position or count");
  return std::stoi(text);
}
uint64_t width_mask(int width) { return width >= 64 ? ~uint64_t(0) : (uint64_t(1) << width) - 1; }
}  // namespace

std::string FaultModel::text() const {
  const std::string at = bit >= 0 ? ":" + std::to_string(bit) : "";
  switch (kind) {
    case FaultKind::bit_flip: return "bitflip" + at;
    case FaultKind::adjacent_bit_flips:
      return "adjacent:" + std::to_string(bits) + (bit >= 0 ? "@" + std::to_string(bit) : "");
    case FaultKind::random_bit_flips: return "multibit:" + std::to_string(bits);
    case FaultKind::stuck_at_0: return "stuck-at-0" + at;
    case FaultKind::stuck_at_1: return "stuck-at-1" + at;
    case FaultKind::random_value: return "random-value";
    case FaultKind::zero: return "zero";
  }
  return "?";
}

FaultModel parse_fault_model(const std::string& text) {
  const size_t colon = text.find(':');
  const std::string name = text.substr(0, colon), arg = colon == std::string::npos ? "" : text.substr(colon + 1);
  FaultModel m;
  auto no_argument = [&] {
    if (colon != std::string::npos) throw Error("fault model '" + text + "' takes no argument");
  };
  if (name == "bitflip" || name == "stuck-at-0" || name == "stuck-at-1") {
    m.kind = name == "bitflip" ? FaultKind::bit_flip : name == "stuck-at-0" ? FaultKind::stuck_at_0 : FaultKind::stuck_at_1;
    if (colon != std::string::npos) m.bit = parse_int(arg, text);
  } else if (name == "adjacent" || name == "multibit") {
    m.kind = name == "adjacent" ? FaultKind::adjacent_bit_flips : FaultKind::random_bit_flips;
    const size_t at = arg.find('@');
    m.bits = parse_int(arg.substr(0, at), text);
    if (at != std::string::npos) {
      if (name != "adjacent") throw Error("fault model '" + text + "': only adjacent flips take a start bit");
      m.bit = parse_int(arg.substr(at + 1), text);
    }
    if (m.bits < 1 || m.bits > 64) throw Error("fault model '" + text + "': 1 to 64 bits");
  } else if (name == "random-value") {
    no_argument();
    m.kind = FaultKind::random_value;
  } else if (name == "zero") {
    no_argument();
    m.kind = FaultKind::zero;
  } else {
    throw Error("unknown fault model '" + text +
                "' (bitflip[:BIT], adjacent:N[@BIT], multibit:N, stuck-at-0[:BIT], stuck-at-1[:BIT], random-value, zero)");
  }
  if (m.bit > 63) throw Error("fault model '" + text + "': bit position beyond 63");
  return m;
}

int ElementFault::lowest_changed_bit() const {
  const uint64_t d = changed_bits();
  return d ? __builtin_ctzll(d) : -1;
}

int element_bits(DType dtype) { return int(dtype_size(dtype) * 8); }

uint64_t apply_fault_to_bits(uint64_t pattern, int width, const FaultModel& model, Rng& rng) {
  const uint64_t mask = width_mask(width);
  auto position = [&](int fixed) -> int {
    if (fixed >= width) throw Error("fault model '" + model.text() + "': bit " + std::to_string(fixed) +
                                    " is beyond a " + std::to_string(width) + "-bit element");
    return fixed >= 0 ? fixed : int(rng.below(width));
  };
  switch (model.kind) {
    case FaultKind::bit_flip: return pattern ^ (uint64_t(1) << position(model.bit));
    case FaultKind::adjacent_bit_flips: {
      if (model.bits > width) throw Error("fault model '" + model.text() + "': more bits than the element has");
      const int start = model.bit >= 0 ? position(model.bit) : int(rng.below(width - model.bits + 1));
      if (start + model.bits > width) throw Error("fault model '" + model.text() + "': runs past the element's top bit");
      return pattern ^ ((width_mask(model.bits)) << start);
    }
    case FaultKind::random_bit_flips: {
      if (model.bits > width) throw Error("fault model '" + model.text() + "': more bits than the element has");
      uint64_t flips = 0;
      for (int chosen = 0; chosen < model.bits;) {
        const uint64_t bit = uint64_t(1) << rng.below(width);
        if (!(flips & bit)) {
          flips |= bit;
          ++chosen;
        }
      }
      return pattern ^ flips;
    }
    case FaultKind::stuck_at_0: return pattern & ~(uint64_t(1) << position(model.bit));
    case FaultKind::stuck_at_1: return pattern | (uint64_t(1) << position(model.bit));
    case FaultKind::random_value: return rng.next() & mask;
    case FaultKind::zero: return 0;
  }
  return pattern;
}

uint64_t read_element_bits(const Tensor& tensor, int64_t index) {
  if (index < 0 || index >= tensor.numel()) throw Error("fault injection: element index out of range");
  const size_t size = dtype_size(tensor.dtype());
  uint64_t pattern = 0;
  std::memcpy(&pattern, static_cast<const char*>(tensor.raw_data()) + size_t(index) * size, size);
  return pattern;
}

void write_element_bits(Tensor& tensor, int64_t index, uint64_t pattern) {
  if (index < 0 || index >= tensor.numel()) throw Error("fault injection: element index out of range");
  const size_t size = dtype_size(tensor.dtype());
  std::memcpy(static_cast<char*>(tensor.raw_data()) + size_t(index) * size, &pattern, size);
}

ElementFault apply_fault(Tensor& tensor, int64_t index, const FaultModel& model, Rng& rng) {
  if (!tensor.is_contiguous()) throw Error("fault injection needs a contiguous tensor");
  ElementFault f;
  f.element = index;
  f.before = read_element_bits(tensor, index);
  f.after = apply_fault_to_bits(f.before, element_bits(tensor.dtype()), model, rng);
  write_element_bits(tensor, index, f.after);
  return f;
}

}  // namespace tessera::reliability
