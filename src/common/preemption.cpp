#include "brainmri/common/preemption.hpp"

#include <atomic>
#include <map>

namespace brainmri {
namespace {

// Lock-free, so the handler may touch it (a volatile sig_atomic_t would also do; this one is also
// safe to read from the scheduler's coordinator thread).
std::atomic<bool> requested{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void on_preemption_signal(int) { requested.store(true, std::memory_order_relaxed); }

}  // namespace

void install_preemption_handler(const std::string& signal_name) {
  static int installed = 0;  // the signal handled now, if any
  const std::string name = signal_name.rfind("SIG", 0) == 0 ? signal_name.substr(3) : signal_name;
  static const std::map<std::string, int> signals = {
      {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"INT", SIGINT}};
  const auto found = signals.find(name);
  if (found == signals.end() && name != "none") {
    throw std::invalid_argument("unknown preemption signal '" + signal_name +
                                "' (expected USR1, USR2, TERM, INT or none)");
  }
  const int wanted = name == "none" ? 0 : found->second;
  // Only a signal that stops being ours gets its default action back: resetting the one that stays
  // would open a moment in which it kills the process.
  if (installed != 0 && installed != wanted) std::signal(installed, SIG_DFL);
  installed = wanted;
  if (wanted == 0) return;
  struct sigaction action = {};
  action.sa_handler = on_preemption_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // blocking reads and MPI calls go on; the flag is polled
  sigaction(found->second, &action, nullptr);
}

bool preemption_requested() { return requested.load(std::memory_order_relaxed); }
void request_preemption() { requested.store(true, std::memory_order_relaxed); }
void clear_preemption_request() { requested.store(false, std::memory_order_relaxed); }

}  // namespace brainmri
