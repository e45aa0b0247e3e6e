#include "brainmri/distributed/mpi_environment.hpp"

#include <cstdlib>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "mpi_world.hpp"

namespace brainmri::distributed {
namespace {

void check(int code, const char* call) {
  if (code != MPI_SUCCESS) throw std::runtime_error(std::string(call) + " failed: " + mpi_error_text(code));
}

bool env_set(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0';
}

}  // namespace

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<std::size_t>(length));
}

bool MpiEnvironment::launched_by_mpi_launcher() {
  // Open MPI's mpirun, PMIx (srun --mpi=pmix, prterun), PMI-1/2 (srun --mpi=pmi2, MPICH hydra).
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"}) {
    if (env_set(name)) return true;
  }
  const char* forced = std::getenv("BRAINMRI_FORCE_MPI");
  return forced != nullptr && std::string(forced) == "1";
}

MpiEnvironment::MpiEnvironment(int* argc, char*** argv) : handles_(std::make_unique<Handles>()) {
  int already = 0;
  MPI_Initialized(&already);
  if (!already && !launched_by_mpi_launcher()) return;  // a world of one, no MPI
  if (!already) {
    int provided = MPI_THREAD_SINGLE;
    check(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
    initialized_here_ = true;
    thread_multiple_ = provided >= MPI_THREAD_MULTIPLE;
    if (provided < MPI_THREAD_SERIALIZED) {
      MPI_Finalize();
      throw std::runtime_error("the MPI library offers only thread level " + std::to_string(provided) +
                               "; brainmri needs at least MPI_THREAD_SERIALIZED (Open MPI and MPICH provide it)");
    }
  } else {
    int provided = MPI_THREAD_SINGLE;
    MPI_Query_thread(&provided);
    thread_multiple_ = provided >= MPI_THREAD_MULTIPLE;
  }
  check(MPI_Comm_dup(MPI_COMM_WORLD, &handles_->world), "MPI_Comm_dup");
  // Errors come back as codes that we turn into exceptions naming the operation, instead of
  // MPI's default of aborting without context.
  MPI_Comm_set_errhandler(handles_->world, MPI_ERRORS_RETURN);
  check(MPI_Comm_rank(handles_->world, &rank_), "MPI_Comm_rank");
  check(MPI_Comm_size(handles_->world, &size_), "MPI_Comm_size");
  MPI_Comm node = MPI_COMM_NULL;
  check(MPI_Comm_split_type(handles_->world, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_free(&node);
}

MpiEnvironment::~MpiEnvironment() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  if (handles_->world != MPI_COMM_NULL) MPI_Comm_free(&handles_->world);
  if (initialized_here_) MPI_Finalize();
}

bool MpiEnvironment::uses_mpi() const { return handles_->world != MPI_COMM_NULL; }

std::string MpiEnvironment::log_prefix() const {
  if (size_ <= 1) return "";
  return "[rank " + std::to_string(rank_) + "/" + std::to_string(size_) + "] ";
}

void MpiEnvironment::abort_job(int exit_code) const {
  std::cout.flush();
  std::cerr.flush();
  if (handles_->world != MPI_COMM_NULL) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

int MpiEnvironment::count_failures(bool failed) const {
  int mine = failed ? 1 : 0;
  if (!uses_mpi() || size_ == 1) return mine;
  int total = 0;
  check(MPI_Allreduce(&mine, &total, 1, MPI_INT, MPI_SUM, handles_->world), "MPI_Allreduce");
  return total;
}

std::string MpiEnvironment::compare_across_ranks(const std::string& text) const {
  if (!uses_mpi() || size_ == 1) return "";
  int length = static_cast<int>(text.size());
  std::vector<int> lengths(static_cast<std::size_t>(size_)), offsets(static_cast<std::size_t>(size_));
  check(MPI_Allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, handles_->world), "MPI_Allgather");
  int total = 0;
  for (int r = 0; r < size_; ++r) {
    offsets[static_cast<std::size_t>(r)] = total;
    total += lengths[static_cast<std::size_t>(r)];
  }
  std::string all(static_cast<std::size_t>(total), '\0');
  check(MPI_Allgatherv(text.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR,
                       handles_->world),
        "MPI_Allgatherv");
  auto text_of = [&](int r) {
    return all.substr(static_cast<std::size_t>(offsets[static_cast<std::size_t>(r)]),
                      static_cast<std::size_t>(lengths[static_cast<std::size_t>(r)]));
  };
  auto lines_of = [](const std::string& block) {
    std::vector<std::string> lines;
    std::istringstream stream(block);
    for (std::string line; std::getline(stream, line);) lines.push_back(line);
    return lines;
  };
  const auto reference = lines_of(text_of(0));
  for (int r = 1; r < size_; ++r) {
    const auto lines = lines_of(text_of(r));
    if (lines == reference) continue;
    std::string differences;
    for (std::size_t i = 0; i < std::max(lines.size(), reference.size()); ++i) {
      const std::string theirs = i < lines.size() ? lines[i] : "(nothing)";
      const std::string ours = i < reference.size() ? reference[i] : "(nothing)";
      if (theirs != ours) differences += "\n  rank 0: " + ours + "\n  rank " + std::to_string(r) + ": " + theirs;
    }
    return "the configuration differs between ranks:" + differences;
  }
  return "";
}

}  // namespace brainmri::distributed
