// Measuring the machine ceilings (CPUID probing, timed FMA/VNNI/triad trials on 1 and all threads,
// cache sizes from sysfs) and the JSON cache keyed by CPU model string.
#include "analysis/machine_ceilings.h"

#include <cpuid.h>
#include <immintrin.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <tuple>

#include "analysis/ceiling_loops.h"
#include "nlohmann/json.hpp"
#include "tessera/error.h"
#include "tessera/thread_pool.h"

namespace tessera::analysis {

namespace {

using Clock = std::chrono::steady_clock;

struct CpuFeatures {
  bool avx2_fma = false;
  bool avx512 = false;  // F, DQ, BW, VL with OS support for the ZMM state
  bool avx512_vnni = false;
};

uint64_t read_xcr0() {
  uint32_t eax = 0, edx = 0;
  // xgetbv by its encoding so this baseline-flag file needs no -mxsave.
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

CpuFeatures probe_features() {
  CpuFeatures f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool fma = ecx & (1u << 12), osxsave = ecx & (1u << 27), avx = ecx & (1u << 28);
  // Registers the OS does not save are unusable even when the CPU has them.
  if (!osxsave || !avx || (read_xcr0() & 0x6) != 0x6) return f;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  f.avx2_fma = (ebx & (1u << 5)) && fma;
  const bool zmm_state = (read_xcr0() & 0xe0) == 0xe0;
  f.avx512 = f.avx2_fma && zmm_state && (ebx & (1u << 16)) && (ebx & (1u << 17)) && (ebx & (1u << 30)) &&
             (ebx & (1u << 31));
  f.avx512_vnni = f.avx512 && (ecx & (1u << 11));
  return f;
}

// Releases all threads of a trial together so the all-thread figures measure simultaneous work.
class SpinBarrier {
 public:
  explicit SpinBarrier(int count) : count_(count) {}
  void arrive_and_wait() {
    const int generation = generation_.load(std::memory_order_acquire);
    if (waiting_.fetch_add(1, std::memory_order_acq_rel) + 1 == count_) {
      waiting_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_acq_rel);
      return;
    }
    while (generation_.load(std::memory_order_acquire) == generation) _mm_pause();
  }

 private:
  const int count_;
  std::atomic<int> waiting_{0};
  std::atomic<int> generation_{0};
};

// Runs `work(thread)` on `threads` threads at once, `trials` times; returns the shortest trial,
// from the first thread's start to the last thread's end. The barrier also guarantees each task
// sits on its own pool thread: no thread can take a second task before every task has started.
double best_parallel_seconds(ThreadPool& pool, int threads, int trials,
                             const std::function<void(int)>& work) {
  SpinBarrier barrier(threads);
  std::vector<Clock::time_point> starts(static_cast<size_t>(threads)), ends(static_cast<size_t>(threads));
  double best = 1e300;
  auto body = [&](int thread) {
    for (int trial = 0; trial < trials; ++trial) {
      barrier.arrive_and_wait();
      starts[size_t(thread)] = Clock::now();
      work(thread);
      ends[size_t(thread)] = Clock::now();
      barrier.arrive_and_wait();
      if (thread == 0) {
        auto first = *std::min_element(starts.begin(), starts.end());
        auto last = *std::max_element(ends.begin(), ends.end());
        best = std::min(best, std::chrono::duration<double>(last - first).count());
      }
    }
  };
  if (threads == 1)
    body(0);
  else
    pool.run_tasks(threads, body);
  return best;
}

// Iterations of `loop` that take about `seconds` on one thread.
int64_t calibrate_iterations(const std::function<void(int64_t)>& loop, double seconds) {
  int64_t iterations = 1 << 12;
  for (;;) {
    auto start = Clock::now();
    loop(iterations);
    double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    if (elapsed >= seconds / 8 || iterations > (int64_t(1) << 40)) {
      return std::max<int64_t>(1, int64_t(double(iterations) * seconds / std::max(elapsed, 1e-9)));
    }
    iterations *= 2;
  }
}

// Peak rate (G per second) of a register-only loop doing `per_iteration` operations per iteration.
std::pair<double, double> measure_loop_rate(ThreadPool& pool, int threads, const MeasureOptions& options,
                                            double per_iteration, const std::function<float(int64_t)>& loop) {
  std::atomic<float> sink{0};  // keeps every result alive
  auto run = [&](int64_t iterations) { sink.store(sink.load() + loop(iterations)); };
  const int64_t iterations = calibrate_iterations(run, options.seconds_per_trial);
  const double work = double(iterations) * per_iteration;
  double one = best_parallel_seconds(pool, 1, options.trials, [&](int) { run(iterations); });
  double all = best_parallel_seconds(pool, threads, options.trials, [&](int) { run(iterations); });
  return {work / one * 1e-9, work * threads / all * 1e-9};
}

struct AlignedFloats {
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> data;
  explicit AlignedFloats(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    data.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    if (!data) throw Error("cannot allocate " + std::to_string(bytes >> 20) + " MiB for the bandwidth test");
  }
};

std::pair<double, double> measure_triad(ThreadPool& pool, int threads, const MeasureOptions& options,
                                        size_t total_bytes, const CpuFeatures& features) {
  const size_t n = std::max<size_t>(total_bytes / (3 * sizeof(float)), 1024);
  AlignedFloats a(n), b(n), c(n);
  auto triad = features.avx512     ? loops::triad_avx512
               : features.avx2_fma ? loops::triad_avx2
                                   : loops::triad_scalar;
  auto slice = [&](int thread, int count) {
    return std::pair<size_t, size_t>{n * size_t(thread) / size_t(count),
                                     n * size_t(thread + 1) / size_t(count)};
  };
  // First touch from the threads that will use each slice (page placement on NUMA machines).
  pool.run_tasks(threads, [&](int t) {
    auto [begin, end] = slice(t, threads);
    for (size_t i = begin; i < end; ++i) a.data.get()[i] = 0.f, b.data.get()[i] = 1.f, c.data.get()[i] = 2.f;
  });
  const double bytes = 3.0 * double(n) * sizeof(float);  // STREAM counting: read b, c; write a
  auto run = [&](int thread, int count) {
    auto [begin, end] = slice(thread, count);
    triad(a.data.get() + begin, b.data.get() + begin, c.data.get() + begin, 0.5f, end - begin);
  };
  double one = best_parallel_seconds(pool, 1, options.trials, [&](int t) { run(t, 1); });
  double all = best_parallel_seconds(pool, threads, options.trials, [&](int t) { run(t, threads); });
  return {bytes / one * 1e-9, bytes / all * 1e-9};
}

size_t parse_size(const std::string& text) {
  size_t value = std::strtoull(text.c_str(), nullptr, 10);
  if (text.find('K') != std::string::npos) value <<= 10;
  if (text.find('M') != std::string::npos) value <<= 20;
  if (text.find('G') != std::string::npos) value <<= 30;
  return value;
}

// "0-3,8" -> 5
int count_cpu_list(const std::string& list) {
  int count = 0;
  std::stringstream stream(list);
  std::string part;
  while (std::getline(stream, part, ',')) {
    if (part.empty()) continue;
    auto dash = part.find('-');
    if (dash == std::string::npos)
      ++count;
    else
      count += std::atoi(part.c_str() + dash + 1) - std::atoi(part.c_str()) + 1;
  }
  return std::max(count, 1);
}

std::string read_first_line(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// CPUID leaf 4 (Intel's deterministic cache parameters), when sysfs is not there.
std::vector<CacheLevel> cache_levels_from_cpuid() {
  std::vector<CacheLevel> levels;
  if (__get_cpuid_max(0, nullptr) < 4) return levels;
  for (unsigned index = 0; index < 16; ++index) {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    __cpuid_count(4, index, eax, ebx, ecx, edx);
    unsigned type = eax & 0x1f;
    if (type == 0) break;
    CacheLevel level;
    level.level = int((eax >> 5) & 0x7);
    level.type = type == 1 ? "Data" : type == 2 ? "Instruction" : "Unified";
    level.bytes = size_t((ebx >> 22) + 1) * (((ebx >> 12) & 0x3ff) + 1) * ((ebx & 0xfff) + 1) * (ecx + 1);
    level.shared_by_cpus = int(((eax >> 14) & 0xfff) + 1);
    levels.push_back(level);
  }
  return levels;
}

std::string utc_now_iso8601() {
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buffer;
}

nlohmann::json to_json_object(const MachineCeilings& c) {
  nlohmann::json caches = nlohmann::json::array();
  for (const auto& level : c.caches)
    caches.push_back({{"level", level.level},
                      {"type", level.type},
                      {"bytes", level.bytes},
                      {"shared_by_cpus", level.shared_by_cpus}});
  return {{"cpu_model", c.cpu_model},
          {"isa", c.isa},
          {"threads", c.threads},
          {"peak_gflops_1", c.peak_gflops_1},
          {"peak_gflops_all", c.peak_gflops_all},
          {"has_vnni", c.has_vnni},
          {"int8_gops_1", c.int8_gops_1},
          {"int8_gops_all", c.int8_gops_all},
          {"bandwidth_gbs_1", c.bandwidth_gbs_1},
          {"bandwidth_gbs_all", c.bandwidth_gbs_all},
          {"balance_flop_per_byte_1", roof_for_threads(c, 1).balance()},
          {"balance_flop_per_byte_all", roof_for_threads(c, c.threads).balance()},
          {"triad_bytes", c.triad_bytes},
          {"caches", caches},
          {"measured_at", c.measured_at}};
}

MachineCeilings from_json_object(const nlohmann::json& j) {
  MachineCeilings c;
  c.cpu_model = j.at("cpu_model").get<std::string>();
  c.isa = j.at("isa").get<std::string>();
  c.threads = j.at("threads").get<int>();
  c.peak_gflops_1 = j.at("peak_gflops_1").get<double>();
  c.peak_gflops_all = j.at("peak_gflops_all").get<double>();
  c.has_vnni = j.at("has_vnni").get<bool>();
  c.int8_gops_1 = j.at("int8_gops_1").get<double>();
  c.int8_gops_all = j.at("int8_gops_all").get<double>();
  c.bandwidth_gbs_1 = j.at("bandwidth_gbs_1").get<double>();
  c.bandwidth_gbs_all = j.at("bandwidth_gbs_all").get<double>();
  c.triad_bytes = j.value("triad_bytes", size_t(0));
  c.measured_at = j.value("measured_at", std::string());
  for (const auto& level : j.value("caches", nlohmann::json::array()))
    c.caches.push_back(CacheLevel{level.at("level").get<int>(), level.at("type").get<std::string>(),
                                  level.at("bytes").get<size_t>(), level.value("shared_by_cpus", 1)});
  if (c.threads < 1 || !(c.peak_gflops_1 > 0) || !(c.bandwidth_gbs_1 > 0))
    throw Error("machine ceilings entry has non-positive figures");
  return c;
}

constexpr const char* kCacheFormat = "tessera-machine-ceilings-1";

}  // namespace

double Roof::bound_gflops(double intensity) const { return std::min(peak_gflops, intensity * bandwidth_gbs); }

Roof roof_for_threads(const MachineCeilings& c, int threads) {
  if (threads <= 1 || c.threads <= 1) return Roof{c.peak_gflops_1, c.bandwidth_gbs_1, c.int8_gops_1};
  if (threads >= c.threads) return Roof{c.peak_gflops_all, c.bandwidth_gbs_all, c.int8_gops_all};
  return Roof{std::min(c.peak_gflops_1 * threads, c.peak_gflops_all),
              std::min(c.bandwidth_gbs_1 * threads, c.bandwidth_gbs_all),
              std::min(c.int8_gops_1 * threads, c.int8_gops_all)};
}

bool all_thread_figure_looks_contended(const MachineCeilings& c) {
  return c.threads > 1 && c.peak_gflops_all < 0.75 * c.peak_gflops_1 * c.threads;
}

std::string cpu_model_string() {
  unsigned regs[12] = {};
  if (__get_cpuid_max(0x80000000, nullptr) >= 0x80000004) {
    for (unsigned leaf = 0; leaf < 3; ++leaf)
      __get_cpuid(0x80000002 + leaf, &regs[leaf * 4], &regs[leaf * 4 + 1], &regs[leaf * 4 + 2],
                  &regs[leaf * 4 + 3]);
    const char* text = reinterpret_cast<const char*>(regs);
    std::string brand(text, strnlen(text, sizeof regs));
    auto first = brand.find_first_not_of(' ');
    auto last = brand.find_last_not_of(' ');
    if (first != std::string::npos) return brand.substr(first, last - first + 1);
  }
  return "unknown x86-64 CPU";
}

std::vector<CacheLevel> read_cache_levels() {
  std::vector<CacheLevel> levels;
  const std::filesystem::path root = "/sys/devices/system/cpu/cpu0/cache";
  std::error_code error;
  for (int index = 0; index < 16; ++index) {
    auto dir = root / ("index" + std::to_string(index));
    if (!std::filesystem::exists(dir, error)) break;
    CacheLevel level;
    level.level = std::atoi(read_first_line(dir / "level").c_str());
    level.type = read_first_line(dir / "type");
    level.bytes = parse_size(read_first_line(dir / "size"));
    level.shared_by_cpus = count_cpu_list(read_first_line(dir / "shared_cpu_list"));
    if (level.level > 0 && level.bytes > 0) levels.push_back(level);
  }
  return levels.empty() ? cache_levels_from_cpuid() : levels;
}

MachineCeilings measure_machine_ceilings(const MeasureOptions& options) {
  const CpuFeatures features = probe_features();
  MachineCeilings c;
  c.cpu_model = cpu_model_string();
  c.threads = options.threads > 0 ? options.threads : ThreadPool::hardware_threads();
  c.caches = read_cache_levels();
  c.measured_at = utc_now_iso8601();
  ThreadPool pool(c.threads);

  volatile float multiplier_source = 0.999999f;  // opaque to the optimizer
  const float multiplier = multiplier_source;
  if (features.avx512) {
    c.isa = "avx512";
    std::tie(c.peak_gflops_1, c.peak_gflops_all) =
        measure_loop_rate(pool, c.threads, options, loops::kFlopsPerIterationAvx512,
                          [&](int64_t n) { return loops::fma_loop_avx512(n, multiplier); });
  } else if (features.avx2_fma) {
    c.isa = "avx2";
    std::tie(c.peak_gflops_1, c.peak_gflops_all) =
        measure_loop_rate(pool, c.threads, options, loops::kFlopsPerIterationAvx2,
                          [&](int64_t n) { return loops::fma_loop_avx2(n, multiplier); });
  } else {
    c.isa = "scalar";
    std::tie(c.peak_gflops_1, c.peak_gflops_all) =
        measure_loop_rate(pool, c.threads, options, loops::kFlopsPerIterationScalar,
                          [&](int64_t n) { return loops::fma_loop_scalar(n, multiplier); });
  }
  c.has_vnni = features.avx512_vnni;
  if (c.has_vnni) {
    std::tie(c.int8_gops_1, c.int8_gops_all) =
        measure_loop_rate(pool, c.threads, options, loops::kOpsPerIterationVnni,
                          [&](int64_t n) { return float(loops::vnni_loop_avx512(n, int32_t(n))); });
  }

  size_t last_level = 0;
  for (const auto& level : c.caches) last_level = std::max(last_level, level.bytes);
  // Far larger than the last-level cache, so the triad streams from DRAM.
  c.triad_bytes =
      options.triad_bytes ? options.triad_bytes : std::max<size_t>(size_t(1) << 30, 4 * last_level);
  std::tie(c.bandwidth_gbs_1, c.bandwidth_gbs_all) =
      measure_triad(pool, c.threads, options, c.triad_bytes, features);
  return c;
}

std::string default_machine_cache_path() {
  if (const char* env = std::getenv("TESSERA_MACHINE_CACHE"); env && *env) return env;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return std::string(xdg) + "/tessera/machine.json";
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.cache/tessera/machine.json";
  return ".tessera-machine.json";
}

std::string ceilings_to_json(const MachineCeilings& ceilings) { return to_json_object(ceilings).dump(2); }

MachineCeilings ceilings_from_json(const std::string& text) {
  try {
    return from_json_object(nlohmann::json::parse(text));
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("bad machine ceilings JSON: ") + e.what());
  }
}

std::optional<MachineCeilings> load_cached_ceilings(const std::string& path, int threads) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  try {
    nlohmann::json file = nlohmann::json::parse(in);
    if (file.value("format", std::string()) != kCacheFormat) return std::nullopt;
    const auto& machines = file.at("machines");
    auto entry = machines.find(cpu_model_string());
    if (entry == machines.end()) return std::nullopt;
    MachineCeilings c = from_json_object(*entry);
    const int wanted = threads > 0 ? threads : ThreadPool::hardware_threads();
    if (c.threads != wanted) return std::nullopt;
    return c;
  } catch (const std::exception&) {
    return std::nullopt;  // an unreadable cache is re-measured and overwritten
  }
}

void store_cached_ceilings(const std::string& path, const MachineCeilings& ceilings) {
  nlohmann::json file;
  {
    std::ifstream in(path);
    if (in) file = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  }
  if (!file.is_object() || file.value("format", std::string()) != kCacheFormat)
    file = {{"format", kCacheFormat}, {"machines", nlohmann::json::object()}};
  file["machines"][ceilings.cpu_model] = to_json_object(ceilings);
  std::error_code error;
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, error);
  // Write then rename, so a concurrent reader never sees half a file.
  const std::string temporary = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(temporary);
    if (!out) throw Error("cannot write machine ceilings cache " + path);
    out << file.dump(2) << "\n";
    if (!out) throw Error("failed writing machine ceilings cache " + path);
  }
  std::filesystem::rename(temporary, path, error);
  if (error) throw Error("cannot write machine ceilings cache " + path + ": " + error.message());
}

MachineCeilings machine_ceilings(const std::string& cache_path, int threads, bool refresh) {
  if (!refresh)
    if (auto cached = load_cached_ceilings(cache_path, threads)) return *cached;
  MeasureOptions options;
  options.threads = threads;
  MachineCeilings measured = measure_machine_ceilings(options);
  store_cached_ceilings(cache_path, measured);
  return measured;
}

}  // namespace tessera::analysis
