// A small, fast, seedable random generator (SplitMix64) for fault injection. Each injection gets
// its own stream from (seed, index), so a campaign draws the same faults however its injections
// are split over threads or processes.
#pragma once
#include <cstdint>

namespace tessera::reliability {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  // The stream of injection `index` of a campaign seeded with `seed`.
  static Rng for_injection(uint64_t seed, uint64_t index) {
    Rng mix(seed ^ (index * 0xD1B54A32D192ED03ull));
    mix.next();
    return Rng(mix.next() ^ index);
  }
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1).
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }
  // Uniform integer in [0, n) (n > 0); the modulo bias is below 2^-40 for n < 2^24.
  int64_t below(int64_t n) { return n <= 1 ? 0 : int64_t(next() % uint64_t(n)); }
  // Uniform integer in [low, high].
  int64_t between(int64_t low, int64_t high) { return high <= low ? low : low + below(high - low + 1); }

 private:
  uint64_t state_;
};

}  // namespace tessera::reliability
