#pragma once
// How a server stops: SIGTERM (the scheduler or systemd) or SIGINT (Ctrl-C) let the requests in
// progress be answered first; a second signal ends the process at once. SIGPIPE is ignored: a
// client that hangs up must not end the server.

#include <functional>
#include <string>

#include "brainmri/serve/prediction_server.hpp"

namespace brainmri::serve {

// Once per process, early (before the model loads, which can take a while): from then on the
// signals are caught. Throws std::runtime_error when the handlers cannot be set up.
void install_stop_signal_handlers();

// server.serve() until a stop signal arrives (said through `say`), then until the requests in
// progress are answered.
void serve_until_stop_signal(PredictionServer& server, const std::function<void(const std::string&)>& say);

}  // namespace brainmri::serve
