#pragma once
// Point-to-point text messages between the ranks of a job, apart from every communicator's
// traffic: the experiment scheduler's requests and assignments travel here, sent and received
// from threads while the ranks' communicators run collectives.

#include <memory>
#include <string>

#include "brainmri/distributed/mpi_environment.hpp"

namespace brainmri::distributed {

class MessageChannel {
 public:
  static constexpr int kAnySource = -1;

  // A channel over every rank of the job. Throws std::runtime_error when MPI does not run or
  // offers no MPI_THREAD_MULTIPLE (messages are sent from threads).
  explicit MessageChannel(const MpiEnvironment& environment);
  ~MessageChannel();
  MessageChannel(const MessageChannel&) = delete;
  MessageChannel& operator=(const MessageChannel&) = delete;

  void send(const std::string& text, int destination, int tag);
  // Waits for a message with `tag` from `source` (or kAnySource) and returns it; `from`, when
  // given, receives the sender's rank. Polls with short sleeps: MPI's blocking receive spins a
  // core, and the scheduler's coordinator shares one with a training.
  std::string receive(int source, int tag, int* from = nullptr);

 private:
  struct Handles;
  std::unique_ptr<Handles> handles_;
};

}  // namespace brainmri::distributed
