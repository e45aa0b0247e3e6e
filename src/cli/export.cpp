// brainmri export: a trained model for use outside brainmri (TorchScript, safetensors + JSON).

#include "brainmri/models/export.hpp"

#include <iostream>

#include "training_command.hpp"

namespace brainmri::cli {

int run_export(int argc, const char* const argv[]) {
  po::options_description options("brainmri export");
  // clang-format off
  options.add_options()
    ("help,h", "show this help and exit")
    ("model", po::value<std::string>(), "a checkpoint written by brainmri train, cv or tune (model.pt, *_best.pt, final/model.pt; positional)")
    ("format", po::value<std::string>()->default_value("all"), "torchscript (model.torchscript.pt), safetensors (model.safetensors + model.json) or all")
    ("output", po::value<std::string>(), "directory for the exported files (required)");
  // clang-format on
  add_log_level_option(options);
  po::positional_options_description positional;
  positional.add("model", 1);
  const auto vm = parse_with_config(argc, argv, options, &positional);
  if (vm.count("help")) {
    std::cout << "Usage: brainmri export MODEL --output DIR [--format torchscript|safetensors|all]\n\n"
                 "torchscript: a module torch.jit.load runs without brainmri (float images [N, C, H, W] in [0, 1] ->\n"
                 "logits). safetensors: the weights under the names of python/brainmri_models.py's plain-PyTorch\n"
                 "definition, and model.json (architecture, classes, preprocessing, provenance) to build it from:\n"
                 "  import brainmri_models; module, meta = brainmri_models.load('DIR/model.safetensors')\n"
                 "then torch.export or tools/export_onnx.py for ONNX (docs/models.md).\n\n"
              << options << "\n";
    return kExitOk;
  }
  if (!vm.count("model") || !vm.count("output")) throw UsageError("export needs a model and --output");
  const auto format = parse_choice<models::ExportFormat>("format", vm["format"].as<std::string>());
  const auto written = models::export_model(vm["model"].as<std::string>(), format, vm["output"].as<std::string>());
  for (const auto& file : written) std::cout << "Wrote " << file.string() << "\n";
  return kExitOk;
}

}  // namespace brainmri::cli
