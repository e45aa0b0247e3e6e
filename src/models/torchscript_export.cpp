#include "brainmri/models/torchscript_export.hpp"

#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/csrc/jit/passes/fixup_trace_scope_blocks.h>
#include <torch/csrc/jit/passes/normalize_ops.h>
#include <torch/script.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "brainmri/common/atomic_file.hpp"

namespace brainmri::models {
namespace fs = std::filesystem;

namespace {
// TorchScript attribute names cannot contain the dots of nested module names.
std::string attribute_name(std::string name) {
  std::replace(name.begin(), name.end(), '.', '_');
  return name;
}
}  // namespace

void export_torchscript(Classifier& model, const fs::path& file) {
  const bool was_training = model.is_training();
  model.eval();
  const auto& options = model.options();
  const auto parameters = model.parameters();
  const auto device = parameters.empty() ? torch::Device(torch::kCPU) : parameters.front().device();

  // The trained tensors become attributes of a TorchScript module; tracing the C++ forward with
  // that module as `self` records reads of those attributes instead of constants.
  torch::jit::Module exported("__torch__.brainmri." + model.model_name());
  for (const auto& p : model.named_parameters()) exported.register_parameter(attribute_name(p.key()), p.value(), false);
  for (const auto& b : model.named_buffers()) exported.register_buffer(attribute_name(b.key()), b.value());

  const auto example = torch::rand({2, options.input_channels, options.image_size, options.image_size},
                                   torch::TensorOptions().device(device));
  try {
    auto traced = torch::jit::tracer::trace(
        {example},
        [&](torch::jit::Stack inputs) -> torch::jit::Stack { return {model.forward(inputs.at(0).toTensor())}; },
        [](const torch::autograd::Variable&) { return std::string(); }, /*strict=*/true, /*force_outplace=*/false,
        &exported);
    auto graph = traced.first->graph;
    torch::jit::FixupTraceScopeBlocks(graph, &exported);
    torch::jit::NormalizeOps(graph);
    auto method = exported._ivalue()->compilation_unit()->create_function(
        c10::QualifiedName(*exported.type()->name(), "forward"), graph);
    exported.type()->addMethod(method);
  } catch (const c10::Error& e) {
    model.train(was_training);
    throw std::runtime_error("cannot trace " + model.model_name() + " for TorchScript: " + e.what_without_backtrace());
  }
  model.train(was_training);
  // The module shares the model's tensors; it gets CPU copies of its own, so the model stays
  // where it is.
  for (const auto& p : model.named_parameters()) {
    exported.setattr(attribute_name(p.key()),
                     p.value().detach().to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true));
  }
  for (const auto& b : model.named_buffers()) {
    exported.setattr(attribute_name(b.key()),
                     b.value().detach().to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true));
  }
  exported.eval();

  replace_file_atomically(file, [&](const fs::path& temporary) {
    try {
      exported.save(temporary.string());
    } catch (const c10::Error& e) {
      throw std::runtime_error("cannot write " + file.string() + ": " + e.what_without_backtrace());
    }
  });
}

}  // namespace brainmri::models
