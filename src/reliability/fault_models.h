// Bit-level fault models: what a soft error does to one stored element. Applied to the element's
// bit pattern, so they work on any dtype (f32, f16, bf16, int8, uint8, int32...).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "reliability/random.h"
#include "tessera/tensor.h"

namespace tessera::reliability {

enum class FaultKind {
  bit_flip,            // one bit inverted (at `bit`, or a random one)
  adjacent_bit_flips,  // `bits` neighbouring bits inverted, from `bit` upwards (random start)
  random_bit_flips,    // `bits` distinct random bits inverted
  stuck_at_0,          // bit `bit` (or a random one) forced to 0: masked where it was 0
  stuck_at_1,          // ... forced to 1
  random_value,        // every bit drawn at random (any representable value, NaN included)
  zero,                // all bits 0
};

struct FaultModel {
  FaultKind kind = FaultKind::bit_flip;
  int bit = -1;   // fixed bit position, -1 for a random one
  int bits = 1;   // adjacent/random flips: how many bits
  std::string text() const;  // the form parse_fault_model reads
};

// "bitflip", "bitflip:30", "adjacent:2", "adjacent:2@23" (2 bits from bit 23), "multibit:3",
// "stuck-at-0", "stuck-at-1:23", "random-value", "zero". Error on anything else.
FaultModel parse_fault_model(const std::string& text);

// What one fault did to one element.
struct ElementFault {
  int64_t element = 0;
  uint64_t before = 0, after = 0;  // the element's bit patterns
  uint64_t changed_bits() const { return before ^ after; }
  int lowest_changed_bit() const;  // -1 when nothing changed
};

// Bits of one element of `dtype` (8 x its size).
int element_bits(DType dtype);
// The new bit pattern of a `width`-bit element under `model`.
uint64_t apply_fault_to_bits(uint64_t pattern, int width, const FaultModel& model, Rng& rng);
// Applies `model` to element `index` (flat, contiguous order) of `tensor` in place.
ElementFault apply_fault(Tensor& tensor, int64_t index, const FaultModel& model, Rng& rng);

// Reads and writes one element's bit pattern (contiguous tensors).
uint64_t read_element_bits(const Tensor& tensor, int64_t index);
void write_element_bits(Tensor& tensor, int64_t index, uint64_t pattern);

}  // namespace tessera::reliability
