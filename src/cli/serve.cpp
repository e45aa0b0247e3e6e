// brainmri serve: the web page and JSON API of a trained model (docs/serve.md).

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "brainmri/serve/prediction_server.hpp"
#include "inference_options.hpp"
#include "training_command.hpp"

namespace brainmri::cli {

namespace fs = std::filesystem;
using nlohmann::json;
namespace {

// SIGTERM and SIGINT reach a thread through a pipe: a signal handler may do little more than
// write(), and the stop itself has to wait for the requests in progress.
int stop_pipe[2] = {-1, -1};
std::atomic<int> stop_signals{0};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_stop_signal(int signal_number) {
  if (stop_signals.fetch_add(1) > 0) _exit(128 + signal_number);  // a second signal: stop now
  const char byte = static_cast<char>(signal_number);
  [[maybe_unused]] const auto written = write(stop_pipe[1], &byte, 1);
}

void install_stop_handlers() {
  if (pipe(stop_pipe) != 0) throw std::runtime_error("cannot create the pipe that carries SIGTERM");
  struct sigaction action = {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not end the server
}

std::string timestamp() {
  const auto now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return text;
}

}  // namespace

int run_serve(int argc, const char* const argv[]) {
  po::options_description options("brainmri serve");
  // clang-format off
  options.add_options()
    ("help,h", "show this help and exit")
    ("config", po::value<std::string>(), "INI file with any of these options")
    ("model", po::value<std::string>(), "model.pt (or any checkpoint) of brainmri train/cv, or a TorchScript export (required)")
    ("host", po::value<std::string>()->default_value("127.0.0.1"), "address to listen on (0.0.0.0: every interface; think first: there is no authentication)")
    ("port", po::value<int>()->default_value(8080), "port to listen on (0: any free port, printed at start)")
    ("threads", po::value<int>()->default_value(8), "HTTP worker threads (requests handled at once)")
    ("max-upload-mb", po::value<double>()->default_value(10.0), "largest image accepted, in MB (larger: HTTP 413)")
    ("max-megapixels", po::value<double>()->default_value(50.0), "largest image accepted, in millions of pixels its header declares (larger: HTTP 413)")
    ("max-batch", po::value<int>()->default_value(16), "images classified together in one model call")
    ("max-waiting", po::value<int>()->default_value(256), "requests that may wait for the model (more: HTTP 503)")
    ("device", po::value<std::string>()->default_value("cpu"), "cpu, cuda or auto")
    ("torch-threads", po::value<int>()->default_value(0), "CPU threads of the model (0: LibTorch's default)")
    ("quiet", po::bool_switch(), "no line per request on stderr");
  // clang-format on
  options.add(inference_options());
  const auto vm = parse_with_config(argc, argv, options);
  if (vm.count("help")) {
    std::cout << "Usage: brainmri serve --model FILE [--host 127.0.0.1] [--port 8080]\n\n"
                 "Serves a page on which a user uploads an MRI slice and sees its class, the probability of each\n"
                 "class and the explanation map, and the JSON API behind it: POST /api/predict, GET /api/model,\n"
                 "GET /api/health (docs/serve.md). Images are preprocessed as brainmri-prep packed the training\n"
                 "data. SIGTERM or Ctrl-C stops it after the requests in progress are answered.\n\n"
              << options << "\n";
    return kExitOk;
  }
  if (!vm.count("model")) throw UsageError("serve needs --model");
  serve::ServerOptions server;
  server.host = vm["host"].as<std::string>();
  server.port = vm["port"].as<int>();
  server.threads = vm["threads"].as<int>();
  server.max_batch = vm["max-batch"].as<int>();
  const double upload_mb = vm["max-upload-mb"].as<double>();
  if (server.port < 0 || server.port > 65535) throw UsageError("--port must be 0..65535");
  if (server.threads < 1) throw UsageError("--threads must be at least 1");
  if (server.max_batch < 1) throw UsageError("--max-batch must be at least 1");
  if (vm["max-waiting"].as<int>() < 1) throw UsageError("--max-waiting must be at least 1");
  if (!(upload_mb > 0) || upload_mb > 1024) throw UsageError("--max-upload-mb must be in (0, 1024]");
  server.max_pending = static_cast<std::size_t>(vm["max-waiting"].as<int>());
  server.max_upload_bytes = static_cast<std::size_t>(upload_mb * 1e6);
  const double megapixels = vm["max-megapixels"].as<double>();
  if (!(megapixels > 0) || megapixels > 10000) throw UsageError("--max-megapixels must be in (0, 10000]");
  server.max_pixels = static_cast<std::int64_t>(megapixels * 1e6);

  install_stop_handlers();  // before the model loads, which can take a while
  if (vm["torch-threads"].as<int>() > 0) torch::set_num_threads(vm["torch-threads"].as<int>());
  auto load = inference_load_options(vm);
  const auto device = vm["device"].as<std::string>();
  if (device == "cuda" || (device == "auto" && torch::cuda::is_available())) {
    if (!torch::cuda::is_available()) throw UsageError("--device cuda, but LibTorch sees no GPU");
    load.device = torch::kCUDA;
  } else if (device != "cpu" && device != "auto") {
    throw UsageError("--device must be cpu, cuda or auto");
  }
  const auto model = load_inference_model(vm["model"].as<std::string>(), load);

  std::mutex log_mutex;
  const bool quiet = vm["quiet"].as<bool>();
  serve::PredictionServer http(*model, server, [&](const std::string& line) {
    if (quiet) return;
    std::lock_guard lock(log_mutex);
    std::cerr << "[" << timestamp() << "] " << line << "\n";
  });
  const int port = http.bind();
  std::thread stopper([&] {
    char signal_number = 0;
    if (read(stop_pipe[0], &signal_number, 1) == 1 && signal_number != 0) {
      std::lock_guard lock(log_mutex);
      std::cerr << "brainmri serve: " << (signal_number == SIGINT ? "interrupted" : "SIGTERM")
                << ": answering the requests in progress, then stopping\n";
    }
    http.stop();
  });
  const bool loopback = server.host == "127.0.0.1" || server.host == "localhost" || server.host == "::1";
  if (!loopback) {
    std::cerr << "brainmri serve: warning: listening on " << server.host
              << ", reachable from other machines; the server has no authentication and no TLS\n";
  }
  std::cout << "brainmri serve: listening on http://" << (server.host == "0.0.0.0" ? "127.0.0.1" : server.host) << ":"
            << port << "/ (" << model->name() << " " << model->version() << ", " << model->class_names().size()
            << " classes, "
            << (model->can_explain() ? explain::display_name(model->method()) + " of " + model->explained_layer()
                                     : std::string("no explanations"))
            << "); Ctrl-C stops it" << std::endl;
  http.serve();
  // Served to the end: wake the stop thread if no signal did.
  const char none = 0;
  [[maybe_unused]] const auto written = write(stop_pipe[1], &none, 1);
  stopper.join();
  std::cerr << "brainmri serve: stopped" << std::endl;
  return kExitOk;
}

}  // namespace brainmri::cli
