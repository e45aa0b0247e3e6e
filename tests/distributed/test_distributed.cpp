// The distributed layer, run under `mpirun -np 2` and `-np 3` by ctest (and once as a plain
// process, where the tests that need several ranks skip). Every rank runs every test; the
// collectives inside must match across ranks, so a test never returns early on one rank only.

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <memory>

#include "brainmri/common/config_error.hpp"
#include "brainmri/data/sharded_dataset.hpp"
#include "brainmri/distributed/communicator.hpp"
#include "brainmri/distributed/device_selection.hpp"
#include "brainmri/distributed/gradient_reducer.hpp"
#include "brainmri/distributed/mpi_environment.hpp"
#include "brainmri/distributed/sync_batch_norm.hpp"
#include "brainmri/models/classifier.hpp"
#include "brainmri/training/data_loader.hpp"
#include "brainmri/training/trainer.hpp"
#include "synthetic_dataset.hpp"

namespace fs = std::filesystem;
using namespace brainmri;
using distributed::ReduceOp;

namespace {
distributed::MpiEnvironment* environment = nullptr;
}  // namespace

namespace brainmri::testing {
distributed::MpiEnvironment& mpi_environment() { return *environment; }
}  // namespace brainmri::testing

namespace {

std::unique_ptr<distributed::Communicator> make_world() {
  // A short timeout: a test that desynchronizes the ranks fails within seconds instead of
  // hanging until ctest's limit.
  return distributed::make_communicator(*environment, distributed::Backend::Auto, torch::kCPU,
                                        {std::chrono::seconds(60)});
}

#define REQUIRE_SEVERAL_RANKS(world) \
  if ((world).size() < 2) GTEST_SKIP() << "needs mpirun -np 2 or more"

double relative_difference(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).norm().item<double>() / std::max(1e-30, b.norm().item<double>());
}

}  // namespace

// --- Device selection: a GPU machine whose CUDA is unusable must not train on the CPU silently ---

TEST(DeviceSelection, CpuMachinesAreNotWarnedAbout) {
  distributed::CudaProbe cpu_machine;  // no NVIDIA device
  cpu_machine.libtorch_has_cuda = true;
  EXPECT_EQ(distributed::diagnose_cuda(cpu_machine), "");
  distributed::CudaProbe working;
  working.nvidia_device = working.libtorch_has_cuda = true;
  working.usable_devices = 2;
  EXPECT_EQ(distributed::diagnose_cuda(working), "");
}

TEST(DeviceSelection, AnUnusableGpuIsExplained) {
  distributed::CudaProbe old_driver;
  old_driver.nvidia_device = old_driver.libtorch_has_cuda = true;
  old_driver.runtime_error = "CUDA driver version is insufficient for CUDA runtime version";
  old_driver.driver = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  525.60.13";
  const auto why = distributed::diagnose_cuda(old_driver);
  EXPECT_NE(why.find("insufficient"), std::string::npos) << why;
  EXPECT_NE(why.find("525.60.13"), std::string::npos) << why;
  EXPECT_NE(why.find("driver older than the CUDA of the torch build"), std::string::npos) << why;

  auto hidden = old_driver;
  hidden.visible_devices = "";
  EXPECT_NE(distributed::diagnose_cuda(hidden).find("CUDA_VISIBLE_DEVICES='' hides every GPU"), std::string::npos);

  distributed::CudaProbe cpu_build;
  cpu_build.nvidia_device = true;
  EXPECT_NE(distributed::diagnose_cuda(cpu_build).find("built without CUDA"), std::string::npos);
}

TEST(DeviceSelection, CudaRequestedWithoutAUsableGpuFailsWithTheReason) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "this machine has a usable GPU";
  EXPECT_EQ(distributed::pick_device(distributed::DeviceChoice::Cpu, *environment).device, torch::kCPU);
  const auto automatic = distributed::pick_device(distributed::DeviceChoice::Auto, *environment);
  EXPECT_EQ(automatic.device, torch::kCPU);
  // Here: warned about exactly when this machine has an NVIDIA device.
  EXPECT_EQ(automatic.warning.empty(), distributed::diagnose_cuda(distributed::probe_cuda()).empty());
  try {
    distributed::pick_device(distributed::DeviceChoice::Cuda, *environment);
    FAIL() << "--device cuda without a usable GPU must fail";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("cuda, but"), std::string::npos) << e.what();
  }
}

// --- Bucket planning: pure, so tested alone ---------------------------------------------------

TEST(BucketPlan, WalksParametersInReverseAndClosesBucketsAtTheirCaps) {
  // Five float32 parameters of 100, 200, 300, 50 and 400 elements (400 to 1600 bytes).
  std::vector<distributed::ParameterSlot> slots;
  for (const auto n : {100, 200, 300, 50, 400}) slots.push_back({n, torch::kFloat32, "cpu"});
  const auto buckets = distributed::plan_buckets(slots, 1600, 2000);
  ASSERT_EQ(buckets.size(), 3u);
  EXPECT_EQ(buckets[0].parameters, (std::vector<std::size_t>{4}));     // 1600 bytes fill the first cap
  EXPECT_EQ(buckets[1].parameters, (std::vector<std::size_t>{3, 2}));  // 200 + 1200 <= 2000, + 800 > 2000
  EXPECT_EQ(buckets[2].parameters, (std::vector<std::size_t>{1, 0}));
  EXPECT_EQ(buckets[1].offsets, (std::vector<std::int64_t>{0, 50}));
  EXPECT_EQ(buckets[1].numel, 350);
  EXPECT_EQ(buckets[2].bytes, 1200u);
}

TEST(BucketPlan, OversizedParametersStandAloneAndKindsNeverMix) {
  std::vector<distributed::ParameterSlot> slots = {{10, torch::kFloat32, "cpu"},
                                                   {10, torch::kFloat64, "cpu"},
                                                   {1000, torch::kFloat32, "cpu"},
                                                   {10, torch::kFloat32, "cuda:0"},
                                                   {10, torch::kFloat32, "cuda:0"}};
  const auto buckets = distributed::plan_buckets(slots, 128, 256);
  ASSERT_EQ(buckets.size(), 4u);
  EXPECT_EQ(buckets[0].parameters, (std::vector<std::size_t>{4, 3}));  // same device, 80 bytes
  EXPECT_EQ(buckets[1].parameters, (std::vector<std::size_t>{2}));     // 4000 bytes, alone
  EXPECT_EQ(buckets[2].parameters, (std::vector<std::size_t>{1}));     // float64
  EXPECT_EQ(buckets[3].parameters, (std::vector<std::size_t>{0}));
  // Deterministic: the same input gives the same plan (every rank computes it independently).
  const auto again = distributed::plan_buckets(slots, 128, 256);
  for (std::size_t b = 0; b < buckets.size(); ++b) EXPECT_EQ(again[b].parameters, buckets[b].parameters);
}

// --- Collectives against analytic values -------------------------------------------------------

TEST(Collectives, AllreduceSumAndAverageGiveTheAnalyticValueForEveryDtype) {
  auto world = make_world();
  const int n = world->size();
  const double rank_sum = n * (n - 1) / 2.0;  // each rank contributes its rank
  for (const auto dtype :
       {torch::kFloat32, torch::kFloat64, torch::kBFloat16, torch::kInt64, torch::kInt32, torch::kUInt8}) {
    SCOPED_TRACE(c10::toString(dtype));
    auto t = torch::full({1000}, world->rank(), torch::TensorOptions().dtype(dtype));
    world->allreduce(t, ReduceOp::Sum, "sum test");
    EXPECT_TRUE(t.to(torch::kFloat64).eq(rank_sum).all().item<bool>()) << t[0].item<double>();
    if (at::isFloatingType(dtype)) {
      auto a = torch::full({7}, world->rank(), torch::TensorOptions().dtype(dtype));
      world->allreduce(a, ReduceOp::Average, "average test");
      EXPECT_NEAR(a[3].item<double>(), rank_sum / n, dtype == torch::kBFloat16 ? 1e-2 : 1e-12);
    } else {
      EXPECT_THROW(world->allreduce(t, ReduceOp::Average), distributed::CommunicationError);
    }
  }
}

TEST(Collectives, NonContiguousTensorsAreReducedInPlace) {
  auto world = make_world();
  auto base = torch::zeros({4, 6}, torch::kFloat32);
  auto column = base.select(1, 2);  // a strided view
  column.fill_(world->rank() + 1);
  world->allreduce(column, ReduceOp::Sum);
  const double expected = world->size() * (world->size() + 1) / 2.0;
  EXPECT_TRUE(base.select(1, 2).eq(expected).all().item<bool>());
  EXPECT_EQ(base.select(1, 1).abs().sum().item<double>(), 0.0);  // neighbours untouched
}

TEST(Collectives, ManyAsynchronousAllreducesCompleteWithTheirOwnResults) {
  auto world = make_world();
  std::vector<torch::Tensor> tensors;
  std::vector<std::shared_ptr<distributed::Work>> works;
  for (int i = 0; i < 24; ++i) {
    tensors.push_back(torch::full({1 << (i % 12)}, static_cast<double>(i + world->rank()), torch::kFloat64));
    works.push_back(world->allreduce_async(tensors.back(), ReduceOp::Sum, "async " + std::to_string(i)));
  }
  for (int i = 23; i >= 0; --i) {  // waited in reverse: order of waiting must not matter
    works[static_cast<std::size_t>(i)]->wait();
    EXPECT_TRUE(works[static_cast<std::size_t>(i)]->completed());
    const double expected = world->size() * i + world->size() * (world->size() - 1) / 2.0;
    EXPECT_TRUE(tensors[static_cast<std::size_t>(i)].eq(expected).all().item<bool>()) << i;
  }
}

TEST(Collectives, BroadcastFromEveryRoot) {
  auto world = make_world();
  for (int root = 0; root < world->size(); ++root) {
    auto t = torch::full({3, 5}, world->rank() * 10 + 1, torch::kInt64);
    world->broadcast(t, root);
    EXPECT_TRUE(t.eq(root * 10 + 1).all().item<bool>()) << "root " << root;
  }
}

TEST(Collectives, AllgathervConcatenatesUnevenAndEmptySharesInRankOrder) {
  auto world = make_world();
  // Rank r sends r rows (rank 0 none) of [r, r, r].
  const auto mine = torch::full({world->rank(), 3}, world->rank(), torch::kFloat64);
  const auto all = world->allgatherv(mine);
  const int n = world->size();
  ASSERT_EQ(all.size(0), n * (n - 1) / 2);
  ASSERT_EQ(all.size(1), 3);
  std::int64_t row = 0;
  for (int r = 0; r < n; ++r) {
    for (int k = 0; k < r; ++k, ++row) EXPECT_TRUE(all[row].eq(r).all().item<bool>()) << "row " << row;
  }
}

TEST(Collectives, AllgathervRejectsRowsOfDifferentSizes) {
  auto world = make_world();
  REQUIRE_SEVERAL_RANKS(*world);
  const auto mine = torch::zeros({2, world->rank() == 1 ? 4 : 3}, torch::kFloat32);
  try {
    world->allgatherv(mine, "mismatch test");
    FAIL() << "expected a CommunicationError";
  } catch (const distributed::CommunicationError& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 sends rows of 16 bytes"), std::string::npos) << e.what();
  }
}

TEST(Collectives, SplitGivesIndependentGroups) {
  auto world = make_world();
  const int color = world->rank() % 2;
  auto group = world->split(color, world->rank());
  ASSERT_NE(group, nullptr);
  const int expected_size = (world->size() + 1 - color) / 2;
  EXPECT_EQ(group->size(), expected_size);
  EXPECT_EQ(group->rank(), world->rank() / 2);
  auto one = torch::ones({5}, torch::kFloat32);
  group->allreduce(one, ReduceOp::Sum, "group sum");
  EXPECT_TRUE(one.eq(expected_size).all().item<bool>());
  auto nobody = world->split(world->rank() == 0 ? -1 : 0, 0);  // rank 0 joins no group
  EXPECT_EQ(nobody == nullptr, world->rank() == 0);
  world->barrier("after split");
}

// --- Gradient reducer ---------------------------------------------------------------------------

namespace {

// Parameters of assorted sizes whose gradient on rank r is a known random tensor.
struct KnownGradients {
  std::vector<torch::Tensor> parameters;
  std::vector<torch::Tensor> gradients;  // this rank's
  explicit KnownGradients(int rank) {
    torch::manual_seed(1000 + rank);
    for (const auto n : {3, 700, 1, 64, 2048, 9, 300}) {
      parameters.push_back(torch::zeros({n}, torch::requires_grad()));
      gradients.push_back(torch::randn({n}));
    }
  }
  void backward() const {
    auto loss = torch::zeros({});
    for (std::size_t i = 0; i < parameters.size(); ++i) loss = loss + (parameters[i] * gradients[i]).sum();
    loss.backward();
  }
};

}  // namespace

TEST(Reducer, BucketedOverlappedReductionEqualsTheUnbucketedAverage) {
  auto world = make_world();
  for (const bool overlap : {true, false}) {
    SCOPED_TRACE(overlap ? "overlap" : "after backward");
    KnownGradients model(world->rank());
    auto reference = torch::cat(model.gradients).clone();
    world->allreduce(reference, ReduceOp::Average, "reference");

    distributed::ReducerOptions options;
    options.first_bucket_bytes = 64;  // several buckets, one per parameter or two
    options.bucket_bytes = 4096;
    options.overlap = overlap;
    distributed::GradientReducer reducer(model.parameters, *world, options);
    EXPECT_GE(reducer.buckets().size(), 4u);
    for (int step = 0; step < 2; ++step) {  // a second step reuses the buffers
      for (auto& p : model.parameters) p.mutable_grad() = torch::Tensor();
      reducer.prepare("step " + std::to_string(step));
      model.backward();
      reducer.finish();
      std::vector<torch::Tensor> grads;
      for (const auto& p : model.parameters) grads.push_back(p.grad());
      EXPECT_LT(relative_difference(torch::cat(grads), reference), 1e-6);
    }
  }
}

TEST(Reducer, Bf16CompressionIsCloseToTheFullPrecisionAverage) {
  auto world = make_world();
  KnownGradients model(world->rank());
  auto reference = torch::cat(model.gradients).clone();
  world->allreduce(reference, ReduceOp::Average, "reference");
  distributed::ReducerOptions options;
  options.compression = distributed::GradientCompression::Bf16;
  distributed::GradientReducer reducer(model.parameters, *world, options);
  reducer.prepare("bf16 step");
  model.backward();
  reducer.finish();
  std::vector<torch::Tensor> grads;
  for (const auto& p : model.parameters) grads.push_back(p.grad());
  const double difference = relative_difference(torch::cat(grads), reference);
  EXPECT_LT(difference, 1e-2);  // bf16 keeps 8 significant bits
  if (world->size() > 1) {
    EXPECT_GT(difference, 0.0);  // it did compress
  }
}

TEST(Reducer, ParametersWithoutGradientContributeZero) {
  auto world = make_world();
  auto used = torch::zeros({10}, torch::requires_grad());
  auto unused = torch::zeros({10}, torch::requires_grad());
  distributed::GradientReducer reducer({unused, used}, *world, {});
  reducer.prepare("unused step");
  (used * (world->rank() + 1.0)).sum().backward();
  reducer.finish();
  EXPECT_NEAR(used.grad()[0].item<double>(), (world->size() + 1) / 2.0, 1e-6);
  ASSERT_TRUE(unused.grad().defined());
  EXPECT_EQ(unused.grad().abs().sum().item<double>(), 0.0);
}

// K steps of W ranks at batch b equal K steps of one process at batch W*b (same samples, no
// augmentation, no dropout), and after every step the replicas are bit-identical.
TEST(Reducer, RanksTogetherTrainLikeOneProcessWithTheWholeBatch) {
  auto world = make_world();
  REQUIRE_SEVERAL_RANKS(*world);
  const int n = world->size();
  models::ModelOptions options;
  options.num_classes = 4;
  options.image_size = 32;
  options.dropout = 0.0;
  options.dense_units = 16;
  options.filters = {4, 8, 8};
  torch::manual_seed(7 + world->rank());  // different initializations: the broadcast must fix this
  auto replica = models::create_model("baseline_cnn", options);
  distributed::verify_identical_replicas(*replica, *world);
  distributed::broadcast_model_state(*replica, *world);
  auto reference = models::create_model("baseline_cnn", options);  // one process, same start
  {
    torch::NoGradGuard no_grad;
    auto from = replica->parameters();
    auto to = reference->parameters();
    for (std::size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
  }

  torch::optim::Adam replica_optimizer(replica->parameters(), torch::optim::AdamOptions(1e-3));
  torch::optim::Adam reference_optimizer(reference->parameters(), torch::optim::AdamOptions(1e-3));
  distributed::ReducerOptions reducer_options;
  reducer_options.first_bucket_bytes = 1024;
  reducer_options.bucket_bytes = 16 * 1024;
  distributed::GradientReducer reducer(replica->parameters(), *world, reducer_options);
  ASSERT_GE(reducer.buckets().size(), 2u);

  constexpr std::int64_t kPerRank = 6;
  for (int step = 0; step < 4; ++step) {
    torch::manual_seed(100 + step);  // the same global batch on every rank
    const auto images = torch::rand({kPerRank * n, 1, 32, 32});
    const auto labels = torch::randint(0, 4, {kPerRank * n}, torch::kInt64);
    const auto mine = torch::arange(world->rank(), kPerRank * n, n);  // strided share, as plan_epoch

    replica_optimizer.zero_grad();
    reducer.prepare("equivalence step " + std::to_string(step));
    torch::nn::functional::cross_entropy(replica->forward(images.index_select(0, mine)), labels.index_select(0, mine))
        .backward();
    reducer.finish();
    replica_optimizer.step();

    reference_optimizer.zero_grad();
    torch::nn::functional::cross_entropy(reference->forward(images), labels).backward();
    reference_optimizer.step();

    const auto checksums = world->allgatherv(torch::tensor({distributed::parameter_checksum(*replica)}, torch::kInt64));
    EXPECT_TRUE(checksums.eq(checksums[0]).all().item<bool>()) << "replicas diverged at step " << step;
  }
  auto flat = [](const models::Classifier& m) {
    std::vector<torch::Tensor> all;
    for (const auto& p : m.parameters()) all.push_back(p.detach().flatten());
    return torch::cat(all);
  };
  EXPECT_LT(relative_difference(flat(*replica), flat(*reference)), 1e-5);
}

// Synchronized batch norm over W ranks' shares of a batch equals ordinary batch norm over the
// whole batch: outputs, input gradients, summed weight/bias gradients and running statistics.
TEST(SyncBatchNorm, RanksTogetherEqualOneBatchNormOverTheWholeBatch) {
  auto world = make_world();
  const int n = world->size();
  constexpr std::int64_t kPerRank = 3, kChannels = 5;
  torch::manual_seed(21);  // the same global batch and output gradient on every rank
  const auto images = torch::randn({kPerRank * n, kChannels, 6, 7}) * 3 + 1;
  const auto output_gradient = torch::randn({kPerRank * n, kChannels, 6, 7});
  const auto mine = torch::arange(world->rank(), kPerRank * n, n);
  auto make_layer = [] {
    torch::nn::BatchNorm2d layer(torch::nn::BatchNorm2dOptions(kChannels).eps(1e-3).momentum(0.01));
    torch::NoGradGuard no_grad;
    layer->weight.copy_(torch::linspace(0.5, 1.5, kChannels));
    layer->bias.copy_(torch::linspace(-1, 1, kChannels));
    return layer;
  };

  auto reference = make_layer();
  const auto whole = images.clone().requires_grad_(true);
  const auto expected = reference->forward(whole);
  (expected * output_gradient).sum().backward();

  auto layer = make_layer();
  const auto part = images.index_select(0, mine).contiguous(torch::MemoryFormat::ChannelsLast).requires_grad_(true);
  const auto output = distributed::sync_batch_norm(*layer, part, *world);
  (output * output_gradient.index_select(0, mine)).sum().backward();

  EXPECT_LT(relative_difference(output, expected.index_select(0, mine)), 1e-5);
  EXPECT_LT(relative_difference(part.grad(), whole.grad().index_select(0, mine)), 1e-5);
  auto weight_gradient = layer->weight.grad().clone(), bias_gradient = layer->bias.grad().clone();
  world->allreduce(weight_gradient, ReduceOp::Sum);  // the reducer averages; the sum is the whole batch's
  world->allreduce(bias_gradient, ReduceOp::Sum);
  EXPECT_LT(relative_difference(weight_gradient, reference->weight.grad()), 1e-5);
  EXPECT_LT(relative_difference(bias_gradient, reference->bias.grad()), 1e-5);
  EXPECT_LT(relative_difference(layer->running_mean, reference->running_mean), 1e-5);
  EXPECT_LT(relative_difference(layer->running_var, reference->running_var), 1e-5);
}

TEST(Replicas, AModelThatDiffersOnOneRankIsNamed) {
  auto world = make_world();
  REQUIRE_SEVERAL_RANKS(*world);
  models::ModelOptions options;
  options.image_size = 32;
  options.filters = {4, 8, world->rank() == 1 ? 16 : 8};
  const auto model = models::create_model("baseline_cnn", options);
  try {
    distributed::verify_identical_replicas(*model, *world);
    FAIL() << "expected a CommunicationError";
  } catch (const distributed::CommunicationError& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 differs from rank 0's"), std::string::npos) << e.what();
  }
}

// --- The NCCL backend: runs where CUDA devices are visible, skips elsewhere --------------------

// Why the NCCL tests cannot run here ("" when they can).
std::string nccl_skip_reason() {
  if (!distributed::nccl_available()) return "built without NCCL";
  if (!torch::cuda::is_available()) return "no CUDA device";
  if (!environment->uses_mpi()) return "needs MPI: mpirun, or BRAINMRI_FORCE_MPI=1 for one rank";
  if (environment->local_size() > static_cast<int>(torch::cuda::device_count())) return "fewer GPUs than ranks";
  return "";
}

#define REQUIRE_NCCL()                                                          \
  do {                                                                          \
    if (const auto why = nccl_skip_reason(); !why.empty()) GTEST_SKIP() << why; \
  } while (false)

namespace {
torch::Device my_gpu() { return {torch::kCUDA, static_cast<c10::DeviceIndex>(environment->local_rank())}; }
}  // namespace

TEST(NcclBackend, CollectivesOnTheDeviceGiveTheAnalyticValues) {
  REQUIRE_NCCL();
  auto world =
      distributed::make_communicator(*environment, distributed::Backend::Nccl, my_gpu(), {std::chrono::seconds(60)});
  ASSERT_EQ(world->backend(), "nccl");
  const int n = world->size();
  const double rank_sum = n * (n - 1) / 2.0;
  for (const auto dtype : {torch::kFloat32, torch::kFloat64, torch::kBFloat16, torch::kInt64, torch::kUInt8}) {
    SCOPED_TRACE(c10::toString(dtype));
    auto t = torch::full({4096}, world->rank(), torch::TensorOptions().dtype(dtype).device(my_gpu()));
    world->allreduce(t, ReduceOp::Sum, "nccl sum");
    EXPECT_TRUE(t.cpu().to(torch::kFloat64).eq(rank_sum).all().item<bool>());
  }
  // A double fill value: an integer one would make a Long tensor, whose average is refused.
  auto average = torch::full({7}, static_cast<double>(world->rank()), torch::TensorOptions().device(my_gpu()));
  world->allreduce(average, ReduceOp::Average, "nccl average");
  EXPECT_NEAR(average[0].item<double>(), rank_sum / n, 1e-6);
  std::vector<torch::Tensor> tensors;
  std::vector<std::shared_ptr<distributed::Work>> works;
  for (int i = 0; i < 16; ++i) {
    tensors.push_back(torch::full({1 << (i % 10)}, static_cast<double>(i), torch::TensorOptions().device(my_gpu())));
    works.push_back(world->allreduce_async(tensors.back(), ReduceOp::Sum, "nccl async " + std::to_string(i)));
  }
  for (int i = 0; i < 16; ++i) {
    works[static_cast<std::size_t>(i)]->wait();
    EXPECT_TRUE(tensors[static_cast<std::size_t>(i)].cpu().eq(static_cast<double>(i) * n).all().item<bool>()) << i;
  }
  auto root = torch::full({3}, world->rank() + 5, torch::TensorOptions().dtype(torch::kInt64).device(my_gpu()));
  world->broadcast(root, 0, "nccl broadcast");
  EXPECT_TRUE(root.cpu().eq(5).all().item<bool>());
  const auto rows =
      world->allgatherv(torch::full({world->rank() + 1, 2}, world->rank(), torch::TensorOptions().device(my_gpu())));
  EXPECT_EQ(rows.size(0), n * (n + 1) / 2);
  EXPECT_TRUE(rows.device().is_cuda());
  world->barrier("nccl done");
}

TEST(NcclBackend, ReducerOnTheDeviceEqualsTheAverage) {
  REQUIRE_NCCL();
  auto world =
      distributed::make_communicator(*environment, distributed::Backend::Nccl, my_gpu(), {std::chrono::seconds(60)});
  KnownGradients host(world->rank());
  std::vector<torch::Tensor> parameters, gradients;
  for (std::size_t i = 0; i < host.parameters.size(); ++i) {
    parameters.push_back(
        torch::zeros(host.parameters[i].sizes(), torch::TensorOptions().device(my_gpu()).requires_grad(true)));
    gradients.push_back(host.gradients[i].to(my_gpu()));
  }
  auto reference = torch::cat(gradients).clone();
  world->allreduce(reference, ReduceOp::Average, "reference");
  distributed::ReducerOptions options;
  options.first_bucket_bytes = 64;
  options.bucket_bytes = 4096;
  distributed::GradientReducer reducer(parameters, *world, options);
  reducer.prepare("nccl reducer step");
  auto loss = torch::zeros({}, torch::TensorOptions().device(my_gpu()));
  for (std::size_t i = 0; i < parameters.size(); ++i) loss = loss + (parameters[i] * gradients[i]).sum();
  loss.backward();
  reducer.finish();
  std::vector<torch::Tensor> grads;
  for (const auto& p : parameters) grads.push_back(p.grad());
  EXPECT_LT(relative_difference(torch::cat(grads).cpu(), reference.cpu()), 1e-6);
}

// --- The trainer under MPI ----------------------------------------------------------------------

namespace {

fs::path shared_dataset(distributed::Communicator& world, int count) {
  // One directory for all ranks of this job (on a filesystem they share, also across nodes):
  // named after rank 0's parent (mpirun's daemon on its node); rank 0 writes, the others wait.
  auto job = torch::tensor({static_cast<std::int64_t>(::getppid())}, torch::kInt64);
  world.broadcast(job, 0, "dataset directory");
  const auto dir =
      fs::temp_directory_path() / ("brainmri-mpi-test-" + std::to_string(count) + "-" + std::to_string(world.size()) +
                                   "-" + std::to_string(job.item<std::int64_t>()));
  if (world.rank() == 0) {
    fs::remove_all(dir);
    brainmri::testing::write_synthetic_dataset(dir, count, 4, 16, 1, false, 2, 4);
  }
  world.barrier("dataset written");
  return dir;
}

training::TrainOptions small_training(distributed::Communicator* world) {
  training::TrainOptions o;
  o.epochs = 2;
  o.batch_size = 4;
  o.eval_batch_size = 5;  // with 37 samples and 2 or 3 ranks: uneven shares and a ragged tail
  o.communicator = world;
  o.reducer.first_bucket_bytes = 512;
  return o;
}

models::ClassifierPtr small_model() {
  models::ModelOptions options;
  options.image_size = 16;
  options.filters = {4, 4, 8};
  options.dense_units = 8;
  torch::manual_seed(3);
  return models::create_model("baseline_cnn", options);
}

}  // namespace

TEST(DistributedTrainer, ShardedEvaluationEqualsSingleProcessEvaluation) {
  auto world = make_world();
  const auto dir = shared_dataset(*world, 37);
  const data::ShardedDataset dataset(dir);
  const training::InMemoryLoader loader(dataset, dataset.all(), torch::kCPU);

  training::Trainer distributed_trainer(small_model(), small_training(world.get()), torch::kCPU);
  training::Trainer single(small_model(), small_training(nullptr), torch::kCPU);
  const auto sharded = distributed_trainer.predict(loader);
  const auto whole = single.predict(loader);
  ASSERT_EQ(sharded.sample_ids, whole.sample_ids);  // each sample once, in the loader's order
  EXPECT_EQ(sharded.labels, whole.labels);
  ASSERT_EQ(sharded.probabilities.size(), whole.probabilities.size());
  for (std::size_t i = 0; i < whole.probabilities.size(); ++i) {
    EXPECT_NEAR(sharded.probabilities[i], whole.probabilities[i], 1e-6) << i;
  }
  EXPECT_NEAR(sharded.loss, whole.loss, 1e-6);
  const auto a = evaluation::score_predictions(sharded, 4), b = evaluation::score_predictions(whole, 4);
  EXPECT_EQ(a.accuracy, b.accuracy);
  EXPECT_EQ(a.macro_f1, b.macro_f1);
  world->barrier("before cleanup");
  if (world->rank() == 0) fs::remove_all(dir);
}

TEST(DistributedTrainer, FitKeepsReplicasIdenticalAndRanksAgreeOnEveryRecord) {
  auto world = make_world();
  const auto dir = shared_dataset(*world, 40);
  const data::ShardedDataset dataset(dir);
  const training::InMemoryLoader train(dataset, dataset.training_samples_for_fold(0), torch::kCPU);
  const training::InMemoryLoader validation(dataset, dataset.validation_samples_for_fold(0), torch::kCPU);
  torch::manual_seed(11 + world->rank());  // dropout and augmentation differ per rank anyway
  auto options = small_training(world.get());
  options.augment = true;
  training::Trainer trainer(small_model(), options, torch::kCPU);
  const auto records = trainer.fit(train, &validation);
  ASSERT_EQ(records.size(), 2u);
  const auto checksums =
      world->allgatherv(torch::tensor({distributed::parameter_checksum(trainer.model())}, torch::kInt64));
  EXPECT_TRUE(checksums.eq(checksums[0]).all().item<bool>());
  auto metrics = torch::tensor({records[1].train_loss, records[1].val_accuracy, records[1].val_loss}, torch::kFloat64);
  const auto all = world->allgatherv(metrics.unsqueeze(0));
  EXPECT_TRUE(all.eq(all[0]).all().item<bool>()) << all;
  world->barrier("before cleanup");
  if (world->rank() == 0) fs::remove_all(dir);
}

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  distributed::MpiEnvironment mpi(&argc, &argv);
  environment = &mpi;
  torch::set_num_threads(1);
  if (mpi.rank() != 0) {
    // Rank 0 prints the report; the others print only their failures, with their rank.
    class FailurePrinter : public ::testing::EmptyTestEventListener {
     public:
      explicit FailurePrinter(std::string prefix) : prefix_(std::move(prefix)) {}
      void OnTestPartResult(const ::testing::TestPartResult& result) override {
        if (result.failed()) {
          std::cerr << prefix_ << (result.file_name() ? result.file_name() : "?") << ":" << result.line_number()
                    << ": failure\n"
                    << result.summary() << std::endl;
        }
      }

     private:
      std::string prefix_;
    };
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(mpi.log_prefix()));
  }
  return RUN_ALL_TESTS();
}
