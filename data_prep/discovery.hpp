#pragma once
// Finds the images of one or more dataset roots, in the Kaggle layout
// (<root>/<split>/<class>/<file>) or flat (<root>/<class>/<file>, split = the root's folder name).

#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace brainmri::prep {

// The input tree is not a dataset we can pack; the message names the path and the expected layout.
class LayoutError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DiscoveryOptions {
  std::vector<std::filesystem::path> roots;
  std::vector<std::string> splits;               // empty: every split found
  std::map<std::string, std::string> class_map;  // folder name -> class name
};

struct Candidate {
  int root_index = 0;
  int split_index = 0;
  int label = 0;
  std::filesystem::path absolute_path;
  std::string relative_path;  // relative to its root, '/'-separated
};

struct Discovery {
  std::vector<std::string> class_names;  // sorted
  std::vector<std::string> split_names;  // sorted
  std::vector<Candidate> candidates;     // sorted by (split, class, relative path)
};

Discovery discover_dataset(const DiscoveryOptions& options);

// "notumor=healthy,glioma=glioma_tumor" -> map; throws std::invalid_argument on bad syntax.
std::map<std::string, std::string> parse_class_map(const std::string& text);

}  // namespace brainmri::prep
