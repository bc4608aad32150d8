// Machine ceilings for roofline analysis: peak f32 FMA and int8 dot-product rates and STREAM-style
// memory bandwidth, measured on this machine (1 thread and all threads), plus cache sizes; cached as JSON.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace tessera::analysis {

struct CacheLevel {
  int level = 0;
  std::string type;  // "Data", "Instruction", "Unified"
  size_t bytes = 0;
  int shared_by_cpus = 1;  // logical CPUs sharing one instance
};

struct MachineCeilings {
  std::string cpu_model;     // CPUID brand string; the cache key
  std::string isa;           // vector ISA of the FMA loop: "avx512", "avx2" or "scalar"
  int threads = 1;           // threads behind the *_all figures
  double peak_gflops_1 = 0;  // f32, a fused multiply-add counts 2
  double peak_gflops_all = 0;
  bool has_vnni = false;   // AVX-512 VNNI (vpdpbusd)
  double int8_gops_1 = 0;  // u8*s8 multiply-adds (2 ops each); 0 without VNNI
  double int8_gops_all = 0;
  double bandwidth_gbs_1 = 0;  // triad a = b + s*c, 3 x 4 bytes per element, GB = 1e9 bytes
  double bandwidth_gbs_all = 0;
  size_t triad_bytes = 0;  // total size of the three triad arrays
  std::vector<CacheLevel> caches;
  std::string measured_at;  // UTC, ISO 8601
};

// The two roofs for one thread count, and where they meet.
struct Roof {
  double peak_gflops = 0;
  double bandwidth_gbs = 0;
  // The int8 dot-product ceiling (VNNI) that layers running integer kernels are measured
  // against; 0 where the machine has none (they are then held to the f32 peak).
  double int8_peak_gops = 0;
  // FLOP/byte at which the memory roof reaches the compute roof.
  double balance() const { return bandwidth_gbs > 0 ? peak_gflops / bandwidth_gbs : 0; }
  // Attainable GFLOP/s at an arithmetic intensity (FLOP/byte).
  double bound_gflops(double intensity) const;
};

// Exact at 1 and at ceilings.threads; in between, per-thread figures scale linearly up to the
// all-thread figure (bandwidth saturates before compute does, which the cap captures).
Roof roof_for_threads(const MachineCeilings& ceilings, int threads);

struct MeasureOptions {
  int threads = 0;                 // threads for the *_all figures; 0: all hardware threads
  double seconds_per_trial = 0.1;  // compute loops run at least this long per trial
  int trials = 7;                  // best of this many trials (a shared machine is noisy)
  size_t triad_bytes = 0;          // 0: max(1 GiB, 4 x last-level cache)
};

// True when the all-thread f32 figure is well under threads x the 1-thread one: other work was
// probably running during the measurement, and it is worth repeating with --refresh.
bool all_thread_figure_looks_contended(const MachineCeilings& ceilings);

std::string cpu_model_string();
std::vector<CacheLevel> read_cache_levels();
// Measures everything; takes a few seconds and allocates triad_bytes. Call it from outside any
// ThreadPool task: its own pool's tasks must run concurrently.
MachineCeilings measure_machine_ceilings(const MeasureOptions& options = {});

// $TESSERA_MACHINE_CACHE, else $XDG_CACHE_HOME/tessera/machine.json, else ~/.cache/tessera/machine.json.
std::string default_machine_cache_path();
std::string ceilings_to_json(const MachineCeilings& ceilings);  // pretty-printed JSON object
MachineCeilings ceilings_from_json(const std::string& text);    // throws Error on bad JSON
// The entry for this CPU whose all-thread figures used `threads` threads (0: hardware threads).
std::optional<MachineCeilings> load_cached_ceilings(const std::string& path, int threads);
// Adds or replaces this CPU's entry, keeping other CPUs' entries (a shared home directory).
void store_cached_ceilings(const std::string& path, const MachineCeilings& ceilings);
// Cached ceilings when present (and refresh is false), else measured and stored.
MachineCeilings machine_ceilings(const std::string& cache_path, int threads, bool refresh);

}  // namespace tessera::analysis
