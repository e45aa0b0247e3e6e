// Trainer, augmentation and checkpoints on small synthetic datasets (fast on CPU).

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <set>
#include <sstream>

#include "brainmri/data/dataset_format.hpp"
#include "brainmri/data/hdf5.hpp"
#include "brainmri/data/sharded_dataset.hpp"
#include "brainmri/models/checkpoint.hpp"
#include "brainmri/models/classifier.hpp"
#include "brainmri/models/test_time_augmentation.hpp"
#include "brainmri/training/augmentation.hpp"
#include "brainmri/training/data_loader.hpp"
#include "brainmri/training/fused_adam.hpp"
#include "brainmri/training/trainer.hpp"
#include "synthetic_dataset.hpp"
#include "test_support.hpp"

using namespace brainmri;
using namespace brainmri::training;
using brainmri::testing::ScratchDir;

namespace {

models::ClassifierPtr small_cnn(int classes, int size, double dropout = 0.0) {
  models::ModelOptions o;
  o.num_classes = classes;
  o.image_size = size;
  o.filters = {8, 16};
  o.dense_units = 32;
  o.dropout = dropout;
  return models::create_model("baseline_cnn", o);
}

// Images whose class is the position of a bright square: learnable, but not from the mean alone.
void write_square_dataset(const std::filesystem::path& dir, int count, int size) {
  const auto m = brainmri::testing::write_synthetic_dataset(dir, count, 4, size, 1, true, 1, 4);
  auto file = hdf5::Handle();  // rewrite the pixels in place with the pattern
  (void)m;
  file = hdf5::Handle(H5Fopen((dir / "shard-0.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
  auto images = hdf5::open_dataset(file, data::format::kImages);
  std::vector<float> pixels(static_cast<std::size_t>(count) * size * size, 0.1f);
  for (int i = 0; i < count; ++i) {
    const int label = i % 4;
    const int top = (label / 2) * size / 2 + 2 + (i / 4) % 3;
    const int left = (label % 2) * size / 2 + 2 + (i / 8) % 3;
    for (int y = top; y < top + size / 4; ++y) {
      for (int x = left; x < left + size / 4; ++x) pixels[static_cast<std::size_t>((i * size + y) * size + x)] = 0.9f;
    }
  }
  H5Dwrite(images, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, pixels.data());
}

std::vector<float> flatten_parameters(models::Classifier& model) {
  std::vector<float> values;
  for (const auto& p : model.parameters()) {
    const auto c = p.detach().cpu().contiguous();
    values.insert(values.end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  }
  return values;
}

}  // namespace

// Test-time views: the image first and untouched, its exact mirror image, and four turned views
// that keep a constant image constant (reflected borders) and turn a bright stripe.
TEST(TestTimeAugmentation, ViewsAreTheImageItsMirrorAndTurnedCopies) {
  using models::TestTimeAugmentation;
  auto images = torch::rand({3, 1, 16, 16});
  EXPECT_EQ(models::test_time_views(images, TestTimeAugmentation::None).size(), 1u);
  const auto flip = models::test_time_views(images, TestTimeAugmentation::Flip);
  ASSERT_EQ(flip.size(), 2u);
  EXPECT_TRUE(torch::equal(flip[0], images));
  EXPECT_TRUE(torch::equal(flip[1].index({0, 0, 0, 15}), images.index({0, 0, 0, 0})));
  const auto all = models::test_time_views(torch::full({2, 1, 16, 16}, 0.25), TestTimeAugmentation::FlipRotate);
  ASSERT_EQ(all.size(), 6u);
  for (const auto& view : all) EXPECT_NEAR((view - 0.25).abs().max().item<float>(), 0.0f, 1e-6f);
  // A horizontal stripe turned by 10 degrees no longer fills its row at both ends alike.
  auto stripe = torch::zeros({1, 1, 32, 32});
  stripe.index_put_({0, 0, 16}, 1.0);
  const auto turned = models::test_time_views(stripe, TestTimeAugmentation::FlipRotate);
  EXPECT_LT(turned[2].index({0, 0, 16, 2}).item<float>(), 0.5f);
  EXPECT_GT(turned[2].index({0, 0, 16, 16}).item<float>(), 0.3f);  // the centre stays on the stripe

  // The mean of probabilities over the views; a network that ignores left-right order gives the
  // same probabilities with and without the flip.
  const auto row_sums = [](const torch::Tensor& x) { return x.sum({1, 3}).narrow(1, 0, 4) * 10; };
  const auto plain = models::test_time_probabilities(row_sums, images, TestTimeAugmentation::None);
  const auto flipped = models::test_time_probabilities(row_sums, images, TestTimeAugmentation::Flip);
  EXPECT_TRUE(torch::allclose(plain, flipped, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(plain.sum(1), torch::ones({3}), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(plain, torch::softmax(row_sums(images), 1), 1e-5, 1e-6));
}

TEST(Augmentation, DrawsFollowKerasRangesAndAreReproducible) {
  const BatchAugmenter augmenter({true, 0.08, 0.08, 0.2});
  const auto d = augmenter.draw(4000, 11);
  const double flip_rate = d.flipped.to(torch::kFloat32).mean().item<double>();
  EXPECT_NEAR(flip_rate, 0.5, 0.04);
  const double max_angle = 0.08 * 2 * std::numbers::pi;  // 28.8 degrees
  EXPECT_LE(d.angles.abs().max().item<double>(), max_angle + 1e-6);
  EXPECT_GT(d.angles.abs().max().item<double>(), 0.95 * max_angle);
  EXPECT_GE(d.zooms.min().item<double>(), 0.92 - 1e-6);
  EXPECT_LE(d.zooms.max().item<double>(), 1.08 + 1e-6);
  EXPECT_GE(d.contrast.min().item<double>(), 0.8 - 1e-6);
  EXPECT_LE(d.contrast.max().item<double>(), 1.2 + 1e-6);
  EXPECT_TRUE(torch::equal(augmenter.draw(64, 11).angles, augmenter.draw(64, 11).angles));
  EXPECT_FALSE(torch::equal(augmenter.draw(64, 11).angles, augmenter.draw(64, 12).angles));
  EXPECT_NE(augmentation_seed(1, 0, 3, 5), augmentation_seed(1, 1, 3, 5));  // every rank differs
  EXPECT_NE(augmentation_seed(1, 0, 3, 5), augmentation_seed(1, 0, 3, 6));  // and every step
}

TEST(Augmentation, FlipMirrorsExactlyAndIdentityKeepsPixels) {
  const auto images = torch::rand({3, 1, 16, 16});
  const BatchAugmenter flip_only({true, 0.0, 0.0, 0.0});
  AugmentationDraw d = flip_only.draw(3, 5);
  d.flipped = torch::tensor({true, false, true});
  const auto out = flip_only.apply(images, d);
  EXPECT_TRUE(torch::allclose(out[0], images[0].flip({2}), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(out[1], images[1], 1e-5, 1e-6));
  const BatchAugmenter full({true, 0.08, 0.08, 0.1});
  const auto augmented = full.apply(images, 9);
  EXPECT_EQ(augmented.sizes(), images.sizes());
  EXPECT_GE(augmented.min().item<float>(), 0.0f);
  EXPECT_LE(augmented.max().item<float>(), 1.0f);
  EXPECT_TRUE(torch::equal(augmented, full.apply(images, 9)));
}

TEST(Augmentation, RotationTurnsAnImageAboutItsCentre) {
  // A bright pixel right of centre moves above or below the centre under a 90-degree rotation.
  auto image = torch::zeros({1, 1, 33, 33});
  image[0][0][16][28] = 1.0;
  const BatchAugmenter rotate({false, 0.25, 0.0, 0.0});
  AugmentationDraw d = rotate.draw(1, 1);
  d.angles = torch::tensor({static_cast<float>(std::numbers::pi / 2)});
  d.zooms = torch::ones({1});
  const auto out = rotate.apply(image, d);
  const auto peak = out.view(-1).argmax().item<std::int64_t>();
  EXPECT_EQ(peak % 33, 16);                 // same column as the centre
  EXPECT_EQ(std::abs(peak / 33 - 16), 12);  // 12 pixels away vertically
}

TEST(Trainer, OverfitsSixteenImagesToFullTrainingAccuracy) {
  ScratchDir dir;
  write_square_dataset(dir / "d", 16, 32);
  const data::ShardedDataset dataset(dir / "d");
  const InMemoryLoader loader(dataset, dataset.all(), torch::kCPU);
  TrainOptions o;
  o.epochs = 60;
  o.batch_size = 16;
  o.augment = false;
  o.seed = 3;
  torch::manual_seed(3);
  Trainer trainer(small_cnn(4, 32), o, torch::kCPU);
  const auto records = trainer.fit(loader, nullptr);
  EXPECT_DOUBLE_EQ(records.back().train_accuracy, 1.0);
  const auto predictions = trainer.predict(loader);
  EXPECT_DOUBLE_EQ(evaluation::score_predictions(predictions, 4).accuracy, 1.0);
}

// With LibTorch's Adam and with the fused kernel (whose step counts live on the device and are
// written into the checkpoint at save time).
TEST(Trainer, SameSeedSameMetricsAndResumeIsBitIdentical) {
  ScratchDir dir;
  write_square_dataset(dir / "d", 48, 24);
  const data::ShardedDataset dataset(dir / "d");
  const InMemoryLoader train(dataset, dataset.training_samples_for_fold(0), torch::kCPU);
  const InMemoryLoader validation(dataset, dataset.validation_samples_for_fold(0), torch::kCPU);
  for (const std::string fused : {"off", "on"}) {
    SCOPED_TRACE("fused optimizer " + fused);
    auto options = [&](const std::string& out, int epochs) {
      TrainOptions o;
      o.epochs = epochs;
      o.batch_size = 8;
      o.seed = 5;
      o.schedule.kind = ScheduleKind::Cosine;
      o.output_dir = dir / (out + fused);
      o.early_stopping.restore_best = false;
      o.fused_optimizer = parse_enum<FusedOptimizer>(fused);
      return o;
    };
    auto run = [&](const std::string& out, int epochs, int epochs_now = 0) {
      torch::manual_seed(5);
      Trainer trainer(small_cnn(4, 24, 0.3), options(out, epochs), torch::kCPU);
      EXPECT_EQ(trainer.graph_status(), "not on a CUDA device");
      const auto records = trainer.fit(train, &validation, epochs_now);
      return std::make_pair(records, flatten_parameters(trainer.model()));
    };
    const auto [straight_records, straight_weights] = run("a", 4);
    const auto [again_records, again_weights] = run("b", 4);
    EXPECT_EQ(straight_weights, again_weights);
    for (std::size_t i = 0; i < straight_records.size(); ++i) {
      EXPECT_EQ(straight_records[i].val_accuracy, again_records[i].val_accuracy);
      EXPECT_EQ(straight_records[i].train_loss, again_records[i].train_loss);
    }

    run("c", 4, 2);          // interrupted after two of four epochs...
    torch::manual_seed(99);  // ...and resumed by a process whose global RNG differs
    Trainer resumed(small_cnn(4, 24, 0.3), options("c", 4), torch::kCPU);
    resumed.resume(dir / ("c" + fused) / "train_last.pt");
    const auto tail = resumed.fit(train, &validation);
    ASSERT_EQ(tail.size(), 2u);
    EXPECT_EQ(tail.back().epoch, 4);
    EXPECT_EQ(tail.back().train_loss, straight_records.back().train_loss);
    EXPECT_EQ(flatten_parameters(resumed.model()), straight_weights);
  }
}

TEST(Trainer, ResumeRefusesACheckpointOfAnotherModel) {
  ScratchDir dir;
  write_square_dataset(dir / "d", 16, 24);
  const data::ShardedDataset dataset(dir / "d");
  const InMemoryLoader loader(dataset, dataset.all(), torch::kCPU);
  TrainOptions o;
  o.epochs = 1;
  o.output_dir = dir / "run";
  Trainer first(small_cnn(4, 24), o, torch::kCPU);
  first.fit(loader, nullptr);
  models::ModelOptions other;
  other.num_classes = 4;
  other.image_size = 24;
  other.filters = {4};
  Trainer second(models::create_model("baseline_cnn", other), o, torch::kCPU);
  try {
    second.resume(dir / "run" / "train_last.pt");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("\"filters\":[8,16]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("\"filters\":[4]"), std::string::npos) << e.what();
  }
  const auto reloaded = models::load_model_from_checkpoint(dir / "run" / "train_last.pt", torch::kCPU);
  EXPECT_EQ(reloaded->options().filters, (std::vector<int>{8, 16}));
}

TEST(Loader, EpochPlansShardDisjointlyAcrossRanksAndChangeWithTheEpoch) {
  ScratchDir dir;
  brainmri::testing::write_synthetic_dataset(dir / "d", 50, 2, 4, 1, false, 1, 0);
  const data::ShardedDataset dataset(dir / "d");
  const InMemoryLoader loader(dataset, dataset.all(), torch::kCPU);
  const auto rank0 = loader.plan_epoch(1, 1, 8, true, true, 0, 2);
  const auto rank1 = loader.plan_epoch(1, 1, 8, true, true, 1, 2);
  ASSERT_EQ(rank0.batches.size(), 3u);  // 50 / 16, tail dropped
  ASSERT_EQ(rank1.batches.size(), 3u);
  std::set<std::int64_t> seen;
  for (const auto* plan : {&rank0, &rank1}) {
    for (const auto& batch : plan->batches) {
      EXPECT_EQ(batch.size(), 8u);
      for (const auto p : batch) EXPECT_TRUE(seen.insert(p).second);
    }
  }
  EXPECT_NE(loader.plan_epoch(1, 2, 8, true, true).batches[0], loader.plan_epoch(1, 1, 8, true, true).batches[0]);
  EXPECT_EQ(loader.plan_epoch(1, 2, 8, true, true).batches[0], loader.plan_epoch(1, 2, 8, true, true).batches[0]);
  const auto all = loader.plan_epoch(0, 0, 8, false, false);
  EXPECT_EQ(all.batches.size(), 7u);  // evaluation keeps the tail
  EXPECT_EQ(all.batches.back().size(), 2u);
}

TEST(Loader, StreamingGivesTheSameBatchesAndTheSameTrainingAsInMemory) {
  ScratchDir dir;
  write_square_dataset(dir / "d", 40, 24);
  const data::ShardedDataset dataset(dir / "d");
  const InMemoryLoader memory(dataset, dataset.training_samples_for_fold(1), torch::kCPU);
  const StreamingLoader stream(dataset, dataset.training_samples_for_fold(1), torch::kCPU, 3, 2);
  const auto plan = memory.plan_epoch(7, 1, 4, true, false);
  stream.begin(plan);
  for (const auto& batch : plan.batches) {
    const auto [a, a_labels] = memory.gather(batch);
    const auto [b, b_labels] = stream.gather(batch);
    EXPECT_TRUE(torch::equal(a, b));
    EXPECT_TRUE(torch::equal(a_labels, b_labels));
  }
  // A request outside the announced plan is read directly.
  EXPECT_TRUE(torch::equal(memory.gather({0, 5}).first, stream.gather({0, 5}).first));

  auto train_with = [&](const BatchSource& source) {
    TrainOptions o;
    o.epochs = 2;
    o.batch_size = 8;
    o.seed = 2;
    torch::manual_seed(2);
    Trainer trainer(small_cnn(4, 24), o, torch::kCPU);
    trainer.fit(source, nullptr);
    return flatten_parameters(trainer.model());
  };
  EXPECT_EQ(train_with(memory), train_with(stream));
  EXPECT_EQ(make_loader(dataset, {0, 1}, torch::kCPU, LoaderKind::Auto, 1 << 20)->size(), 2);
  EXPECT_NE(dynamic_cast<StreamingLoader*>(make_loader(dataset, {0, 1}, torch::kCPU, LoaderKind::Auto, 10).get()),
            nullptr);
  EXPECT_THROW(parse_enum<LoaderKind>("disk"), std::invalid_argument);
}

// The fused kernel against LibTorch's Adam and AdamW: the same trajectory over many steps (the
// kernels differ only in the order of floating-point operations), the same checkpoint format
// both ways, and a learning rate changed between steps takes effect.
TEST(FusedAdam, FollowsLibTorchsAdamAndAdamWAndSharesTheirCheckpoints) {
  for (const bool decoupled : {false, true}) {
    SCOPED_TRACE(decoupled ? "adamw" : "adam");
    torch::manual_seed(9);
    auto reference_net = torch::nn::Sequential(torch::nn::Linear(6, 5), torch::nn::Tanh(), torch::nn::Linear(5, 3));
    auto fused_net = torch::nn::Sequential(torch::nn::Linear(6, 5), torch::nn::Tanh(), torch::nn::Linear(5, 3));
    for (std::size_t i = 0; i < reference_net->parameters().size(); ++i) {
      torch::NoGradGuard no_grad;
      fused_net->parameters()[i].copy_(reference_net->parameters()[i]);
    }
    const auto options = torch::optim::AdamOptions(3e-2).weight_decay(0.05);
    std::unique_ptr<torch::optim::Optimizer> reference;
    if (decoupled) {
      reference = std::make_unique<torch::optim::AdamW>(reference_net->parameters(),
                                                        torch::optim::AdamWOptions(3e-2).weight_decay(0.05));
    } else {
      reference = std::make_unique<torch::optim::Adam>(reference_net->parameters(), options);
    }
    training::FusedAdam fused(fused_net->parameters(), options, decoupled);
    const auto x = torch::randn({32, 6});
    const auto y = torch::randint(0, 3, {32});
    for (int step = 0; step < 40; ++step) {
      if (step == 20) {  // a schedule's change of rate
        for (auto& group : reference->param_groups()) group.options().set_lr(1e-2);
        for (auto& group : fused.param_groups()) group.options().set_lr(1e-2);
      }
      reference->zero_grad();
      torch::nn::functional::cross_entropy(reference_net->forward(x), y).backward();
      reference->step();
      fused.zero_grad();
      torch::nn::functional::cross_entropy(fused_net->forward(x), y).backward();
      fused.step();
    }
    for (std::size_t i = 0; i < reference_net->parameters().size(); ++i) {
      EXPECT_TRUE(torch::allclose(fused_net->parameters()[i], reference_net->parameters()[i], 1e-5, 1e-6))
          << "parameter " << i;
    }
    // A fused checkpoint loads into LibTorch's optimizer (step counts up to date) and back.
    std::stringstream stream;
    {
      torch::serialize::OutputArchive archive;
      fused.save(archive);
      archive.save_to(stream);
    }
    torch::optim::Adam plain(fused_net->parameters(), options);
    {
      torch::serialize::InputArchive archive;
      archive.load_from(stream);
      plain.load(archive);
    }
    const auto& state =
        static_cast<torch::optim::AdamParamState&>(*plain.state().at(fused_net->parameters()[0].unsafeGetTensorImpl()));
    EXPECT_EQ(state.step(), 40);
    stream.seekg(0);
    training::FusedAdam reloaded(fused_net->parameters(), options, decoupled);
    {
      torch::serialize::InputArchive archive;
      archive.load_from(stream);
      reloaded.load(archive);
    }
    // One more step from the reloaded state equals one more step of the original.
    const auto before = fused_net->parameters()[0].clone();
    fused.zero_grad();
    torch::nn::functional::cross_entropy(fused_net->forward(x), y).backward();
    fused.step();
    const auto after_original = fused_net->parameters()[0].clone();
    {
      torch::NoGradGuard no_grad;
      fused_net->parameters()[0].copy_(before);
    }
    reloaded.step();  // the gradients are still in place
    EXPECT_TRUE(torch::equal(fused_net->parameters()[0], after_original));
  }
}

// GPU only (skipped elsewhere): the training step captured in a CUDA graph trains the network the
// eager step trains — the same kernels, so the weights agree within bf16 rounding — and the
// trainer says it is graphed.
TEST(CudaGraph, CapturedStepTrainsLikeTheEagerStep) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  ScratchDir dir;
  write_square_dataset(dir / "d", 64, 32);
  const data::ShardedDataset dataset(dir / "d");
  const torch::Device device(torch::kCUDA, 0);
  const InMemoryLoader train(dataset, dataset.all(), device);
  auto run = [&](const std::string& graph) {
    TrainOptions o;
    o.epochs = 3;
    o.batch_size = 16;
    o.seed = 5;
    o.cuda_graph = parse_enum<CudaGraphMode>(graph);
    o.gradient_clip_norm = 1.0;  // the graph's clipping decides on the device
    torch::manual_seed(5);
    Trainer trainer(small_cnn(4, 32, 0.3), o, device);
    EXPECT_EQ(trainer.graph_status().empty(), graph == "auto") << trainer.graph_status();
    const auto records = trainer.fit(train, nullptr);
    return std::make_pair(records.back().train_loss, flatten_parameters(trainer.model()));
  };
  const auto [graphed_loss, graphed] = run("auto");
  const auto [eager_loss, eager] = run("off");
  EXPECT_NEAR(graphed_loss, eager_loss, 1e-2 * std::abs(eager_loss) + 1e-3);
  ASSERT_EQ(graphed.size(), eager.size());
  double difference = 0, norm = 0;
  for (std::size_t i = 0; i < eager.size(); ++i) {
    difference += (graphed[i] - eager[i]) * (graphed[i] - eager[i]);
    norm += eager[i] * eager[i];
  }
  EXPECT_LT(std::sqrt(difference / norm), 2e-2);
}
