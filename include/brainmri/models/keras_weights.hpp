#pragma once
// Loads weights saved by Keras (model.save_weights(...h5), the layout of the files that
// keras.applications downloads) into a model whose module names are the Keras layer names.

#include <filesystem>
#include <stdexcept>
#include <string>

#include "brainmri/models/classifier.hpp"

namespace brainmri::models {

class WeightsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct KerasLoadReport {
  int layers_loaded = 0;
  int tensors_loaded = 0;
  std::vector<std::string> skipped_layers;  // in the file, deliberately not loaded (the classifier)
};

// Every weight-carrying layer of the file must exist in `model` with the same shapes, and every
// Keras-named module of the model's backbone must be in the file; the first mismatch throws
// WeightsError naming the layer, the tensor and both shapes. The file's ImageNet classifier
// ("Logits"/"predictions") is skipped: our head is our own. Conv kernels are converted from
// Keras' HWIO to OIHW, depthwise kernels from (H, W, C, 1) to (C, 1, H, W).
KerasLoadReport load_keras_weights(Classifier& model, const std::filesystem::path& file);

}  // namespace brainmri::models
