#include "brainmri/distributed/message_channel.hpp"

#include <chrono>
#include <stdexcept>
#include <thread>

#include "mpi_world.hpp"

namespace brainmri::distributed {

struct MessageChannel::Handles {
  MPI_Comm comm = MPI_COMM_NULL;
};

MessageChannel::MessageChannel(const MpiEnvironment& environment) : handles_(std::make_unique<Handles>()) {
  if (!environment.uses_mpi() || !environment.thread_multiple()) {
    throw std::runtime_error("messages between ranks need MPI with MPI_THREAD_MULTIPLE (they are sent from threads)");
  }
  MPI_Comm_dup(MpiWorld::of(environment), &handles_->comm);
}

MessageChannel::~MessageChannel() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (handles_->comm != MPI_COMM_NULL && !finalized) MPI_Comm_free(&handles_->comm);
}

void MessageChannel::send(const std::string& text, int destination, int tag) {
  MPI_Request request;
  MPI_Isend(text.data(), static_cast<int>(text.size()), MPI_CHAR, destination, tag, handles_->comm, &request);
  MPI_Wait(&request, MPI_STATUS_IGNORE);
}

std::string MessageChannel::receive(int source, int tag, int* from) {
  MPI_Status status;
  const int wanted = source == kAnySource ? MPI_ANY_SOURCE : source;
  for (int arrived = 0;;) {
    MPI_Iprobe(wanted, tag, handles_->comm, &arrived, &status);
    if (arrived) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  int length = 0;
  MPI_Get_count(&status, MPI_CHAR, &length);
  std::string text(static_cast<std::size_t>(length), '\0');
  MPI_Recv(text.data(), length, MPI_CHAR, status.MPI_SOURCE, tag, handles_->comm, MPI_STATUS_IGNORE);
  if (from != nullptr) *from = status.MPI_SOURCE;
  return text;
}

}  // namespace brainmri::distributed
