// Communication benchmarks of brainmri's distributed layer, run under mpirun.
//
//   allreduce_bench bandwidth [--backend mpi|nccl] [--min-bytes 4096] [--max-bytes 67108864] [--iterations 20]
//     all-reduce (average, float32) time per message size, with algorithm bandwidth (bytes/time)
//     and bus bandwidth (bytes/time x 2(n-1)/n, the convention of nccl-tests: comparable across
//     world sizes). One JSON line per size, from rank 0.
//   allreduce_bench step [--model baseline_cnn] [--batch 32] [--steps 10] [--warmup 3] [--overlap 1]
//     time of a full data-parallel train step (forward, backward with the gradient reducer,
//     Adam) at a fixed per-rank batch on random data; run with -np 1 and -np 2 to see the cost of
//     distribution. One JSON line from rank 0.

#include <torch/torch.h>

#include <chrono>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "brainmri/distributed/communicator.hpp"
#include "brainmri/distributed/gradient_reducer.hpp"
#include "brainmri/distributed/mpi_environment.hpp"
#include "brainmri/models/classifier.hpp"

using namespace brainmri;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

int bandwidth(distributed::Communicator& world, const torch::Device& device, std::map<std::string, std::string>& args) {
  const auto min_bytes = std::stoll(args.try_emplace("--min-bytes", "4096").first->second);
  const auto max_bytes = std::stoll(args.try_emplace("--max-bytes", "67108864").first->second);
  const int iterations = std::stoi(args.try_emplace("--iterations", "20").first->second);
  const int n = world.size();
  for (auto bytes = min_bytes; bytes <= max_bytes; bytes *= 4) {
    auto buffer = torch::ones({bytes / 4}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
    for (int i = 0; i < 3; ++i) world.allreduce(buffer, distributed::ReduceOp::Average, "warm-up");
    synchronize(device);
    world.barrier("start");
    const auto start = Clock::now();
    for (int i = 0; i < iterations; ++i) world.allreduce(buffer, distributed::ReduceOp::Average, "timed");
    synchronize(device);
    const double per_call = seconds_since(start) / iterations;
    // The slowest rank's time is the collective's time.
    auto slowest = torch::tensor({per_call}, torch::kFloat64);
    if (device.is_cuda()) slowest = slowest.to(device);
    world.allreduce(slowest, distributed::ReduceOp::Sum, "gather times");  // only to keep ranks in step
    if (world.rank() == 0) {
      const double algorithm_bandwidth = static_cast<double>(bytes) / per_call / 1e9;
      std::cout << nlohmann::json{{"benchmark", "allreduce"},
                                  {"backend", world.backend()},
                                  {"ranks", n},
                                  {"bytes", bytes},
                                  {"microseconds", per_call * 1e6},
                                  {"algorithm_gb_per_s", algorithm_bandwidth},
                                  {"bus_gb_per_s", algorithm_bandwidth * 2.0 * (n - 1) / std::max(1, n)}}
                       .dump()
                << std::endl;
    }
  }
  return 0;
}

int step(distributed::Communicator& world, const torch::Device& device, std::map<std::string, std::string>& args) {
  const auto model_name = args.try_emplace("--model", "baseline_cnn").first->second;
  const auto batch = std::stoll(args.try_emplace("--batch", "32").first->second);
  const int steps = std::stoi(args.try_emplace("--steps", "10").first->second);
  const int warmup = std::stoi(args.try_emplace("--warmup", "3").first->second);
  const bool overlap = args.try_emplace("--overlap", "1").first->second == "1";
  torch::manual_seed(0);
  auto model = models::create_model(model_name, models::ModelOptions{});
  model->to(device);
  model->train();
  models::use_channels_last(*model);
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-3));
  distributed::ReducerOptions reducer_options;
  reducer_options.overlap = overlap;
  std::unique_ptr<distributed::GradientReducer> reducer;
  if (world.size() > 1)
    reducer = std::make_unique<distributed::GradientReducer>(model->parameters(), world, reducer_options);
  const auto images = torch::rand({batch, 1, 128, 128}, torch::TensorOptions().device(device))
                          .contiguous(torch::MemoryFormat::ChannelsLast);
  const auto labels = torch::randint(0, 4, {batch}, torch::TensorOptions().dtype(torch::kInt64).device(device));
  auto train_step = [&](int s) {
    optimizer.zero_grad();
    const auto loss = torch::nn::functional::cross_entropy(model->forward(images), labels);
    if (reducer) reducer->prepare("bench step " + std::to_string(s));
    loss.backward();
    if (reducer) reducer->finish();
    optimizer.step();
  };
  for (int s = 0; s < warmup; ++s) train_step(s);
  synchronize(device);
  world.barrier("start");
  const auto start = Clock::now();
  for (int s = 0; s < steps; ++s) train_step(s);
  synchronize(device);
  const double per_step = seconds_since(start) / steps;
  std::int64_t gradient_bytes = 0;
  for (const auto& p : model->parameters()) gradient_bytes += p.numel() * 4;
  if (world.rank() == 0) {
    std::cout << nlohmann::json{{"benchmark", "step"},
                                {"backend", world.backend()},
                                {"ranks", world.size()},
                                {"model", model_name},
                                {"batch_per_rank", batch},
                                {"threads_per_rank", torch::get_num_threads()},
                                {"overlap", overlap},
                                {"buckets", reducer ? static_cast<int>(reducer->buckets().size()) : 0},
                                {"gradient_mib", static_cast<double>(gradient_bytes) / (1 << 20)},
                                {"milliseconds_per_step", per_step * 1e3},
                                {"images_per_second", static_cast<double>(batch * world.size()) / per_step}}
                     .dump()
              << std::endl;
  }
  return 0;
}

}  // namespace

int main(int argc, char* argv[]) {
  distributed::MpiEnvironment environment(&argc, &argv);
  const std::string mode = argc > 1 ? argv[1] : "";
  std::map<std::string, std::string> args;
  for (int i = 2; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
  const auto backend = args.try_emplace("--backend", "mpi").first->second;
  const int threads = std::stoi(args.try_emplace("--threads", "1").first->second);
  torch::set_num_threads(threads);
  torch::set_num_interop_threads(1);
  const torch::Device device =
      backend == "nccl" ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(environment.local_rank()))
                        : torch::Device(torch::kCPU);
  try {
    auto world = distributed::make_communicator(
        environment, parse_enum<distributed::Backend>(environment.size() > 1 || backend == "nccl" ? backend : "local"),
        device);
    if (mode == "bandwidth") return bandwidth(*world, device, args);
    if (mode == "step") return step(*world, device, args);
  } catch (const std::exception& e) {
    std::cerr << environment.log_prefix() << "allreduce_bench: " << e.what() << "\n";
    return 1;
  }
  std::cerr
      << "usage: allreduce_bench bandwidth|step [--option value ...] (see the comment at the top of the source)\n";
  return 2;
}
