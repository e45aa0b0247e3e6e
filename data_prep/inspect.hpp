#pragma once
// `brainmri-prep verify` and `brainmri-prep audit`: checks and summaries of a packed dataset.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace brainmri::prep {

class VerifyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct VerifySummary {
  int shards = 0;
  std::int64_t samples = 0;
};

// Re-hashes every shard and checks it against the manifest and the schema. Throws VerifyError
// naming the first broken shard and what is wrong with it.
VerifySummary verify_dataset(const std::filesystem::path& dataset_dir);

// The leakage audit as JSON: counts, duplicate groups within and across splits, label
// conflicts, discarded colour, rejected inputs and the fold balance.
nlohmann::json build_audit(const std::filesystem::path& dataset_dir);
std::string render_audit(const nlohmann::json& audit);

}  // namespace brainmri::prep
