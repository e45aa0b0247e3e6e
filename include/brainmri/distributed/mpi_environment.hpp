#pragma once
// The process's place in an MPI job: world rank and size, rank and size on this node, and a
// private duplicate of MPI_COMM_WORLD for brainmri's traffic.
//
// MPI is initialized only when a launcher started the process (mpirun, srun with PMIx or PMI2,
// mpiexec.hydra): a plain `brainmri train` is a world of one that needs no launcher and no MPI
// daemon. BRAINMRI_FORCE_MPI=1 initializes MPI regardless (a singleton MPI process).

#include <memory>
#include <string>

namespace brainmri::distributed {

class MpiEnvironment {
 public:
  MpiEnvironment(int* argc, char*** argv);
  ~MpiEnvironment();
  MpiEnvironment(const MpiEnvironment&) = delete;
  MpiEnvironment& operator=(const MpiEnvironment&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  bool uses_mpi() const;
  // Several threads may call MPI at once (needed by the watchdog's arrival tracking).
  bool thread_multiple() const { return thread_multiple_; }
  // "[rank 3/8] " in a job of several ranks, "" otherwise.
  std::string log_prefix() const;

  // Compares `text` (a resolved configuration) across all ranks: "" when every rank has the same,
  // otherwise which rank differs and the first differing lines. Collective; call it before any
  // communicator exists so that mismatched ranks never start training.
  std::string compare_across_ranks(const std::string& text) const;

  // How many ranks report `failed`. Collective; 0 or 1 in a world of one.
  int count_failures(bool failed) const;

  // Ends the whole job from any rank: MPI_Abort when MPI runs, std::exit otherwise.
  [[noreturn]] void abort_job(int exit_code) const;

  // True when the environment looks like an MPI launcher started this process.
  static bool launched_by_mpi_launcher();

 private:
  bool initialized_here_ = false;
  bool thread_multiple_ = false;
  // brainmri's duplicate of MPI_COMM_WORLD (src/distributed/mpi_world.hpp): MPI stays private to
  // the distributed layer.
  friend struct MpiWorld;
  struct Handles;
  std::unique_ptr<Handles> handles_;
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
};

}  // namespace brainmri::distributed
