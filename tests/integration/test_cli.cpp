// brainmri train / evaluate end to end on the bundled sample, through the real executables.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "test_support.hpp"

using namespace brainmri::testing;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::string kBrainmri = BRAINMRI_CLI_EXE;
const std::string kPrep = BRAINMRI_PREP_EXE;
const fs::path kSample = BRAINMRI_SAMPLE_DIR;

CommandResult run_brainmri(const std::string& arguments) {
  return run_command(shell_quote(kBrainmri) + " " + arguments);
}

std::string slurp(const fs::path& file) {
  std::ifstream in(file);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

json read_json(const fs::path& path) {
  std::ifstream in(path);
  return json::parse(in);
}

// `brainmri evaluate ARGUMENTS --threads 1 --output OUT`, then OUT/metrics.json.
json evaluate_into(const fs::path& out, const std::string& arguments) {
  const auto r = run_brainmri("evaluate " + arguments + " --threads 1 --output " + shell_quote(out));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return read_json(out / "metrics.json");
}

// `brainmri predict IMAGE --json --threads 1 ARGUMENTS`: its JSON and the image's probabilities in
// class order.
std::pair<json, std::vector<double>> predict_one(const fs::path& image, const std::string& arguments) {
  const auto r = run_brainmri("predict " + shell_quote(image) + " --json --threads 1 " + arguments);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const auto out = json::parse(r.output.substr(r.output.find('{')));
  std::vector<double> p;
  for (const auto& name : out["classes"]) p.push_back(out["results"][0]["probabilities"][name.get<std::string>()]);
  return {out, p};
}

// A small, fast network so each run takes a second or two on one core.
// The explanation check has a test of its own (ReportOfATrainingRun...); the others skip its training.
const std::string kSmallModel =
    " --filters 8,16 --dense-units 16 --threads 1 --batch-size 16 --explanation-check false ";

class CliOnSample : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new ScratchDir();
    for (const auto& [name, size] : {std::pair{"packed", 64}, std::pair{"packed32", 32}}) {
      const auto r = run_command(shell_quote(kPrep) + " -q --folds 5 --size " + std::to_string(size) + " --out " +
                                 shell_quote(*scratch_ / name) + " " + shell_quote(kSample));
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
  }
  static void TearDownTestSuite() { delete scratch_; }
  static fs::path data() { return *scratch_ / "packed"; }
  static ScratchDir* scratch_;
};
ScratchDir* CliOnSample::scratch_ = nullptr;

}  // namespace

TEST_F(CliOnSample, TrainWritesARunDirectoryAndEvaluateReproducesItsValidation) {
  ScratchDir run;
  const auto train = run_brainmri("train --data " + shell_quote(data()) + " --output " + shell_quote(run / "a") +
                                  " --epochs 2" + kSmallModel);
  ASSERT_EQ(train.exit_code, 0) << train.output;
  EXPECT_NE(train.output.find("[train] epoch   2"), std::string::npos) << train.output;
  EXPECT_NE(train.output.find("weighted avg"), std::string::npos);
  for (const char* file : {"config.ini", "model.pt", "train_last.pt", "train_log.jsonl", "validation/metrics.json",
                           "validation/predictions.h5", "validation/classification_report.txt"}) {
    EXPECT_TRUE(fs::exists(run / "a" / file)) << file;
  }
  std::ifstream log(run / "a" / "train_log.jsonl");
  int lines = 0;
  for (std::string line; std::getline(log, line);) {
    const auto record = json::parse(line);
    EXPECT_EQ(record["epoch"].get<int>(), ++lines);
    EXPECT_TRUE(record.contains("val_macro_f1"));
  }
  EXPECT_EQ(lines, 2);
  const auto validation = read_json(run / "a" / "validation" / "metrics.json");
  EXPECT_EQ(validation["samples"].get<int>(), 31);  // fold 0 of the 154-image sample
  EXPECT_TRUE(validation.contains("accuracy_95ci"));

  // validation/ holds the network's own probabilities (the temperature is fitted on them).
  const auto evaluate =
      run_brainmri("evaluate --checkpoint " + shell_quote(run / "a" / "model.pt") + " --data " + shell_quote(data()) +
                   " --fold 0 --calibration none --threads 1 --output " + shell_quote(run / "eval"));
  ASSERT_EQ(evaluate.exit_code, 0) << evaluate.output;
  const auto evaluated = read_json(run / "eval" / "metrics.json");
  EXPECT_DOUBLE_EQ(evaluated["accuracy"].get<double>(), validation["accuracy"].get<double>());
  EXPECT_NEAR(evaluated["loss"].get<double>(), validation["loss"].get<double>(), 1e-9);

  // The saved configuration reproduces the run exactly (CPU determinism).
  const auto again =
      run_brainmri("train --config " + shell_quote(run / "a" / "config.ini") + " --output " + shell_quote(run / "b"));
  ASSERT_EQ(again.exit_code, 0) << again.output;
  const auto repeated = read_json(run / "b" / "validation" / "metrics.json");
  EXPECT_EQ(repeated["accuracy"], validation["accuracy"]);
  EXPECT_EQ(repeated["loss"], validation["loss"]);
}

TEST_F(CliOnSample, FoldsDealtAtRandomAreRecordedAndEvaluatedTheSameWay) {
  ScratchDir run;
  const auto data32 = shell_quote(*scratch_ / "packed32");
  const auto train = run_brainmri("train --data " + data32 + " --output " + shell_quote(run / "random") +
                                  " --folds-by random --epochs 1 --report false" + kSmallModel);
  ASSERT_EQ(train.exit_code, 0) << train.output;
  const auto validation = read_json(run / "random" / "validation" / "metrics.json");
  EXPECT_EQ(validation["context"]["folds_by"], "random");
  EXPECT_NE(slurp(run / "random" / "config.ini").find("folds-by = random"), std::string::npos);

  // The same fold dealt by the duplicate groups holds other images, so evaluating the model on it
  // needs the run's rule: with it, the validation comes back exactly.
  const auto evaluate = [&](const std::string& extra, const std::string& out) {
    return evaluate_into(run / out, "--checkpoint " + shell_quote(run / "random" / "model.pt") + " --data " + data32 +
                                        " --fold 0 --calibration none" + extra);
  };
  EXPECT_DOUBLE_EQ(evaluate(" --folds-by random", "same")["loss"].get<double>(), validation["loss"].get<double>());
  EXPECT_NE(evaluate("", "grouped")["loss"].get<double>(), validation["loss"].get<double>());
  // The model's temperature was fitted on fold 0 dealt at random (recorded as data in the model
  // card): evaluating those very images with it warns; fold 0 dealt by groups is other images.
  const auto calibrated = [&](const std::string& extra) {
    return run_brainmri("evaluate --checkpoint " + shell_quote(run / "random" / "model.pt") + " --data " + data32 +
                        " --fold 0 --threads 1 --output " + shell_quote(run / "calibrated") + extra);
  };
  const auto same_images = calibrated(" --folds-by random");
  ASSERT_EQ(same_images.exit_code, 0) << same_images.output;
  EXPECT_NE(same_images.output.find("was fitted on these images (fold 0"), std::string::npos) << same_images.output;
  const auto other_images = calibrated("");
  ASSERT_EQ(other_images.exit_code, 0) << other_images.output;
  EXPECT_EQ(other_images.output.find("was fitted on these images"), std::string::npos) << other_images.output;

  const auto bad = run_brainmri("train --data " + data32 + " --output " + shell_quote(run / "bad") +
                                " --folds-by shuffled --epochs 1" + kSmallModel);
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("exact-groups"), std::string::npos) << bad.output;
}

// A held-out split that shares images with the training data: kept and evaluated in a clean and a
// contaminated part (split-test, the default), or its training copies dropped (drop-train).
TEST(CliHeldOut, ContaminatedTestImagesAreScoredApartOrTheirTrainingCopiesDropped) {
  ScratchDir scratch;
  const fs::path root = scratch / "kaggle";
  fs::create_directories(root);
  fs::copy(kSample / "Training", root / "Training", fs::copy_options::recursive);
  for (const auto* name : {"glioma", "meningioma", "notumor", "pituitary"}) {
    fs::create_directories(root / "Testing" / name);
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(root / "Training" / name)) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (std::size_t i = 0; i < 4; ++i) fs::rename(files[i], root / "Testing" / name / files[i].filename());
    // Two training images of each class also appear, re-named, among the test images.
    for (std::size_t i = 4; i < 6; ++i)
      fs::copy_file(files[i], root / "Testing" / name / ("copy_" + files[i].filename().string()));
  }
  for (const auto* policy : {"split-test", "drop-train"}) {
    const auto r =
        run_command(shell_quote(kPrep) + " -q --folds 3 --size 32 --holdout-split Testing --holdout-policy " + policy +
                    " --out " + shell_quote(scratch / policy) + " " + shell_quote(root));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    ASSERT_EQ(run_command(shell_quote(kPrep) + " audit " + shell_quote(scratch / policy) + " --json " +
                          shell_quote(scratch / (std::string(policy) + ".json")))
                  .exit_code,
              0);
  }
  const auto audit = read_json(scratch / "split-test.json")["folds"];
  const int contaminated = audit["held_out_samples_with_copy_in_folds"].get<int>();
  EXPECT_GE(contaminated, 8);  // the 8 copies, and any sample pair that the move separated
  EXPECT_EQ(audit["excluded_duplicates_of_held_out"].get<int>(), 0);
  const auto dropped = read_json(scratch / "drop-train.json")["folds"];
  EXPECT_EQ(dropped["held_out_samples_with_copy_in_folds"].get<int>(), 0);
  EXPECT_GE(dropped["excluded_duplicates_of_held_out"].get<int>(), 8);

  const auto cv =
      run_brainmri("cv --data " + shell_quote(scratch / "split-test") + " --output " + shell_quote(scratch / "cv") +
                   " --folds 0,1 --epochs 1 --tta flip --report false" + kSmallModel);
  ASSERT_EQ(cv.exit_code, 0) << cv.output;
  const auto fold_test = read_json(scratch / "cv" / "fold-0" / "test" / "metrics.json");
  EXPECT_EQ(fold_test["context"]["test_time_augmentation"], "flip");  // the held-out test only
  EXPECT_TRUE(fold_test["temperature_scaling"]["applied"].get<bool>());
  EXPECT_FALSE(read_json(scratch / "cv" / "fold-0" / "validation" / "metrics.json")["context"].contains(
      "test_time_augmentation"));
  const auto test = read_json(scratch / "cv" / "cv_summary.json")["test"];
  EXPECT_EQ(test["holdout_policy"], "split-test");
  EXPECT_EQ(test["contaminated"]["samples"].get<int>(), contaminated);
  EXPECT_EQ(test["clean"]["samples"].get<int>() + contaminated, test["samples"].get<int>());
  EXPECT_EQ(test["clean"]["fold_models"]["accuracy"]["folds"].get<int>(), 2);
  const auto clean = read_json(scratch / "cv" / "test_ensemble" / "clean" / "metrics.json");
  EXPECT_EQ(clean["samples"].get<int>(), test["clean"]["samples"].get<int>());
  EXPECT_EQ(clean["context"]["part"], "clean");
  EXPECT_DOUBLE_EQ(clean["accuracy"].get<double>(), test["clean"]["ensemble"]["accuracy"].get<double>());
  EXPECT_TRUE(fs::exists(scratch / "cv" / "fold-1" / "test" / "contaminated" / "predictions.h5"));
  const auto table = slurp(scratch / "cv" / "cv_summary.md");
  EXPECT_LT(table.find("Clean part"), table.find("Contaminated part")) << table;
  EXPECT_LT(table.find("Contaminated part"), table.find("All ")) << table;

  // evaluate --split scores the same parts; where the copies were dropped, there is one part.
  const auto model = shell_quote(scratch / "cv" / "fold-0" / "model.pt");
  const auto kept = run_brainmri("evaluate --checkpoint " + model + " --data " + shell_quote(scratch / "split-test") +
                                 " --split Testing --threads 1 --output " + shell_quote(scratch / "eval-kept"));
  ASSERT_EQ(kept.exit_code, 0) << kept.output;
  EXPECT_NE(kept.output.find("Contaminated part, " + std::to_string(contaminated) + " images"), std::string::npos)
      << kept.output;
  EXPECT_DOUBLE_EQ(read_json(scratch / "eval-kept" / "clean" / "metrics.json")["accuracy"].get<double>(),
                   read_json(scratch / "cv" / "fold-0" / "test" / "clean" / "metrics.json")["accuracy"].get<double>());
  const auto clean_only =
      run_brainmri("evaluate --checkpoint " + model + " --data " + shell_quote(scratch / "drop-train") +
                   " --split Testing --threads 1 --output " + shell_quote(scratch / "eval-dropped"));
  ASSERT_EQ(clean_only.exit_code, 0) << clean_only.output;
  EXPECT_EQ(clean_only.output.find("Contaminated part"), std::string::npos) << clean_only.output;
  EXPECT_FALSE(fs::exists(scratch / "eval-dropped" / "clean"));
}

// Temperature scaling: fitted on the run's validation predictions (judged there by cross-fitting),
// stored in model.pt, applied by evaluate and predict unless --calibration none.
TEST_F(CliOnSample, TheTemperatureFittedOnValidationIsStoredWithTheModelAndApplied) {
  ScratchDir run;
  const auto data32 = shell_quote(*scratch_ / "packed32");
  const auto train = run_brainmri("train --data " + data32 + " --output " + shell_quote(run / "t") +
                                  " --epochs 2 --report false" + kSmallModel);
  ASSERT_EQ(train.exit_code, 0) << train.output;
  const auto scaling = read_json(run / "t" / "validation" / "metrics.json")["temperature_scaling"];
  ASSERT_TRUE(scaling.is_object()) << scaling;
  EXPECT_FALSE(scaling["applied"].get<bool>());  // validation keeps the network's own probabilities
  const double temperature = scaling["temperatures"][0].get<double>();
  EXPECT_GT(temperature, 0.05);
  EXPECT_LT(temperature, 20.0);
  EXPECT_NE(scaling["before"]["nll"], scaling["after"]["nll"]);

  const auto evaluate = [&](const std::string& extra, const std::string& out) {
    return evaluate_into(
        run / out, "--checkpoint " + shell_quote(run / "t" / "model.pt") + " --data " + data32 + " --fold 1" + extra);
  };
  const auto calibrated = evaluate("", "calibrated");
  const auto raw = evaluate(" --calibration none", "raw");
  EXPECT_DOUBLE_EQ(calibrated["context"]["calibration"]["temperature"].get<double>(), temperature);
  EXPECT_TRUE(calibrated["temperature_scaling"]["applied"].get<bool>());
  EXPECT_TRUE(raw["temperature_scaling"].is_null());
  EXPECT_EQ(calibrated["accuracy"], raw["accuracy"]);  // the predicted class never changes
  EXPECT_NEAR(calibrated["temperature_scaling"]["before"]["nll"].get<double>(), raw["calibration"]["nll"].get<double>(),
              1e-12);
  EXPECT_NEAR(calibrated["calibration"]["nll"].get<double>(),
              calibrated["temperature_scaling"]["after"]["nll"].get<double>(), 1e-12);

  // predict: softmax(z / T), i.e. the uncalibrated probabilities p as p^(1/T) renormalized.
  const auto image = (*fs::directory_iterator(kSample / "Training" / "glioma")).path();
  const auto predict = [&](const std::string& extra) {
    return predict_one(image, "--model " + shell_quote(run / "t" / "model.pt") + " " + extra).second;
  };
  const auto scaled = predict("");
  const auto unscaled = predict("--calibration none");
  double sum = 0;
  std::vector<double> expected;
  for (const double p : unscaled) sum += expected.emplace_back(std::pow(p, 1.0 / temperature));
  for (std::size_t c = 0; c < scaled.size(); ++c) EXPECT_NEAR(scaled[c], expected[c] / sum, 1e-5) << c;

  // Without calibration nothing is fitted, and predict says the probabilities are not calibrated.
  const auto plain = run_brainmri("train --data " + data32 + " --output " + shell_quote(run / "plain") +
                                  " --epochs 1 --calibration none --report false" + kSmallModel);
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  EXPECT_TRUE(read_json(run / "plain" / "validation" / "metrics.json")["temperature_scaling"].is_null());
  const auto warned =
      run_brainmri("predict --model " + shell_quote(run / "plain" / "model.pt") + " --threads 1 " + shell_quote(image));
  EXPECT_EQ(warned.exit_code, 0) << warned.output;
  EXPECT_NE(warned.output.find("stores no temperature"), std::string::npos) << warned.output;
}

// Test-time augmentation in evaluate, and a fold ensemble in predict: the mean of its members.
TEST_F(CliOnSample, TestTimeAugmentationAndFoldEnsembles) {
  ScratchDir run;
  const auto data32 = shell_quote(*scratch_ / "packed32");
  const auto cv = run_brainmri("cv --data " + data32 + " --output " + shell_quote(run / "cv") +
                               " --folds 0,1 --epochs 1 --report false" + kSmallModel);
  ASSERT_EQ(cv.exit_code, 0) << cv.output;
  const auto model0 = shell_quote(run / "cv" / "fold-0" / "model.pt");
  const auto model1 = shell_quote(run / "cv" / "fold-1" / "model.pt");
  std::map<std::string, json> evaluated;
  for (const std::string tta : {"none", "flip", "flip+rot"}) {
    evaluated[tta] =
        evaluate_into(run / ("eval-" + tta), "--checkpoint " + model0 + " --data " + data32 + " --fold 0 --tta " + tta);
    EXPECT_EQ(evaluated[tta]["context"]["test_time_augmentation"], tta);
  }
  EXPECT_NE(evaluated["none"]["loss"], evaluated["flip"]["loss"]);
  EXPECT_NE(evaluated["flip"]["loss"], evaluated["flip+rot"]["loss"]);
  EXPECT_EQ(run_brainmri("evaluate --checkpoint " + model0 + " --data " + data32 + " --tta mirror").exit_code, 2);

  const auto image = (*fs::directory_iterator(kSample / "Training" / "pituitary")).path();
  const auto probabilities = [&](const std::string& models) { return predict_one(image, "--model " + models); };
  const auto [out, both] = probabilities(model0 + " " + model1);
  const auto first = probabilities(model0).second;
  const auto second = probabilities(model1).second;
  EXPECT_EQ(out["ensemble"].size(), 2u);
  for (std::size_t c = 0; c < both.size(); ++c) EXPECT_NEAR(both[c], (first[c] + second[c]) / 2, 1e-6) << c;
  // Models of another input size cannot be averaged with these.
  const auto other = run_brainmri("train --data " + shell_quote(data()) + " --output " + shell_quote(run / "size64") +
                                  " --epochs 1 --report false" + kSmallModel);
  ASSERT_EQ(other.exit_code, 0) << other.output;
  const auto mixed = run_brainmri("predict " + shell_quote(image) + " --model " + model0 + " " +
                                  shell_quote(run / "size64" / "model.pt"));
  EXPECT_NE(mixed.exit_code, 0);
  EXPECT_NE(mixed.output.find("not for the same classes and input"), std::string::npos) << mixed.output;
}

TEST_F(CliOnSample, ResumedTrainingEndsWhereAnUninterruptedOneDoes) {
  ScratchDir run;
  const std::string common = " --data " + shell_quote(data()) + kSmallModel + " --restore-best false";
  ASSERT_EQ(run_brainmri("train --epochs 3" + common + " --output " + shell_quote(run / "straight")).exit_code, 0);
  ASSERT_EQ(run_brainmri("train --epochs 1" + common + " --output " + shell_quote(run / "resumed")).exit_code, 0);
  const auto resumed = run_brainmri("train --epochs 3 --resume" + common + " --output " + shell_quote(run / "resumed"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("Resumed train"), std::string::npos) << resumed.output;
  EXPECT_EQ(resumed.output.find("[train] epoch   1"), std::string::npos) << "epoch 1 was run again";
  EXPECT_EQ(read_json(run / "straight" / "validation" / "metrics.json")["loss"],
            read_json(run / "resumed" / "validation" / "metrics.json")["loss"]);
}

TEST_F(CliOnSample, ClearErrorsForIncompatibleInputs) {
  ScratchDir run;
  ASSERT_EQ(run_brainmri("train --epochs 1" + kSmallModel + " --data " + shell_quote(data()) + " --output " +
                         shell_quote(run / "a"))
                .exit_code,
            0);
  const auto mismatch = run_brainmri("evaluate --checkpoint " + shell_quote(run / "a" / "model.pt") + " --data " +
                                     shell_quote(*scratch_ / "packed32"));
  EXPECT_EQ(mismatch.exit_code, 1);
  EXPECT_NE(mismatch.output.find("expects 64x64x1"), std::string::npos) << mismatch.output;
  EXPECT_NE(mismatch.output.find("has 32x32x1"), std::string::npos) << mismatch.output;

  const auto wrong_width =
      run_brainmri("train --model mobilenet_v2 --width 1.0 --epochs 1 --data " + shell_quote(data()) + " --output " +
                   shell_quote(run / "b") + " --pretrained " +
                   shell_quote(std::string(BRAINMRI_KERAS_FIXTURES) + "/mobilenet_v2_0.35_random.h5"));
  EXPECT_EQ(wrong_width.exit_code, 1);
  EXPECT_NE(wrong_width.output.find("'Conv1'"), std::string::npos) << wrong_width.output;

  const auto not_a_checkpoint =
      run_brainmri("evaluate --checkpoint " + shell_quote(run / "a" / "config.ini") + " --data " + shell_quote(data()));
  EXPECT_EQ(not_a_checkpoint.exit_code, 1);
  EXPECT_NE(not_a_checkpoint.output.find("config.ini"), std::string::npos) << not_a_checkpoint.output;

  const auto no_folds = run_brainmri("train --data " + shell_quote(kSample) + " --output " + shell_quote(run / "c"));
  EXPECT_EQ(no_folds.exit_code, 1);
}

TEST(CliUsage, HelpListsOptionsWithDefaultsAndBadOptionsExitTwo) {
  const auto help = run_command(shell_quote(kBrainmri) + " train --help");
  EXPECT_EQ(help.exit_code, 0);
  for (const char* option : {"--data", "--output", "--model", "--epochs", "--lr", "--schedule", "--patience",
                             "--pretrained", "--finetune-epochs", "--rotation", "--config"}) {
    EXPECT_NE(help.output.find(option), std::string::npos) << option;
  }
  EXPECT_NE(help.output.find("(=20)"), std::string::npos);
  EXPECT_EQ(run_command(shell_quote(kBrainmri) + " train --no-such-option 1").exit_code, 2);
  EXPECT_EQ(run_command(shell_quote(kBrainmri) + " train --epochs many --data x --output y").exit_code, 2);
  EXPECT_EQ(run_command(shell_quote(kBrainmri) + " fly").exit_code, 2);
  EXPECT_EQ(run_command(shell_quote(kBrainmri) + " evaluate --help").exit_code, 0);
}

// A list of stages: each in order, from the previous stage's best weights, with its own
// trainable part and learning rate; the resolved config reproduces it; a bad stage is a usage error.
TEST_F(CliOnSample, StagesRunInOrderWithTheirOwnTrainablePartAndLearningRate) {
  ScratchDir run;
  const std::string stages =
      " --model mobilenet_v2 --width 0.35 --dense-units 16 --threads 1 --batch-size 16 --explanation-check false"
      " --stage 'head: trainable-blocks=0 lr=1e-3 epochs=1'"
      " --stage 'top: trainable-blocks=2 lr=1e-4 epochs=1'"
      " --stage 'all: trainable-blocks=-1 lr=1e-5 epochs=1 schedule=cosine'";
  const auto train = run_brainmri("train --data " + shell_quote(*scratch_ / "packed32") + " --output " +
                                  shell_quote(run / "staged") + stages);
  ASSERT_EQ(train.exit_code, 0) << train.output;
  std::ifstream log(run / "staged" / "train_log.jsonl");
  std::vector<std::pair<std::string, double>> epochs;
  for (std::string line; std::getline(log, line);) {
    const auto record = json::parse(line);
    epochs.emplace_back(record["stage"].get<std::string>(), record["learning_rate"].get<double>());
  }
  ASSERT_EQ(epochs.size(), 3u);
  EXPECT_EQ(epochs[0], (std::pair<std::string, double>{"head", 1e-3}));
  EXPECT_EQ(epochs[1], (std::pair<std::string, double>{"top", 1e-4}));
  EXPECT_EQ(epochs[2].first, "all");
  for (const char* file : {"head_best.pt", "top_best.pt", "all_best.pt", "model.pt"}) {
    EXPECT_TRUE(fs::exists(run / "staged" / file)) << file;
  }
  std::ifstream config(run / "staged" / "config.ini");
  const std::string text((std::istreambuf_iterator<char>(config)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("stage = top: trainable-blocks=2 lr=1e-4 epochs=1"), std::string::npos) << text;

  const auto bad = run_brainmri("train --data " + shell_quote(data()) + " --output " + shell_quote(run / "bad") +
                                " --stage 'head: lr=1e-3' --finetune-epochs 2");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("not both"), std::string::npos) << bad.output;
}

// --- brainmri report ------------------------------------------------------------------------------

namespace {

// Width and height from a PNG's IHDR chunk (big-endian, bytes 16-23); {0, 0} if not a PNG.
std::pair<std::uint32_t, std::uint32_t> png_size(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  unsigned char header[24] = {};
  in.read(reinterpret_cast<char*>(header), sizeof(header));
  if (!in || header[1] != 'P' || header[2] != 'N' || header[3] != 'G') return {0, 0};
  auto word = [&](int at) {
    return (std::uint32_t{header[at]} << 24) | (std::uint32_t{header[at + 1]} << 16) |
           (std::uint32_t{header[at + 2]} << 8) | std::uint32_t{header[at + 3]};
  };
  return {word(16), word(20)};
}

// Every src="..." and href="..." of the page that is not a web address names an existing file.
void expect_links_resolve(const fs::path& page) {
  const auto html = slurp(page);
  const std::regex link("(?:src|href)=\"([^\"]+)\"");
  int links = 0;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), link); it != std::sregex_iterator(); ++it) {
    const std::string target = (*it)[1];
    EXPECT_EQ(target.find("://"), std::string::npos) << "network reference " << target;
    EXPECT_TRUE(fs::exists(page.parent_path() / target)) << page << " links to missing " << target;
    ++links;
  }
  EXPECT_GT(links, 0);
}

// The rows of classification_report.csv for one evaluation: class -> {precision, recall, f1}.
std::map<std::string, std::vector<double>> csv_rows(const fs::path& file, const std::string& evaluation) {
  std::map<std::string, std::vector<double>> rows;
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "evaluation,class,precision,recall,f1,support");
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream stream(line);
    for (std::string cell; std::getline(stream, cell, ',');) cells.push_back(cell);
    if (cells.size() < 5 || cells[0] != evaluation || cells[2].empty()) continue;
    rows[cells[1]] = {std::stod(cells[2]), std::stod(cells[3]), std::stod(cells[4])};
  }
  return rows;
}

}  // namespace

TEST_F(CliOnSample, ReportOfATrainingRunHasEveryFileAndTheMetricsModulesValues) {
  ScratchDir run;
  const auto train = run_brainmri("train --data " + shell_quote(data()) + " --output " + shell_quote(run / "a") +
                                  " --epochs 2" + kSmallModel);
  ASSERT_EQ(train.exit_code, 0) << train.output;
  // brainmri train ends with the report; brainmri report writes it again from the saved files.
  EXPECT_NE(train.output.find("Report: "), std::string::npos) << train.output;
  EXPECT_TRUE(fs::exists(run / "a" / "report" / "index.html"));
  fs::remove_all(run / "a" / "report");
  const auto report = run_brainmri("report " + shell_quote(run / "a"));
  ASSERT_EQ(report.exit_code, 0) << report.output;
  const auto dir = run / "a" / "report";
  for (const char* file : {"classification_report.txt", "classification_report.csv", "classification_report.json",
                           "tables.md", "tables.tex", "index.html"}) {
    EXPECT_TRUE(fs::exists(dir / file)) << file;
  }
  for (const char* figure : {"confusion_matrix", "roc_curves", "training_curves", "gradcam_grid", "reliability_diagram",
                             "subgroup_accuracy"}) {
    for (const char* extension : {".png", ".svg", ".pdf"}) {
      EXPECT_GT(fs::file_size(dir / (std::string(figure) + extension)), 1000u) << figure << extension;
    }
    const auto [width, height] = png_size(dir / (std::string(figure) + ".png"));
    EXPECT_GE(width, 800u) << figure;
    EXPECT_GE(height, 500u) << figure;
  }
  expect_links_resolve(dir / "index.html");

  // The report's numbers are the evaluation's (metrics.json, written by the metrics module).
  const auto metrics = read_json(run / "a" / "validation" / "metrics.json");
  const auto json_report = read_json(dir / "classification_report.json");
  const auto& validation = json_report["evaluations"]["validation"];
  EXPECT_DOUBLE_EQ(validation["accuracy"].get<double>(), metrics["accuracy"].get<double>());
  EXPECT_DOUBLE_EQ(validation["macro_avg"]["f1"].get<double>(), metrics["macro_avg"]["f1"].get<double>());
  EXPECT_DOUBLE_EQ(validation["macro_auc"].get<double>(), metrics["macro_auc"].get<double>());
  const auto rows = csv_rows(dir / "classification_report.csv", "validation");
  ASSERT_EQ(rows.size(), 4u + 2u);  // 4 classes, macro and weighted averages
  for (const auto& name : metrics["class_names"]) {
    const auto& expected = metrics["per_class"][name.get<std::string>()];
    const auto& got = rows.at(name.get<std::string>());
    EXPECT_NEAR(got[0], expected["precision"].get<double>(), 1e-12) << name;
    EXPECT_NEAR(got[1], expected["recall"].get<double>(), 1e-12) << name;
    EXPECT_NEAR(got[2], expected["f1"].get<double>(), 1e-12) << name;
  }
  EXPECT_NE(slurp(dir / "classification_report.txt")
                .find(slurp(run / "a" / "validation" / "classification_report.txt").substr(0, 40)),
            std::string::npos);
  EXPECT_NE(slurp(dir / "tables.tex").find("\\begin{tabular}"), std::string::npos);

  // Calibration: metrics.json has it (with the ECE's bootstrap interval) and the report says the same.
  const auto& calibration = metrics["calibration"];
  EXPECT_EQ(calibration["bins"], 15);
  const double ece = calibration["ece"].get<double>();
  EXPECT_LE(calibration["ece_95ci"]["low"].get<double>(), calibration["ece_95ci"]["high"].get<double>());
  EXPECT_GE(ece, 0.0);
  EXPECT_LE(ece, calibration["mce"].get<double>());
  int binned = 0;
  for (const auto& bin : calibration["top_label_bins"]) binned += bin["count"].get<int>();
  EXPECT_EQ(binned, metrics["samples"].get<int>());
  EXPECT_DOUBLE_EQ(json_report["calibration"]["ece"].get<double>(), ece);
  EXPECT_DOUBLE_EQ(json_report["calibration"]["brier"].get<double>(), calibration["brier"].get<double>());
  EXPECT_NE(slurp(dir / "tables.md").find("top-label ECE"), std::string::npos);
  EXPECT_NE(slurp(dir / "index.html").find("<h2>Calibration</h2>"), std::string::npos);
  // The validation's temperature was fitted (--calibration temperature, the default): the
  // reliability figure shows the top label after scaling (cross-fitted) beside it.
  ASSERT_TRUE(metrics.contains("temperature_scaling")) << metrics.dump().substr(0, 300);
  EXPECT_NE(slurp(dir / "index.html").find("beside it: the same after temperature scaling, cross-fitted"),
            std::string::npos);

  // The explanations: HiResCAM of the last convolution by default, with both checks on the page.
  EXPECT_EQ(json_report["gradcam"]["method"], "hirescam");
  EXPECT_EQ(json_report["gradcam"]["layer"], "conv2");
  const auto& check = json_report["explanation_check"];
  EXPECT_EQ(check["method"], "hirescam");
  EXPECT_EQ(check["image_size"], 64);
  EXPECT_GE(check["localization"].get<double>(), 0.0);
  EXPECT_LE(check["localization"].get<double>(), 1.0);
  EXPECT_GT(check["correct_disc_predictions"].get<int>(), 0);
  EXPECT_FALSE(check["verdict"].get<std::string>().empty());
  EXPECT_NE(slurp(dir / "index.html").find("Does the explanation point at the evidence?"), std::string::npos);
  // Another method and layer on request; a layer the model lacks and an unknown method are usage errors.
  const auto other = run_brainmri("report " + shell_quote(run / "a") +
                                  " --method gradcam++ --layer conv1 --vector false "
                                  "--explanation-check false --output " +
                                  shell_quote(run / "other"));
  ASSERT_EQ(other.exit_code, 0) << other.output;
  const auto other_report = read_json(run / "other" / "classification_report.json");
  EXPECT_EQ(other_report["gradcam"]["method"], "gradcam++");
  EXPECT_EQ(other_report["gradcam"]["layer"], "conv1");
  EXPECT_FALSE(other_report.contains("explanation_check"));
  const auto bad_layer = run_brainmri("report " + shell_quote(run / "a") +
                                      " --layer Conv_1 --explanation-check false --output " + shell_quote(run / "bad"));
  EXPECT_NE(bad_layer.output.find("no explainable layer named 'Conv_1'"), std::string::npos) << bad_layer.output;
  EXPECT_EQ(run_brainmri("report " + shell_quote(run / "a") + " --method saliency").exit_code, 2);
}

TEST_F(CliOnSample, ReportOfACrossValidationAndAComparisonOfTwoRuns) {
  ScratchDir run;
  const auto cv = run_brainmri("cv --data " + shell_quote(*scratch_ / "packed32") + " --output " +
                               shell_quote(run / "cv") + " --folds 0,1,2 --epochs 1 --report false" + kSmallModel);
  ASSERT_EQ(cv.exit_code, 0) << cv.output;
  const auto train = run_brainmri("train --data " + shell_quote(*scratch_ / "packed32") + " --output " +
                                  shell_quote(run / "single") + " --epochs 1 --report false" + kSmallModel);
  ASSERT_EQ(train.exit_code, 0) << train.output;
  // A second CV of the same folds with another seed: the pair that can be tested.
  const auto cv2 =
      run_brainmri("cv --data " + shell_quote(*scratch_ / "packed32") + " --output " + shell_quote(run / "cv2") +
                   " --folds 0,1,2 --epochs 1 --seed 5 --report false" + kSmallModel);
  ASSERT_EQ(cv2.exit_code, 0) << cv2.output;
  const auto report =
      run_brainmri("report " + shell_quote(run / "cv") + " " + shell_quote(run / "single") + " " +
                   shell_quote(run / "cv2") + " --vector false --output " + shell_quote(run / "comparison"));
  ASSERT_EQ(report.exit_code, 0) << report.output;
  const auto dir = run / "cv" / "report";
  for (const char* figure : {"confusion_matrix.png", "roc_curves.png", "roc_curves_out_of_fold.png", "gradcam_grid.png",
                             "training_curves.png", "reliability_diagram.png"}) {
    EXPECT_GT(png_size(dir / figure).first, 0u) << figure;
  }
  EXPECT_FALSE(fs::exists(dir / "roc_curves.svg"));  // --vector false
  expect_links_resolve(dir / "index.html");
  expect_links_resolve(run / "comparison" / "index.html");

  // Across folds: the mean of the folds' accuracies, as cv_summary.json has it.
  const auto summary = read_json(run / "cv" / "cv_summary.json");
  const auto json_report = read_json(dir / "classification_report.json");
  EXPECT_NEAR(json_report["across_folds"]["accuracy"]["mean"].get<double>(), summary["accuracy"]["mean"].get<double>(),
              1e-12);
  EXPECT_NEAR(json_report["evaluations"]["out_of_fold"]["accuracy"].get<double>(),
              summary["out_of_fold"]["accuracy"].get<double>(), 1e-12);
  for (int k = 0; k < 3; ++k) {
    EXPECT_NEAR(json_report["evaluations"]["fold-" + std::to_string(k)]["accuracy"].get<double>(),
                summary["folds"][k]["accuracy"].get<double>(), 1e-12);
  }
  const auto text = slurp(dir / "classification_report.txt");
  EXPECT_NE(text.find("Across the 3 folds"), std::string::npos) << text;
  // Where it fails: every property splits the same out-of-fold images.
  const auto& subgroups = json_report["subgroups"]["subgroups"];
  std::map<std::string, int> images_per_property;
  for (const auto& g : subgroups) images_per_property[g["property"].get<std::string>()] += g["images"].get<int>();
  EXPECT_EQ(images_per_property.size(), 6u) << subgroups;
  for (const auto& [property, images] : images_per_property)
    EXPECT_EQ(images, summary["out_of_fold"]["samples"].get<int>()) << property;
  bool saw_size = false;  // the sample's images are all 224 x 224 (recorded since format version 2)
  for (const auto& g : subgroups) {
    if (g["property"] == "original size") saw_size = g["value"] == "224×224";
    EXPECT_LE(g["accuracy_95ci"]["low"].get<double>(), g["accuracy"].get<double>()) << g;
    EXPECT_GE(g["accuracy_95ci"]["high"].get<double>(), g["accuracy"].get<double>()) << g;
  }
  EXPECT_TRUE(saw_size) << subgroups;
  const auto tables = slurp(dir / "tables.md");
  EXPECT_NE(tables.find("Where it fails"), std::string::npos);
  EXPECT_GT(png_size(dir / "subgroup_accuracy.png").second, 500u);
  // The ECE column: each class's one-vs-rest ECE, the top-label ECE with its interval on the
  // accuracy row (the pooled out-of-fold predictions' calibration).
  EXPECT_NE(tables.find("| class | precision | recall | F1 | AUC | ECE |"), std::string::npos) << tables;
  const auto& calibration = json_report["calibration"];
  char top_label_ece[96];
  std::snprintf(top_label_ece, sizeof(top_label_ece), "| %.4f [%.4f, %.4f] |", calibration["ece"].get<double>(),
                calibration["ece_95ci"]["low"].get<double>(), calibration["ece_95ci"]["high"].get<double>());
  EXPECT_NE(tables.find(top_label_ece), std::string::npos) << top_label_ece << "\n" << tables;
  const auto comparison = slurp(run / "comparison" / "comparison.md");
  EXPECT_NE(comparison.find("| cv | baseline_cnn | 3-fold CV |"), std::string::npos) << comparison;
  EXPECT_NE(comparison.find("| single | baseline_cnn | validation |"), std::string::npos) << comparison;

  // Paired tests: the CV and the single run evaluated other images and say so; the two CVs are
  // paired on the same images and folds, consistent with their summaries.
  const auto tests = read_json(run / "comparison" / "comparison.json")["paired_tests"];
  ASSERT_EQ(tests.size(), 3u);
  EXPECT_NE(tests[0]["untestable"].get<std::string>().find("different images"), std::string::npos) << tests[0];
  EXPECT_NE(comparison.find("### cv vs single\n\nNot tested: they evaluated different images"), std::string::npos)
      << comparison;
  const auto& paired = tests[1];
  ASSERT_FALSE(paired.contains("untestable")) << paired;
  EXPECT_EQ(paired["b"], "cv2");
  const auto other = read_json(run / "cv2" / "cv_summary.json");
  const double accuracy_difference =
      summary["out_of_fold"]["accuracy"].get<double>() - other["out_of_fold"]["accuracy"].get<double>();
  EXPECT_NEAR(paired["accuracy"]["difference"]["estimate"].get<double>(), accuracy_difference, 1e-12);
  const int images = paired["images"].get<int>();
  EXPECT_EQ(images, summary["out_of_fold"]["samples"].get<int>());
  EXPECT_NEAR(paired["accuracy"]["mcnemar_exact"]["only_a_right"].get<int>() -
                  paired["accuracy"]["mcnemar_exact"]["only_b_right"].get<int>(),
              accuracy_difference * images, 1e-6);
  EXPECT_LE(paired["accuracy"]["difference"]["low"].get<double>(), accuracy_difference);
  EXPECT_EQ(paired["auc_per_class"].size(), 4u);
  EXPECT_EQ(paired["folds"]["accuracy"]["degrees_of_freedom"].get<int>(), 2);
  EXPECT_NE(comparison.find("Nadeau–Bengio corrected t"), std::string::npos) << comparison;
  EXPECT_NE(comparison.find("McNemar, exact"), std::string::npos) << comparison;
  EXPECT_NE(tests[2]["untestable"].get<std::string>().find("different images"), std::string::npos) << tests[2];

  // Not a run directory: a failure naming it; no run at all: a usage error.
  const auto bad = run_brainmri("report " + shell_quote(run.path()));
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("is neither a run"), std::string::npos) << bad.output;
  EXPECT_EQ(run_brainmri("report").exit_code, 2);
}

TEST_F(CliOnSample, ExportWritesEveryFormatAndAMovedRunStillReportsItsExplanations) {
  ScratchDir run;
  const auto train = run_brainmri("train --data " + shell_quote(data()) + " --output " + shell_quote(run / "a") +
                                  " --epochs 1 --report false" + kSmallModel);
  ASSERT_EQ(train.exit_code, 0) << train.output;

  const auto exported =
      run_brainmri("export " + shell_quote(run / "a" / "model.pt") + " --output " + shell_quote(run / "export"));
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  for (const char* file : {"model.torchscript.pt", "model.safetensors", "model.json"}) {
    EXPECT_GT(fs::file_size(run / "export" / file), 100u) << file;
  }
  const auto metadata = read_json(run / "export" / "model.json");
  EXPECT_EQ(metadata["architecture"], "baseline_cnn");
  EXPECT_EQ(metadata["class_names"], json({"glioma", "meningioma", "notumor", "pituitary"}));
  EXPECT_EQ(metadata["preprocessing"]["image_size"], 64);
  EXPECT_EQ(metadata["provenance"]["validated_on"], "fold 0");
  const auto only = run_brainmri("export " + shell_quote(run / "a" / "model.pt") + " --format safetensors --output " +
                                 shell_quote(run / "only"));
  ASSERT_EQ(only.exit_code, 0) << only.output;
  EXPECT_FALSE(fs::exists(run / "only" / "model.torchscript.pt"));
  EXPECT_EQ(run_brainmri("export " + shell_quote(run / "a" / "model.pt") + " --format onnx --output x").exit_code, 2);
  EXPECT_EQ(run_brainmri("export " + shell_quote(run / "a" / "config.ini") + " --output " + shell_quote(run / "bad"))
                .exit_code,
            1);

  // The run directory moved elsewhere: the report still finds its checkpoint and draws the grid.
  fs::rename(run / "a", run / "moved");
  const auto report =
      run_brainmri("report " + shell_quote(run / "moved") + " --explanation-check false --vector false");
  ASSERT_EQ(report.exit_code, 0) << report.output;
  EXPECT_GT(fs::file_size(run / "moved" / "report" / "gradcam_grid.png"), 1000u) << report.output;
}
