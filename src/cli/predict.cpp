// brainmri predict: classify image files with a trained model, decoded and preprocessed by the
// code path brainmri-prep packs with (imaging/preprocess), optionally with explanation overlays.

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "inference_options.hpp"
#include "training_command.hpp"

namespace brainmri::cli {

namespace fs = std::filesystem;
using nlohmann::json;

int run_predict(int argc, const char* const argv[]) {
  po::options_description options("brainmri predict");
  // clang-format off
  options.add_options()
    ("help,h", "show this help and exit")
    ("model", po::value<std::vector<std::string>>()->composing(), "model.pt (or any checkpoint) of brainmri train/cv, or a TorchScript export (model.torchscript.pt); several checkpoints (--model repeated, or files ending in .pt among the arguments, as `--model runs/cv/fold-*/model.pt` expands): their ensemble, the mean of their probabilities")
    ("image", po::value<std::vector<std::string>>(), "image files (positional, one or more; arguments ending in .pt are models)")
    ("json", po::bool_switch(), "print JSON instead of a table")
    ("gradcam", po::value<std::string>()->default_value(""), "write an explanation overlay PNG per image into this directory (checkpoints only)")
    ("threads", po::value<int>()->default_value(0), "CPU threads for LibTorch (0: its default)");
  // clang-format on
  add_log_level_option(options);
  add_model_loading_options(options);
  po::positional_options_description positional;
  positional.add("image", -1);
  const auto vm = parse_with_config(argc, argv, options, &positional);
  if (vm.count("help")) {
    std::cout << "Usage: brainmri predict --model FILE [FILE.pt ...] IMAGE [IMAGE ...] [--json] [--gradcam DIR]\n\n"
                 "Decodes and preprocesses each image exactly as brainmri-prep does, then prints the class\n"
                 "probabilities. An unreadable or corrupt image is reported and the others go on; the exit code is\n"
                 "1 if any image failed. Several --model files are an ensemble (the mean of their probabilities,\n"
                 "each with its stored temperature); --tta averages over views of each image.\n\n"
              << options << "\n";
    return kExitOk;
  }
  // A shell glob after --model expands to one --model and more positional files: the files ending
  // in .pt are models (no image format uses it), the others images.
  std::vector<std::string> model_names, images;
  if (vm.count("model")) model_names = vm["model"].as<std::vector<std::string>>();
  if (vm.count("image")) {
    for (const auto& argument : vm["image"].as<std::vector<std::string>>()) {
      (fs::path(argument).extension() == ".pt" ? model_names : images).push_back(argument);
    }
  }
  if (model_names.empty() || images.empty()) throw UsageError("predict needs --model and at least one image");
  if (vm["threads"].as<int>() > 0) torch::set_num_threads(vm["threads"].as<int>());
  const std::vector<fs::path> model_files(model_names.begin(), model_names.end());
  const auto model = inference::InferenceModel::load(model_files, model_loading_options(vm));
  const fs::path overlays = vm["gradcam"].as<std::string>();
  if (!overlays.empty() && !model->can_explain()) {
    throw UsageError("--gradcam needs a brainmri checkpoint (a TorchScript export has no activations to explain)");
  }
  const auto results = inference::classify_files(*model, {images.begin(), images.end()}, overlays);

  const auto& names = model->class_names();
  if (vm["json"].as<bool>()) {
    json entries = json::array();
    for (const auto& result : results) entries.push_back(inference::to_json(result, names));
    json out = {{"model", model_names.front()}, {"classes", names}, {"results", entries}};
    if (model_names.size() > 1) out["ensemble"] = model_names;
    std::cout << out.dump(2) << "\n";
  } else {
    std::printf("%-36s %-14s", "file", "prediction");
    for (const auto& name : names) std::printf(" %12s", name.c_str());
    std::printf("\n");
    for (const auto& result : results) {
      std::printf("%-36s ", result.file.c_str());
      if (!result.error.empty()) {
        std::printf("error: %s\n", result.error.c_str());
        continue;
      }
      std::printf("%-14s", result.predicted_class.c_str());
      for (const double probability : result.probabilities) std::printf(" %12.4f", probability);
      std::printf("%s\n", result.overlay.empty() ? "" : ("  -> " + result.overlay.string()).c_str());
    }
  }
  const auto failures = std::count_if(results.begin(), results.end(), [](const auto& r) { return !r.error.empty(); });
  if (failures > 0) {
    std::fprintf(stderr, "brainmri predict: %td of %zu image(s) could not be classified (see above)\n", failures,
                 results.size());
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace brainmri::cli
