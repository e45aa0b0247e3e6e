#include "brainmri/data/manifest.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "brainmri/data/dataset_format.hpp"

namespace brainmri::data {

using nlohmann::json;

void to_json(json& j, const ShardEntry& s) {
  j = json{{"file", s.file},
           {"first_sample_id", s.first_sample_id},
           {"sample_count", s.sample_count},
           {"bytes", s.bytes},
           {"sha256", s.sha256},
           {"class_counts", s.class_counts}};
}
void from_json(const json& j, ShardEntry& s) {
  j.at("file").get_to(s.file);
  j.at("first_sample_id").get_to(s.first_sample_id);
  j.at("sample_count").get_to(s.sample_count);
  j.at("bytes").get_to(s.bytes);
  j.at("sha256").get_to(s.sha256);
  j.at("class_counts").get_to(s.class_counts);
}
void to_json(json& j, const RejectedInput& r) { j = json{{"path", r.path}, {"reason", r.reason}}; }
void from_json(const json& j, RejectedInput& r) {
  j.at("path").get_to(r.path);
  j.at("reason").get_to(r.reason);
}
void to_json(json& j, const DuplicateGroup& g) {
  j = json{{"members", g.members}, {"exact", g.exact}, {"label_conflict", g.label_conflict}};
}
void from_json(const json& j, DuplicateGroup& g) {
  j.at("members").get_to(g.members);
  j.at("exact").get_to(g.exact);
  j.at("label_conflict").get_to(g.label_conflict);
}

std::string serialize_manifest(const Manifest& m) {
  json folds = {{"fold_count", m.folds.fold_count},
                {"seed", m.folds.seed},
                {"held_out_split", m.folds.held_out_split},
                {"holdout_policy", name_of(m.folds.holdout_policy)},
                {"fold_of_sample", m.folds.fold_of_sample}};
  json j = {{"format_version", m.format_version},
            {"tool_version", m.tool_version},
            {"command_line", m.command_line},
            {"roots", m.roots},
            {"class_names", m.class_names},
            {"split_names", m.split_names},
            {"image_size", m.image_size},
            {"channels", m.channels},
            {"dtype", m.dtype},
            {"normalization_scale", m.normalization_scale},
            {"normalization_offset", m.normalization_offset},
            {"resize_mode", m.resize_mode},
            {"compression_level", m.compression_level},
            {"sample_count", m.sample_count},
            {"counts_by_split_and_class", m.counts_by_split_and_class},
            {"shards", m.shards},
            {"near_duplicate_bits", m.near_duplicate_bits},
            {"duplicate_groups", m.duplicate_groups},
            {"folds", folds},
            {"rejected", m.rejected}};
  return j.dump(1) + "\n";
}

Manifest parse_manifest(std::string_view text, const std::string& source) {
  Manifest m;
  try {
    const json j = json::parse(text);
    j.at("format_version").get_to(m.format_version);
    if (m.format_version < format::kOldestFormatVersion || m.format_version > format::kFormatVersion) {
      throw ManifestError(
          source + ": format version " + std::to_string(m.format_version) +
          " is not supported (this build reads versions " + std::to_string(format::kOldestFormatVersion) + " to " +
          std::to_string(format::kFormatVersion) + "); repack the dataset with this version of brainmri-prep");
    }
    j.at("tool_version").get_to(m.tool_version);
    j.at("command_line").get_to(m.command_line);
    j.at("roots").get_to(m.roots);
    j.at("class_names").get_to(m.class_names);
    j.at("split_names").get_to(m.split_names);
    j.at("image_size").get_to(m.image_size);
    j.at("channels").get_to(m.channels);
    j.at("dtype").get_to(m.dtype);
    j.at("normalization_scale").get_to(m.normalization_scale);
    j.at("normalization_offset").get_to(m.normalization_offset);
    j.at("resize_mode").get_to(m.resize_mode);
    j.at("compression_level").get_to(m.compression_level);
    j.at("sample_count").get_to(m.sample_count);
    j.at("counts_by_split_and_class").get_to(m.counts_by_split_and_class);
    j.at("shards").get_to(m.shards);
    j.at("near_duplicate_bits").get_to(m.near_duplicate_bits);
    j.at("duplicate_groups").get_to(m.duplicate_groups);
    const json& folds = j.at("folds");
    folds.at("fold_count").get_to(m.folds.fold_count);
    folds.at("seed").get_to(m.folds.seed);
    folds.at("held_out_split").get_to(m.folds.held_out_split);
    m.folds.holdout_policy = folds.contains("holdout_policy")
                                 ? parse_enum<HoldoutPolicy>(folds.at("holdout_policy").get<std::string>())
                                 : HoldoutPolicy::DropTrain;
    folds.at("fold_of_sample").get_to(m.folds.fold_of_sample);
    j.at("rejected").get_to(m.rejected);
  } catch (const json::exception& e) {
    throw ManifestError(source + ": malformed manifest: " + e.what());
  } catch (const std::invalid_argument& e) {
    throw ManifestError(source + ": malformed manifest: " + e.what());
  }

  std::int64_t expected_first = 0;
  for (const auto& shard : m.shards) {
    if (shard.first_sample_id != expected_first || shard.sample_count < 0) {
      throw ManifestError(source + ": shard " + shard.file + " does not continue the sample range at " +
                          std::to_string(expected_first));
    }
    if (shard.class_counts.size() != m.class_names.size()) {
      throw ManifestError(source + ": shard " + shard.file + " has class counts for " +
                          std::to_string(shard.class_counts.size()) + " classes, expected " +
                          std::to_string(m.class_names.size()));
    }
    expected_first += shard.sample_count;
  }
  if (expected_first != m.sample_count) {
    throw ManifestError(source + ": shards hold " + std::to_string(expected_first) + " samples but sample_count is " +
                        std::to_string(m.sample_count));
  }
  if (m.folds.fold_count > 0 && static_cast<std::int64_t>(m.folds.fold_of_sample.size()) != m.sample_count) {
    throw ManifestError(source + ": fold assignment covers " + std::to_string(m.folds.fold_of_sample.size()) +
                        " samples, expected " + std::to_string(m.sample_count));
  }
  for (const auto& group : m.duplicate_groups) {
    for (auto id : group.members) {
      if (id < 0 || id >= m.sample_count) {
        throw ManifestError(source + ": duplicate group member " + std::to_string(id) + " is not a sample id");
      }
    }
  }
  return m;
}

Manifest read_manifest(const std::filesystem::path& dataset_dir) {
  const auto path = dataset_dir / format::kManifestFile;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ManifestError(path.string() + ": cannot read the manifest; is " + dataset_dir.string() +
                        " a directory written by brainmri-prep?");
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse_manifest(text.str(), path.string());
}

}  // namespace brainmri::data
