// brainmri serve: the web page and JSON API of a trained model (docs/serve.md).

#include <ctime>
#include <iostream>
#include <mutex>

#include "brainmri/common/log.hpp"
#include "brainmri/serve/stop_signals.hpp"
#include "inference_options.hpp"
#include "training_command.hpp"

namespace brainmri::cli {

int run_serve(int argc, const char* const argv[]) {
  std::vector<Section> sections = {Section("brainmri serve")};
  // clang-format off
  sections.back().options.add_options()
    ("help,h", "show this help and exit")
    ("config", po::value<std::string>(), "INI file with any of these options")
    ("model", po::value<std::vector<std::string>>()->multitoken(), "model.pt (or any checkpoint) of brainmri train/cv, or a TorchScript export (required); several checkpoints: their ensemble, the mean of their probabilities (e.g. runs/cv/fold-*/model.pt)")
    ("device", po::value<std::string>()->default_value("cpu"), "cpu, cuda or auto")
    ("torch-threads", po::value<int>()->default_value(0), "CPU threads of the model (0: LibTorch's default)")
    ("quiet", po::bool_switch(), "no line per request on stderr");
  // clang-format on
  add_log_level_option(sections.back().options);
  add_options(sections, serve::server_options());
  auto options = combined("brainmri serve", sections);
  add_model_loading_options(options);
  const auto vm = parse_with_config(argc, argv, options, nullptr, {"model"});
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
  apply_options(vm, serve::server_options(), server);
  serve::validate(server);
  auto load = model_loading_options(vm);
  serve::install_stop_signal_handlers();  // before the model loads, which can take a while
  if (vm["torch-threads"].as<int>() > 0) torch::set_num_threads(vm["torch-threads"].as<int>());
  load.device = choose_device(parse_choice<distributed::DeviceChoice>("device", vm["device"].as<std::string>()));
  const auto& model_names = vm["model"].as<std::vector<std::string>>();
  const auto model =
      inference::InferenceModel::load(std::vector<std::filesystem::path>(model_names.begin(), model_names.end()), load);

  const bool quiet = vm["quiet"].as<bool>();
  serve::PredictionServer http(*model, server, [&](const std::string& line) {
    if (!quiet) logging::info(line);  // a line per request
  });
  const int port = http.bind();
  const bool loopback = server.host == "127.0.0.1" || server.host == "localhost" || server.host == "::1";
  if (!loopback) {
    logging::warning("brainmri serve: listening on " + server.host +
                     ", reachable from other machines; the server has no authentication and no TLS");
  }
  std::cout << "brainmri serve: listening on http://" << (server.host == "0.0.0.0" ? "127.0.0.1" : server.host) << ":"
            << port << "/ (" << model->name() << " " << model->version() << ", " << model->class_names().size()
            << " classes, "
            << (model->can_explain() ? explain::display_name(model->method()) + " of " + model->explained_layer()
                                     : std::string("no explanations"))
            << "); Ctrl-C stops it" << std::endl;
  serve::serve_until_stop_signal(http, [](const std::string& line) { logging::info("brainmri serve: " + line); });
  logging::info("brainmri serve: stopped");
  return kExitOk;
}

}  // namespace brainmri::cli
