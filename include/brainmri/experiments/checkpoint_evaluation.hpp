#pragma once
// A checkpoint evaluated on a selection of a packed dataset (`brainmri evaluate`): a split, a fold
// or everything, shared among the ranks of a communicator; rank 0 writes the evaluation files.

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "brainmri/common/option_table.hpp"
#include "brainmri/data/folds.hpp"
#include "brainmri/distributed/communicator.hpp"
#include "brainmri/distributed/device_selection.hpp"
#include "brainmri/evaluation/evaluation_files.hpp"
#include "brainmri/models/checkpoint.hpp"
#include "brainmri/models/test_time_augmentation.hpp"

namespace brainmri::experiments {

struct CheckpointEvaluation {
  std::filesystem::path checkpoint;
  std::filesystem::path dataset;
  std::string split;  // non-empty: this split
  int fold = -1;      // or, >= 0: this fold's validation samples; neither: every sample
  data::FoldGrouping folds_by = data::FoldGrouping::DuplicateGroups;  // as the run that trained it
  std::filesystem::path output;                                       // empty: next to the checkpoint, eval-<selection>
  std::int64_t batch_size = 256;
  std::uint64_t bootstrap_seed = 7;
  models::Calibration calibration = models::Calibration::Temperature;  // the model card's temperature, if any
  models::TestTimeAugmentation test_time_augmentation = models::TestTimeAugmentation::None;
  // How the command runs it (evaluate_checkpoint takes the device chosen from these).
  distributed::DeviceChoice device = distributed::DeviceChoice::Auto;
  int threads = 0;  // CPU threads of LibTorch (0: its default)
};

// The options of `brainmri evaluate`, bound to the fields above.
const std::vector<Option<CheckpointEvaluation>>& checkpoint_evaluation_options();
// Throws ConfigError naming the option: no checkpoint or dataset, a split and a fold at once.
void validate(const CheckpointEvaluation& request);

struct CheckpointEvaluationResult {
  std::filesystem::path output;  // where the files went
  std::string report;            // the classification report (scikit-learn's layout)
  evaluation::EvaluationMetrics metrics;
  // A split's parts (evaluation::HeldOutEvaluation): its images without and with an exact or near
  // copy in the other splits; unset when a part is empty or a fold was evaluated.
  std::optional<evaluation::EvaluationMetrics> clean, contaminated;
};

// Throws ConfigError for a selection that is empty or a split and a fold at once, and
// std::runtime_error naming both when the checkpoint does not fit the dataset (image size,
// channels, classes). The result is complete on rank 0 of `communicator`.
CheckpointEvaluationResult evaluate_checkpoint(const CheckpointEvaluation& request,
                                               distributed::Communicator& communicator, const torch::Device& device);

}  // namespace brainmri::experiments
