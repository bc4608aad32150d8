// MPI glue for split campaigns; without MPI, a single process.
#include "tessera/campaign_mpi.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "reliability/campaign_report.h"

#ifdef TESSERA_HAVE_MPI
#include <mpi.h>
#endif

namespace tessera::cli {

namespace {
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}
}  // namespace

CampaignProcesses::CampaignProcesses() {
  // Open MPI's and PMI-based launchers say so in the environment.
  const int launched = std::max({env_int("OMPI_COMM_WORLD_SIZE", 0), env_int("PMI_SIZE", 0), env_int("PMIX_SIZE", 0)});
  if (launched <= 1) return;
#ifdef TESSERA_HAVE_MPI
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) MPI_Init(nullptr, nullptr);
  mpi_ = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  local_size_ = std::max(1, env_int("OMPI_COMM_WORLD_LOCAL_SIZE", size_));
#else
  throw Error("launched as " + std::to_string(launched) +
              " processes, but this tessera was built without MPI (install libopenmpi-dev and rebuild)");
#endif
}

CampaignProcesses::~CampaignProcesses() {
#ifdef TESSERA_HAVE_MPI
  if (mpi_) MPI_Finalize();
#endif
}

void CampaignProcesses::abort_all(int code) const {
#ifdef TESSERA_HAVE_MPI
  if (mpi_) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

reliability::CampaignResult CampaignProcesses::gather(reliability::CampaignResult local) const {
#ifdef TESSERA_HAVE_MPI
  if (!mpi_ || size_ <= 1) return local;
  const std::string mine = reliability::records_to_json(local.records);
  const int length = int(mine.size());
  std::vector<int> lengths(size_t(size_), 0), offsets(size_t(size_), 0);
  MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  std::string all;
  if (rank_ == 0) {
    int total = 0;
    for (int r = 0; r < size_; ++r) {
      offsets[size_t(r)] = total;
      total += lengths[size_t(r)];
    }
    all.resize(size_t(total));
  }
  MPI_Gatherv(mine.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, 0, MPI_COMM_WORLD);
  double seconds = local.seconds, golden = local.golden_seconds, slowest = 0, slowest_golden = 0;
  int threads = local.threads, all_threads = 0;
  MPI_Reduce(&seconds, &slowest, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
  MPI_Reduce(&golden, &slowest_golden, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
  MPI_Reduce(&threads, &all_threads, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
  if (rank_ != 0) return local;
  reliability::CampaignResult merged = std::move(local);
  merged.records.clear();
  for (int r = 0; r < size_; ++r) {
    std::vector<reliability::InjectionRecord> part =
        reliability::records_from_json(all.substr(size_t(offsets[size_t(r)]), size_t(lengths[size_t(r)])));
    merged.records.insert(merged.records.end(), part.begin(), part.end());
  }
  std::sort(merged.records.begin(), merged.records.end(),
            [](const auto& a, const auto& b) { return a.index < b.index; });
  merged.seconds = slowest;
  merged.golden_seconds = slowest_golden;
  merged.threads = all_threads;
  return merged;
#else
  return local;
#endif
}

}  // namespace tessera::cli
