#pragma once
// Where does a model fail? Its accuracy, recall per class and calibration (top-label ECE) broken
// down by properties of the source images that the packed dataset knows:
// - file-name family: the file name without its trailing number and extension (the Kaggle files
//   come as Tr-gl_0010.jpg, Tr-glTr_0003.jpg, Tr-no_..., from different sources);
// - original size: the source image's width x height before packing (sizes shared by fewer than
//   kMinSubgroupImages images together as "other sizes"; recorded from dataset format version 2);
// - colour discarded: the packer turned a colour image into grayscale;
// - duplicate group: the image has an exact or near copy in the dataset (the audit's groups);
// - mean intensity and share of dark pixels (below 10/255, mostly the border around the head),
//   each in quartiles of the evaluated images, from the packed pixels.
// The largest gaps (a subgroup of at least kMinSubgroupImages images against the rest) are named.

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "brainmri/data/sharded_dataset.hpp"
#include "brainmri/evaluation/predictions.hpp"

namespace brainmri::reports {

inline constexpr int kMinSubgroupImages = 20;

struct Subgroup {
  std::string property;  // e.g. "file-name family"
  std::string value;     // e.g. "Tr-glTr_"
  int images = 0;
  double accuracy = 0;
  double accuracy_low = 0, accuracy_high = 0;  // Wilson 95% interval (metrics::wilson_interval_95)
  std::vector<double> recall;                  // per class; NaN where the subgroup holds no image of the class
  double ece = 0;                              // top-label, kCalibrationBins equal-width bins
};

struct SubgroupAnalysis {
  std::vector<Subgroup> subgroups;  // by property, then value
  double overall_accuracy = 0;
  // The subgroups (of at least kMinSubgroupImages images) whose accuracy differs most from the
  // overall one, largest gap first; at most 5.
  std::vector<Subgroup> largest_gaps;
  std::vector<std::string> notes;  // properties that could not be broken down, and why
};

// The file name without its directory, extension and trailing digits: "Training/glioma/Tr-gl_0010.jpg" -> "Tr-gl_".
std::string file_name_family(const std::string& source_path);

SubgroupAnalysis analyse_subgroups(const evaluation::Predictions& predictions, const data::ShardedDataset& dataset,
                                   const std::vector<std::string>& class_names);

nlohmann::json to_json(const SubgroupAnalysis& analysis);
// A Markdown table (property, value, images, accuracy, recall per class, ECE) and a sentence on the
// largest gaps.
std::string markdown(const SubgroupAnalysis& analysis, const std::vector<std::string>& class_names);

}  // namespace brainmri::reports
