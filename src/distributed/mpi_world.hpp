#pragma once
// The MPI side of MpiEnvironment, for the distributed layer's own sources only: no public header
// includes mpi.h.

#include <mpi.h>

#include <string>

#include "brainmri/distributed/mpi_environment.hpp"

namespace brainmri::distributed {

struct MpiEnvironment::Handles {
  MPI_Comm world = MPI_COMM_NULL;
};

struct MpiWorld {
  // brainmri's duplicate of MPI_COMM_WORLD; MPI_COMM_NULL in a world of one without MPI.
  static MPI_Comm of(const MpiEnvironment& environment) { return environment.handles_->world; }
};

// The text of an MPI error code: "MPI_ERR_TRUNCATE: message truncated".
std::string mpi_error_text(int code);

}  // namespace brainmri::distributed
