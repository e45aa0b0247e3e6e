#pragma once
// What `brainmri predict` and `brainmri serve` share: the options that load a model for new images
// (explanation method and layer, resize mode, the input of a TorchScript export) and their checks.

#include <filesystem>
#include <memory>

#include "brainmri/inference/inference_model.hpp"
#include "options.hpp"

namespace brainmri::cli {

po::options_description inference_options();
// UsageError for a bad --method or --resize.
inference::LoadOptions inference_load_options(const po::variables_map& vm);
// UsageError for a bad --layer; std::runtime_error for a file that is not a model.
std::unique_ptr<inference::InferenceModel> load_inference_model(const std::filesystem::path& file,
                                                                const inference::LoadOptions& options);

}  // namespace brainmri::cli
