// LD_PRELOAD library that counts the heap bytes a process holds (malloc family, so also C++ new)
// and reports the peak between two marks; used to compare Tessera's and ONNX Runtime's memory.
//
// The marks are allocations of two odd sizes (kMarkResetBytes, kMarkReportBytes) so that any
// program can place them without linking to this library: a C++ probe calls malloc, a Node.js
// probe allocates a Buffer of that size. A reset makes the current live bytes the baseline; a
// report writes one line to stderr:
//   heap-probe: baseline B peak-above-baseline P live-above-baseline L large S1,S2,...
// where P is the peak since the reset and S1,S2,... are the sizes of the first allocations of at
// least kLargeBytes since the previous mark, in order (that is how the compare script finds ONNX
// Runtime's memory-pattern block).
// Bytes are counted as malloc_usable_size, so each block counts a few bytes more than asked.
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstring>

// glibc's own entry points, so the wrappers need no dlsym (which itself allocates).
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}

namespace {

constexpr size_t kMarkResetBytes = 1000003;
constexpr size_t kMarkReportBytes = 1000033;
constexpr size_t kLargeBytes = 64 * 1024;
constexpr int kLargeRecorded = 32;

std::atomic<long long> live_bytes{0};
std::atomic<long long> baseline_bytes{0};
std::atomic<long long> peak_bytes{0};
std::atomic<int> large_count{0};
std::atomic<size_t> large_sizes[kLargeRecorded];
// Mark blocks still allocated (a Node.js Buffer is freed whenever the garbage collector runs),
// so that freeing one does not lower the count it never raised.
constexpr int kMarkSlots = 64;
std::atomic<void*> mark_blocks[kMarkSlots];

void remember_mark(void* p) {
  for (auto& slot : mark_blocks) {
    void* empty = nullptr;
    if (slot.compare_exchange_strong(empty, p)) return;
  }
}

bool forget_mark(void* p) {
  for (auto& slot : mark_blocks) {
    void* expected = p;
    if (slot.compare_exchange_strong(expected, nullptr)) return true;
  }
  return false;
}

void report() {
  char line[1024];
  long long baseline = baseline_bytes.load();
  int length = std::snprintf(line, sizeof line,
                             "heap-probe: baseline %lld peak-above-baseline %lld live-above-baseline %lld large ",
                             baseline, peak_bytes.load() - baseline, live_bytes.load() - baseline);
  int recorded = large_count.load();
  if (recorded > kLargeRecorded) recorded = kLargeRecorded;
  for (int i = 0; i < recorded && length < int(sizeof line) - 32; ++i)
    length += std::snprintf(line + length, sizeof line - size_t(length), "%s%zu", i ? "," : "",
                            large_sizes[i].load());
  line[length++] = '\n';
  // write(2) rather than stdio: this may run inside any allocation of the host program.
  ssize_t ignored = write(2, line, size_t(length));
  (void)ignored;
}

void* counted(void* p, size_t requested) {
  if (!p) return p;
  if (requested == kMarkResetBytes || requested == kMarkReportBytes) {
    remember_mark(p);  // the mark itself is not counted
    if (requested == kMarkReportBytes) {
      report();
      large_count = 0;
    } else {
      baseline_bytes = live_bytes.load();
      peak_bytes = live_bytes.load();
      large_count = 0;
    }
    return p;
  }
  long long now = live_bytes.fetch_add((long long)malloc_usable_size(p)) + (long long)malloc_usable_size(p);
  long long peak = peak_bytes.load();
  while (now > peak && !peak_bytes.compare_exchange_weak(peak, now)) {
  }
  if (requested >= kLargeBytes) {
    int slot = large_count.fetch_add(1);
    if (slot < kLargeRecorded) large_sizes[slot] = requested;
  }
  return p;
}

void uncount(void* p) {
  if (!p) return;
  // Only mark-sized blocks can be marks; checking the size first keeps free() cheap.
  size_t size = malloc_usable_size(p);
  if (size >= kMarkResetBytes && size < kMarkReportBytes + 4096 && forget_mark(p)) return;
  live_bytes.fetch_sub((long long)size);
}

}  // namespace

extern "C" {

void* malloc(size_t bytes) { return counted(__libc_malloc(bytes), bytes); }

void* calloc(size_t count, size_t bytes) { return counted(__libc_calloc(count, bytes), count * bytes); }

void* realloc(void* p, size_t bytes) {
  size_t old_size = p ? malloc_usable_size(p) : 0;
  bool was_mark = p && old_size >= kMarkResetBytes && old_size < kMarkReportBytes + 4096 && forget_mark(p);
  void* q = __libc_realloc(p, bytes);
  if (!q && bytes) {  // failed: the old block is still there
    if (was_mark) remember_mark(p);
    return q;
  }
  if (!was_mark) live_bytes.fetch_sub((long long)old_size);
  return bytes ? counted(q, bytes) : q;
}

void free(void* p) {
  uncount(p);
  __libc_free(p);
}

void* memalign(size_t alignment, size_t bytes) { return counted(__libc_memalign(alignment, bytes), bytes); }

void* aligned_alloc(size_t alignment, size_t bytes) { return memalign(alignment, bytes); }

int posix_memalign(void** out, size_t alignment, size_t bytes) {
  void* p = memalign(alignment, bytes);
  if (!p) return 12;  // ENOMEM
  *out = p;
  return 0;
}

void* valloc(size_t bytes) { return memalign(size_t(sysconf(_SC_PAGESIZE)), bytes); }

void* pvalloc(size_t bytes) {
  size_t page = size_t(sysconf(_SC_PAGESIZE));
  return memalign(page, (bytes + page - 1) / page * page);
}

}  // extern "C"
