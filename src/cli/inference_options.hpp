#pragma once
// What `brainmri predict` and `brainmri serve` share: the options that load a model for new
// images (the library's table: explanation method and layer, resize mode, TorchScript input).

#include "brainmri/inference/inference_model.hpp"
#include "options.hpp"

namespace brainmri::cli {

inline void add_model_loading_options(po::options_description& options) {
  std::vector<Section> sections;
  add_options(sections, inference::model_loading_options());
  options.add(sections.front().options);
}

inline inference::LoadOptions model_loading_options(const po::variables_map& vm) {
  inference::LoadOptions load;
  apply_options(vm, inference::model_loading_options(), load);
  return load;
}

}  // namespace brainmri::cli
