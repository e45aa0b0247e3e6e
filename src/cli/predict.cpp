// brainmri predict: classify image files with a trained model, decoded and preprocessed by the
// code path brainmri-prep packs with (imaging/preprocess), optionally with Grad-CAM overlays.

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/script.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/explain/gradcam.hpp"
#include "brainmri/imaging/preprocess.hpp"
#include "training_command.hpp"

namespace brainmri::cli {
namespace {

// The class names saved next to a checkpoint (the run's evaluation), else "class K".
std::vector<std::string> class_names_near(const fs::path& model_file, int count) {
  for (const auto* evaluation : {"validation", "test"}) {
    const auto metrics = model_file.parent_path() / evaluation / "metrics.json";
    if (!fs::exists(metrics)) continue;
    const auto parsed = json::parse(std::ifstream(metrics), nullptr, false);
    if (parsed.is_object() && parsed.contains("class_names") && static_cast<int>(parsed["class_names"].size()) == count) {
      return parsed["class_names"].get<std::vector<std::string>>();
    }
  }
  std::vector<std::string> names;
  for (int k = 0; k < count; ++k) names.push_back("class " + std::to_string(k));
  return names;
}

// The overlay PNG: the preprocessed slice in grey with the map in the inferno colour map,
// enlarged to about 384 pixels.
void write_overlay(const cv::Mat& slice, const torch::Tensor& map, const fs::path& file) {
  cv::Mat grey = imaging::to_uint8(slice);
  if (grey.channels() == 3) cv::cvtColor(grey, grey, cv::COLOR_RGB2GRAY);
  const auto m = (map.cpu().contiguous() * 255.0).round().clamp(0, 255).to(torch::kUInt8);
  cv::Mat heat(static_cast<int>(m.size(0)), static_cast<int>(m.size(1)), CV_8UC1, m.data_ptr<std::uint8_t>());
  cv::Mat coloured, base, blended;
  cv::applyColorMap(heat, coloured, cv::COLORMAP_INFERNO);
  cv::cvtColor(grey, base, cv::COLOR_GRAY2BGR);
  cv::addWeighted(base, 0.55, coloured, 0.45, 0.0, blended);
  // Shown larger than the network's input, so that a reader can see it; pixels stay square.
  const int scale = std::max(1, 384 / std::max(1, blended.cols));
  if (scale > 1) cv::resize(blended, blended, cv::Size(), scale, scale, cv::INTER_CUBIC);
  std::vector<std::uint8_t> png;
  if (!cv::imencode(".png", blended, png)) throw std::runtime_error("cannot encode " + file.string());
  write_file_atomically(file, std::string(png.begin(), png.end()));
}

}  // namespace

int run_predict(int argc, const char* const argv[]) {
  po::options_description options("brainmri predict");
  // clang-format off
  options.add_options()
    ("help,h", "show this help and exit")
    ("model", po::value<std::string>(), "model.pt (or any checkpoint) of brainmri train/cv, or a TorchScript export (model.torchscript.pt)")
    ("image", po::value<std::vector<std::string>>(), "image files (positional, one or more)")
    ("json", po::bool_switch(), "print JSON instead of a table")
    ("gradcam", po::value<std::string>()->default_value(""), "write an explanation overlay PNG per image into this directory (checkpoints only)")
    ("method", po::value<std::string>()->default_value("hirescam"), "explanation method: hirescam, gradcam or gradcam++ (docs/reports.md: which passes which check)")
    ("layer", po::value<std::string>()->default_value(""), "explained layer (default: the model's last convolution; docs/reports.md lists the names)")
    ("resize", po::value<std::string>()->default_value("stretch"), "as the training data was packed: stretch or pad")
    ("size", po::value<int>()->default_value(128), "TorchScript exports: the input size they were trained at")
    ("channels", po::value<int>()->default_value(1), "TorchScript exports: input channels (1 or 3)")
    ("threads", po::value<int>()->default_value(0), "CPU threads for LibTorch (0: its default)");
  // clang-format on
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
  const auto method = [&] {
    try {
      return explain::cam_method_from_string(vm["method"].as<std::string>());
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
  }();
  imaging::PreprocessOptions preprocess;
  try {
    preprocess.resize = imaging::parse_resize_mode(vm["resize"].as<std::string>());
  } catch (const std::exception& e) {
    throw UsageError(e.what());
  }

  // A brainmri checkpoint, or else a TorchScript export.
  models::ClassifierPtr model;
  std::optional<torch::jit::Module> exported;
  std::string checkpoint_error;
  try {
    model = training::load_model_from_checkpoint(model_file, torch::kCPU);
  } catch (const std::exception& e) {
    checkpoint_error = e.what();
  }
  if (!model) {
    try {
      exported = torch::jit::load(model_file.string());
    } catch (const c10::Error&) {
      throw std::runtime_error(checkpoint_error + "; nor is it a TorchScript export");
    }
  }
  int class_count = 0;
  if (model) {
    try {
      model->set_explained_layer(vm["layer"].as<std::string>());
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--layer: ") + e.what());
    }
    model->eval();
    preprocess.size = model->options().image_size;
    preprocess.channels = model->options().input_channels;
    class_count = model->options().num_classes;
  } else {
    exported->eval();
    preprocess.size = vm["size"].as<int>();
    preprocess.channels = vm["channels"].as<int>();
    torch::NoGradGuard no_grad;
    class_count = static_cast<int>(
        exported->forward({torch::zeros({1, preprocess.channels, preprocess.size, preprocess.size})}).toTensor().size(1));
  }
  const auto names = class_names_near(model_file, class_count);
  const fs::path overlays = vm["gradcam"].as<std::string>();
  if (!overlays.empty()) {
    if (!model) throw UsageError("--gradcam needs a brainmri checkpoint (a TorchScript export has no activations to explain)");
    fs::create_directories(overlays);
  }

  json results = json::array();
  int failures = 0;
  for (const auto& image : vm["image"].as<std::vector<std::string>>()) {
    json entry = {{"file", image}};
    try {
      const auto pixels = imaging::preprocess(imaging::decode_image_file(image), preprocess).pixels;
      cv::Mat as_float;
      pixels.convertTo(as_float, CV_32F, pixels.depth() == CV_8U ? 1.0 / 255.0 : 1.0);
      auto tensor = torch::from_blob(as_float.data, {1, preprocess.size, preprocess.size, preprocess.channels}, torch::kFloat32)
                        .permute({0, 3, 1, 2})
                        .contiguous();
      torch::Tensor probabilities;
      {
        torch::NoGradGuard no_grad;
        const auto logits = model ? model->forward(tensor) : exported->forward({tensor}).toTensor();
        probabilities = torch::softmax(logits, 1)[0];
      }
      const auto predicted = probabilities.argmax().item<std::int64_t>();
      entry["prediction"] = names[static_cast<std::size_t>(predicted)];
      entry["probabilities"] = json::object();
      for (int k = 0; k < class_count; ++k) entry["probabilities"][names[static_cast<std::size_t>(k)]] = probabilities[k].item<double>();
      if (!overlays.empty()) {
        const auto cam = explain::class_activation_maps(*model, tensor, std::nullopt, method);
        const auto file = overlays / (fs::path(image).stem().string() + "_gradcam.png");
        write_overlay(pixels, cam.maps[0], file);
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
