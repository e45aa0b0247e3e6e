#include "brainmri/serve/stop_signals.hpp"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <stdexcept>
#include <thread>

namespace brainmri::serve {
namespace {

// The signal reaches a thread through a pipe: a signal handler may do little more than write(),
// and the stop itself has to wait for the requests in progress.
int stop_pipe[2] = {-1, -1};
std::atomic<int> stop_signals{0};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_stop_signal(int signal_number) {
  if (stop_signals.fetch_add(1) > 0) _exit(128 + signal_number);  // a second signal: stop now
  const char byte = static_cast<char>(signal_number);
  [[maybe_unused]] const auto written = write(stop_pipe[1], &byte, 1);
}

}  // namespace

void install_stop_signal_handlers() {
  if (stop_pipe[0] >= 0) return;
  if (pipe(stop_pipe) != 0) throw std::runtime_error("cannot create the pipe that carries SIGTERM");
  struct sigaction action = {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

void serve_until_stop_signal(PredictionServer& server, const std::function<void(const std::string&)>& say) {
  install_stop_signal_handlers();
  std::thread stopper([&] {
    char signal_number = 0;
    if (read(stop_pipe[0], &signal_number, 1) == 1 && signal_number != 0) {
      say(std::string(signal_number == SIGINT ? "interrupted" : "SIGTERM") +
          ": answering the requests in progress, then stopping");
    }
    server.stop();
  });
  server.serve();
  // Served to the end: wake the stop thread if no signal did.
  const char none = 0;
  [[maybe_unused]] const auto written = write(stop_pipe[1], &none, 1);
  stopper.join();
}

}  // namespace brainmri::serve
