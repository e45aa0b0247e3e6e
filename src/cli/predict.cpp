// brainmri predict: classify image files with a trained model, decoded and preprocessed by the
// code path brainmri-prep packs with (imaging/preprocess), optionally with explanation overlays.

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "brainmri/common/atomic_file.hpp"
#include "inference_options.hpp"
#include "training_command.hpp"

namespace brainmri::cli {

namespace fs = std::filesystem;
using nlohmann::json;

po::options_description inference_options() {
  po::options_description options("model and preprocessing");
  // clang-format off
  options.add_options()
    ("method", po::value<std::string>()->default_value("hirescam"), "explanation method: hirescam, gradcam or gradcam++ (docs/reports.md: which passes which check)")
    ("layer", po::value<std::string>()->default_value(""), "explained layer (default: the model's last convolution; docs/models.md lists the names)")
    ("resize", po::value<std::string>()->default_value("auto"), "auto (as the model's training data was packed: from the checkpoint's model card, or its run's dataset manifest; else stretch), stretch or pad")
    ("size", po::value<int>()->default_value(128), "TorchScript exports: the input size they were trained at")
    ("channels", po::value<int>()->default_value(1), "TorchScript exports: input channels (1 or 3)");
  // clang-format on
  return options;
}

inference::LoadOptions inference_load_options(const po::variables_map& vm) {
  inference::LoadOptions load;
  try {
    load.method = explain::cam_method_from_string(vm["method"].as<std::string>());
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  load.resize = vm["resize"].as<std::string>();
  if (load.resize != "auto" && load.resize != "stretch" && load.resize != "pad") {
    throw UsageError("--resize must be auto, stretch or pad, not '" + load.resize + "'");
  }
  load.explained_layer = vm["layer"].as<std::string>();
  load.export_image_size = vm["size"].as<int>();
  load.export_channels = vm["channels"].as<int>();
  if (load.export_image_size < 8 || load.export_image_size > 4096) throw UsageError("--size must be in 8..4096");
  if (load.export_channels != 1 && load.export_channels != 3) throw UsageError("--channels must be 1 or 3");
  return load;
}

std::unique_ptr<inference::InferenceModel> load_inference_model(const fs::path& file,
                                                                const inference::LoadOptions& options) {
  try {
    return inference::InferenceModel::load(file, options);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--layer: ") + e.what());
  }
}

int run_predict(int argc, const char* const argv[]) {
  po::options_description options("brainmri predict");
  // clang-format off
  options.add_options()
    ("help,h", "show this help and exit")
    ("model", po::value<std::string>(), "model.pt (or any checkpoint) of brainmri train/cv, or a TorchScript export (model.torchscript.pt)")
    ("image", po::value<std::vector<std::string>>(), "image files (positional, one or more)")
    ("json", po::bool_switch(), "print JSON instead of a table")
    ("gradcam", po::value<std::string>()->default_value(""), "write an explanation overlay PNG per image into this directory (checkpoints only)")
    ("threads", po::value<int>()->default_value(0), "CPU threads for LibTorch (0: its default)");
  // clang-format on
  options.add(inference_options());
  po::positional_options_description positional;
  positional.add("image", -1);
  const auto vm = parse_with_config(argc, argv, options, &positional);
  if (vm.count("help")) {
    std::cout << "Usage: brainmri predict --model FILE IMAGE [IMAGE ...] [--json] [--gradcam DIR]\n\n"
                 "Decodes and preprocesses each image exactly as brainmri-prep does, then prints the class\n"
                 "probabilities. An unreadable or corrupt image is reported and the others go on; the exit code is\n"
                 "1 if any image failed.\n\n"
              << options << "\n";
    return kExitOk;
  }
  if (!vm.count("model") || !vm.count("image")) throw UsageError("predict needs --model and at least one image");
  if (vm["threads"].as<int>() > 0) torch::set_num_threads(vm["threads"].as<int>());
  const fs::path model_file = vm["model"].as<std::string>();
  const auto model = load_inference_model(model_file, inference_load_options(vm));
  const auto& names = model->class_names();
  const fs::path overlays = vm["gradcam"].as<std::string>();
  if (!overlays.empty()) {
    if (!model->can_explain())
      throw UsageError("--gradcam needs a brainmri checkpoint (a TorchScript export has no activations to explain)");
    fs::create_directories(overlays);
  }

  json results = json::array();
  int failures = 0;
  for (const auto& image : vm["image"].as<std::vector<std::string>>()) {
    json entry = {{"file", image}};
    try {
      const auto prepared = model->prepare_file(image);
      const auto predictions = model->predict(prepared.input.unsqueeze(0), !overlays.empty());
      const auto probabilities = predictions.probabilities[0];
      const auto predicted = probabilities.argmax().item<std::int64_t>();
      entry["prediction"] = names[static_cast<std::size_t>(predicted)];
      entry["probabilities"] = json::object();
      for (std::size_t k = 0; k < names.size(); ++k) {
        entry["probabilities"][names[k]] = probabilities[static_cast<std::int64_t>(k)].item<double>();
      }
      if (!overlays.empty()) {
        const auto file = overlays / (fs::path(image).stem().string() + "_gradcam.png");
        const auto slice = inference::enlarge_for_display(inference::slice_for_display(prepared.preprocessed.pixels));
        const auto heat = inference::enlarge_for_display(inference::heatmap_for_display(predictions.maps[0]));
        write_file_atomically(file, inference::encode_png(inference::blend(slice, heat, 0.45)));
        entry["gradcam"] = file.string();
      }
    } catch (const std::exception& e) {
      entry["error"] = e.what();
      ++failures;
    }
    results.push_back(entry);
  }

  if (vm["json"].as<bool>()) {
    std::cout << json{{"model", model_file.string()}, {"classes", names}, {"results", results}}.dump(2) << "\n";
  } else {
    std::printf("%-36s %-14s", "file", "prediction");
    for (const auto& n : names) std::printf(" %12s", n.c_str());
    std::printf("\n");
    for (const auto& r : results) {
      const auto file = r["file"].get<std::string>();
      std::printf("%-36s ", file.c_str());
      if (r.contains("error")) {
        std::printf("error: %s\n", r["error"].get<std::string>().c_str());
        continue;
      }
      std::printf("%-14s", r["prediction"].get<std::string>().c_str());
      for (const auto& n : names) std::printf(" %12.4f", r["probabilities"][n].get<double>());
      std::printf("%s\n", r.contains("gradcam") ? ("  -> " + r["gradcam"].get<std::string>()).c_str() : "");
    }
  }
  if (failures > 0) {
    std::fprintf(stderr, "brainmri predict: %d of %zu image(s) could not be classified (see above)\n", failures,
                 results.size());
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace brainmri::cli
