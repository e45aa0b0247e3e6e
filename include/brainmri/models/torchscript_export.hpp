#pragma once
// Exports a trained Classifier as a TorchScript module for inference: a file that
// torch::jit::load (C++) or torch.jit.load (Python) runs without brainmri. forward takes float
// images in [0, 1] of shape [N, C, H, W] (C, H, W of the training data) and returns the logits;
// the model's own input adaptation (channel replication, ImageNet scaling) is part of it.

#include <filesystem>

#include "brainmri/models/classifier.hpp"

namespace brainmri::models {

// Traces model.forward in inference mode on the model's device and writes the module, on the CPU,
// to `file` (through a temporary file and a rename). The model is left in the mode it was in.
// Throws std::runtime_error if tracing or writing fails.
void export_torchscript(Classifier& model, const std::filesystem::path& file);

}  // namespace brainmri::models
