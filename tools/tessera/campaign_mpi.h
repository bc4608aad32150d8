// `tessera inject` under mpirun: each rank runs its share of the campaign (the same seed draws the
// same faults everywhere) and rank 0 gathers the records into the single-process result.
#pragma once
#include "reliability/fault_campaign.h"

namespace tessera::cli {

class CampaignProcesses {
 public:
  // Starts MPI when launched by mpirun (and built with MPI); else one process. Throws when
  // mpirun started several processes of a build without MPI.
  CampaignProcesses();
  ~CampaignProcesses();
  CampaignProcesses(const CampaignProcesses&) = delete;
  CampaignProcesses& operator=(const CampaignProcesses&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // Processes on this machine (for a default thread count that does not oversubscribe it).
  int local_size() const { return local_size_; }
  // On rank 0: every rank's records in index order, the slowest rank's time, all ranks' threads.
  // On other ranks: their own result.
  reliability::CampaignResult gather(reliability::CampaignResult local) const;
  // Stops every rank after an error on one (a plain exit would leave the others waiting).
  [[noreturn]] void abort_all(int code) const;

 private:
  int rank_ = 0, size_ = 1, local_size_ = 1;
  bool mpi_ = false;
};

}  // namespace tessera::cli
