// Training throughput of brainmri's models and train step (the same ops as Trainer::fit:
// forward, cross-entropy, backward, fused Adam step) on random 128x128 data.
//
//   train_step_bench --model mobilenet_v2 --batch 32 --steps 20 --warmup 3 --threads 2
// Prints one JSON line: {"model":..., "images_per_second":..., ...}.

#include <torch/torch.h>

#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "brainmri/common/heap.hpp"
#include "brainmri/models/classifier.hpp"
#include "brainmri/training/augmentation.hpp"
#include "brainmri/training/fused_adam.hpp"

int main(int argc, char* argv[]) {
  std::string model_name = "mobilenet_v2";
  std::int64_t batch = 32;
  int steps = 20, warmup = 3, threads = 0;
  bool channels_last = false;
  bool augment = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--model")
      model_name = value;
    else if (key == "--batch")
      batch = std::stoll(value);
    else if (key == "--steps")
      steps = std::stoi(value);
    else if (key == "--warmup")
      warmup = std::stoi(value);
    else if (key == "--threads")
      threads = std::stoi(value);
    else if (key == "--augment")
      augment = std::stoi(value) != 0;
    else if (key == "--channels-last")
      channels_last = value == "1";
    else {
      std::cerr << "unknown option " << key << "\n";
      return 2;
    }
  }
  if (threads > 0) {
    torch::set_num_threads(threads);
    torch::set_num_interop_threads(1);
  }
  brainmri::keep_freed_memory_for_reuse();  // as the trainer does on a CPU
  torch::manual_seed(0);
  brainmri::models::ModelOptions options;
  auto model = brainmri::models::create_model(model_name, options);
  model->train();
  if (channels_last) brainmri::models::use_channels_last(*model);
  // The trainer's default optimizer on CPUs and GPUs (--fused-optimizer auto).
  brainmri::training::FusedAdam optimizer(model->parameters(), torch::optim::AdamOptions(1e-3), false);
  auto images = torch::rand({batch, 1, 128, 128});
  if (channels_last) images = brainmri::models::as_channels_last(images);
  const auto labels = torch::randint(0, 4, {batch}, torch::kInt64);
  const brainmri::training::BatchAugmenter augmenter(brainmri::training::AugmentationOptions{});
  std::uint64_t augmentation_stream = 0;
  auto step = [&] {
    auto batch_images = images;
    if (augment) {  // as the trainer does: augment the stored batch, then channels-last
      batch_images = augmenter.apply(images.contiguous(), ++augmentation_stream);
      if (channels_last) batch_images = brainmri::models::as_channels_last(batch_images);
    }
    optimizer.zero_grad();
    const auto loss = torch::nn::functional::cross_entropy(model->forward(batch_images), labels);
    loss.backward();
    optimizer.step();
  };
  for (int i = 0; i < warmup; ++i) step();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << nlohmann::json{{"implementation", augment ? "brainmri C++, augmented" : "brainmri C++"},
                              {"model", model_name},
                              {"batch", batch},
                              {"steps", steps},
                              {"threads", torch::get_num_threads()},
                              {"images_per_second", static_cast<double>(batch * steps) / seconds}}
                   .dump()
            << std::endl;
  return 0;
}
