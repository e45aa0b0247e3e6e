#include "inspect.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "brainmri/common/sha256.hpp"
#include "brainmri/data/dataset_format.hpp"
#include "brainmri/data/hdf5.hpp"
#include "brainmri/data/manifest.hpp"
#include "brainmri/data/shard_file.hpp"
#include "hashing.hpp"

namespace brainmri::prep {
namespace fs = std::filesystem;
namespace format = data::format;
using nlohmann::json;

namespace {

void check_shard(const fs::path& dir, const data::Manifest& m, const data::ShardEntry& entry) {
  const fs::path path = dir / entry.file;
  auto fail = [&](const std::string& what) { throw VerifyError(path.string() + ": " + what); };
  if (!fs::is_regular_file(path)) fail("missing");
  const auto size = static_cast<std::int64_t>(fs::file_size(path));
  if (size != entry.bytes)
    fail("size is " + std::to_string(size) + " bytes, manifest says " + std::to_string(entry.bytes));
  const std::string digest = sha256_file(path);
  if (digest != entry.sha256)
    fail("SHA-256 " + digest + " does not match the manifest's " + entry.sha256 +
         "; the file is corrupt, repack the dataset");

  try {
    const auto file = hdf5::open_file_readonly(path);
    const auto header = data::read_shard_header(file);
    if (header.format_version != m.format_version || header.class_names != m.class_names ||
        header.image_size != m.image_size || header.channels != m.channels || header.dtype != m.dtype ||
        header.first_sample_id != entry.first_sample_id || header.shard_count != static_cast<int>(m.shards.size())) {
      fail("header attributes disagree with the manifest");
    }
    const auto images = hdf5::open_dataset(file, format::kImages);
    const auto shape = hdf5::dataset_shape(images);
    const std::vector<hsize_t> expected = {static_cast<hsize_t>(entry.sample_count), static_cast<hsize_t>(m.image_size),
                                           static_cast<hsize_t>(m.image_size), static_cast<hsize_t>(m.channels)};
    if (shape != expected) fail("images dataset has the wrong shape");
    hdf5::Handle type(hdf5::check(H5Dget_type(images), "get image type"), H5Tclose);
    const bool float_type = H5Tget_class(type) == H5T_FLOAT && H5Tget_size(type) == 4;
    const bool byte_type = H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 1;
    if ((m.dtype == "float32" && !float_type) || (m.dtype == "uint8" && !byte_type)) fail("images have the wrong type");

    const auto columns = data::read_shard_columns(file);
    if (static_cast<std::int64_t>(columns.labels.size()) != entry.sample_count)
      fail("column length differs from the manifest");
    std::vector<std::int64_t> class_counts(m.class_names.size(), 0);
    for (std::size_t i = 0; i < columns.labels.size(); ++i) {
      if (columns.sample_ids[i] != entry.first_sample_id + static_cast<std::int64_t>(i))
        fail("sample ids are not the manifest's range");
      const auto label = columns.labels[i];
      if (label < 0 || label >= static_cast<int>(m.class_names.size()))
        fail("label out of range at row " + std::to_string(i));
      ++class_counts[static_cast<std::size_t>(label)];
      if (columns.content_hash[i].size() != format::kContentHashHexLength)
        fail("malformed content hash at row " + std::to_string(i));
    }
    if (class_counts != entry.class_counts) fail("class counts differ from the manifest");
  } catch (const hdf5::Hdf5Error& e) {
    fail(std::string("schema error: ") + e.what());
  }
}

struct SampleInfo {
  int label;
  std::string split;
  std::string path;
  std::string content_hash;
  bool colour_discarded;
};

std::vector<SampleInfo> read_samples(const fs::path& dir, const data::Manifest& m) {
  std::vector<SampleInfo> samples;
  samples.reserve(static_cast<std::size_t>(m.sample_count));
  for (const auto& entry : m.shards) {
    const auto file = hdf5::open_file_readonly(dir / entry.file);
    const auto c = data::read_shard_columns(file);
    for (std::size_t i = 0; i < c.labels.size(); ++i) {
      samples.push_back(
          {c.labels[i], c.source_split[i], c.source_paths[i], c.content_hash[i], c.colour_discarded[i] != 0});
    }
  }
  return samples;
}

}  // namespace

VerifySummary verify_dataset(const fs::path& dataset_dir) {
  data::Manifest m;
  try {
    m = data::read_manifest(dataset_dir);
  } catch (const data::ManifestError& e) {
    throw VerifyError(e.what());
  }
  for (const auto& entry : m.shards) check_shard(dataset_dir, m, entry);
  if (m.folds.fold_count > 0) {
    for (const int f : m.folds.fold_of_sample) {
      if (f >= m.folds.fold_count || f < format::kFoldExcludedLeak) {
        throw VerifyError((dataset_dir / format::kManifestFile).string() + ": fold value " + std::to_string(f) +
                          " is out of range");
      }
    }
  }
  return {static_cast<int>(m.shards.size()), m.sample_count};
}

json build_audit(const fs::path& dataset_dir) {
  const auto m = data::read_manifest(dataset_dir);
  const auto samples = read_samples(dataset_dir, m);
  const auto& classes = m.class_names;

  json audit;
  audit["dataset"] = {{"directory", fs::absolute(dataset_dir).lexically_normal().string()},
                      {"samples", m.sample_count},
                      {"classes", classes},
                      {"splits", m.split_names},
                      {"image_size", m.image_size},
                      {"channels", m.channels},
                      {"dtype", m.dtype},
                      {"shards", m.shards.size()}};
  audit["counts_by_split_and_class"] = m.counts_by_split_and_class;

  std::int64_t in_groups = 0, redundant = 0, exact_groups = 0;
  std::size_t largest = 0;
  // with_duplicate_in[A][B]: samples of split A that have a duplicate (another member of their
  // group) in split B. The diagonal is duplication within a split; the rest is cross-split leakage.
  std::map<std::string, std::map<std::string, std::int64_t>> with_duplicate_in;
  json conflicts = json::array();
  for (const auto& group : m.duplicate_groups) {
    in_groups += static_cast<std::int64_t>(group.members.size());
    redundant += static_cast<std::int64_t>(group.members.size()) - 1;
    exact_groups += group.exact ? 1 : 0;
    largest = std::max(largest, group.members.size());
    for (const auto a : group.members) {
      std::set<std::string> other_splits;
      for (const auto b : group.members) {
        if (a != b) other_splits.insert(samples[static_cast<std::size_t>(b)].split);
      }
      for (const auto& split : other_splits) ++with_duplicate_in[samples[static_cast<std::size_t>(a)].split][split];
    }
    if (group.label_conflict) {
      json members = json::array();
      for (const auto id : group.members) {
        const auto& s = samples[static_cast<std::size_t>(id)];
        members.push_back({{"sample_id", id},
                           {"class", classes[static_cast<std::size_t>(s.label)]},
                           {"split", s.split},
                           {"path", s.path}});
      }
      conflicts.push_back({{"exact", group.exact}, {"members", members}});
    }
  }
  // Byte-level duplication alone (same decoded pixels), whatever the near-duplicate threshold.
  std::map<std::string, std::int64_t> copies_of_hash;
  for (const auto& s : samples) ++copies_of_hash[s.content_hash];
  std::int64_t identical_groups = 0, identical_redundant = 0;
  for (const auto& [hash, copies] : copies_of_hash) {
    identical_groups += copies > 1;
    identical_redundant += copies - 1;
  }
  audit["duplicates"] = {{"near_duplicate_bits", m.near_duplicate_bits},
                         {"identical_pixel_groups", identical_groups},
                         {"identical_pixel_redundant_images", identical_redundant},
                         {"groups", m.duplicate_groups.size()},
                         {"exact_groups", exact_groups},
                         {"near_only_groups", static_cast<std::int64_t>(m.duplicate_groups.size()) - exact_groups},
                         {"images_in_groups", in_groups},
                         {"redundant_images", redundant},
                         {"unique_images", m.sample_count - redundant},
                         {"largest_group", largest},
                         {"samples_with_duplicate_in_split", with_duplicate_in}};
  audit["label_conflicts"] = {{"count", conflicts.size()}, {"groups", conflicts}};

  json colour = json::array();
  for (const auto& s : samples) {
    if (s.colour_discarded) colour.push_back(s.path);
  }
  audit["colour_discarded"] = {{"count", colour.size()}, {"paths", colour}};

  json rejected = json::array();
  for (const auto& r : m.rejected) rejected.push_back({{"path", r.path}, {"reason", r.reason}});
  audit["rejected"] = {{"count", m.rejected.size()}, {"files", rejected}};

  if (m.folds.fold_count > 0) {
    const auto k = static_cast<std::size_t>(m.folds.fold_count);
    std::vector<std::vector<std::int64_t>> per_fold(k, std::vector<std::int64_t>(classes.size(), 0));
    std::int64_t held_out = 0, excluded = 0;
    for (std::size_t i = 0; i < samples.size(); ++i) {
      const int f = m.folds.fold_of_sample[i];
      if (f >= 0) ++per_fold[static_cast<std::size_t>(f)][static_cast<std::size_t>(samples[i].label)];
      held_out += f == format::kFoldHeldOut;
      excluded += f == format::kFoldExcludedLeak;
    }
    std::int64_t worst_spread = 0;
    for (std::size_t c = 0; c < classes.size(); ++c) {
      std::int64_t lo = per_fold[0][c], hi = per_fold[0][c];
      for (const auto& fold : per_fold) {
        lo = std::min(lo, fold[c]);
        hi = std::max(hi, fold[c]);
      }
      worst_spread = std::max(worst_spread, hi - lo);
    }
    std::int64_t groups_split = 0;
    for (const auto& group : m.duplicate_groups) {
      std::set<int> folds;
      for (const auto id : group.members) {
        const int f = m.folds.fold_of_sample[static_cast<std::size_t>(id)];
        if (f >= 0) folds.insert(f);
      }
      groups_split += folds.size() > 1;
    }
    std::vector<std::string> split_of_sample(samples.size());
    std::transform(samples.begin(), samples.end(), split_of_sample.begin(),
                   [](const SampleInfo& sample) { return sample.split; });
    const auto contaminated = data::contaminated_held_out(m, split_of_sample, m.folds.held_out_split);
    audit["folds"] = {
        {"fold_count", m.folds.fold_count},
        {"seed", m.folds.seed},
        {"held_out_split", m.folds.held_out_split},
        {"holdout_policy", name_of(m.folds.holdout_policy)},
        {"held_out_samples_with_copy_in_folds", std::count(contaminated.begin(), contaminated.end(), true)},
        {"class_counts_per_fold", per_fold},
        {"max_class_spread_across_folds", worst_spread},
        {"held_out_samples", held_out},
        {"excluded_duplicates_of_held_out", excluded},
        {"duplicate_groups_split_across_folds", groups_split}};
  }
  return audit;
}

std::string render_audit(const json& a) {
  std::ostringstream out;
  const auto& d = a["dataset"];
  out << "Dataset " << d["directory"].get<std::string>() << "\n";
  out << "  " << d["samples"] << " images, " << d["classes"].size() << " classes, " << d["image_size"] << "x"
      << d["image_size"] << "x" << d["channels"] << " " << d["dtype"].get<std::string>() << ", " << d["shards"]
      << " shard(s)\n\nCounts by split and class\n";
  for (const auto& [split, per_class] : a["counts_by_split_and_class"].items()) {
    out << "  " << split << ":";
    for (const auto& [name, count] : per_class.items()) out << " " << name << "=" << count;
    out << "\n";
  }
  const auto& dup = a["duplicates"];
  out << "\nDuplicates\n  identical pixels: " << dup["identical_pixel_groups"] << " groups, "
      << dup["identical_pixel_redundant_images"] << " redundant copies\n"
      << "  identical or perceptual hash within " << dup["near_duplicate_bits"] << " bits: " << dup["groups"]
      << " groups (" << dup["exact_groups"] << " all identical, " << dup["near_only_groups"]
      << " with near matches) hold " << dup["images_in_groups"] << " images; " << dup["redundant_images"]
      << " are redundant copies, leaving " << dup["unique_images"]
      << " unique images; largest group: " << dup["largest_group"] << "\n";
  for (const auto& [split, others] : dup["samples_with_duplicate_in_split"].items()) {
    for (const auto& [other, count] : others.items()) {
      out << "  " << split << " images with a duplicate " << (split == other ? "within " : "in ") << other << ": "
          << count << "\n";
    }
  }
  const auto& conflicts = a["label_conflicts"];
  out << "\nLabel conflicts (one image under different classes): " << conflicts["count"] << "\n";
  for (const auto& group : conflicts["groups"]) {
    out << "  -";
    for (const auto& member : group["members"]) {
      out << " " << member["path"].get<std::string>() << " [" << member["class"].get<std::string>() << "]";
    }
    out << "\n";
  }
  out << "\nColour discarded by grayscale conversion: " << a["colour_discarded"]["count"] << " images\n";
  out << "Rejected inputs: " << a["rejected"]["count"] << "\n";
  for (const auto& r : a["rejected"]["files"]) {
    out << "  - " << r["path"].get<std::string>() << ": " << r["reason"].get<std::string>() << "\n";
  }
  if (a.contains("folds")) {
    const auto& f = a["folds"];
    out << "\nFolds: " << f["fold_count"] << " (seed " << f["seed"] << ")";
    if (!f["held_out_split"].get<std::string>().empty()) {
      out << ", held-out split " << f["held_out_split"].get<std::string>() << " (" << f["held_out_samples"]
          << " images), policy " << f.value("holdout_policy", std::string("drop-train")) << ": "
          << f["excluded_duplicates_of_held_out"] << " training images excluded as copies of held-out images, "
          << f.value("held_out_samples_with_copy_in_folds", 0) << " held-out images with a copy in the folds";
    }
    out << "\n";
    int index = 0;
    for (const auto& counts : f["class_counts_per_fold"]) {
      out << "  fold " << index++ << ":";
      for (std::size_t c = 0; c < counts.size(); ++c)
        out << " " << d["classes"][c].get<std::string>() << "=" << counts[c];
      out << "\n";
    }
    out << "  largest per-class difference between folds: " << f["max_class_spread_across_folds"]
        << "; duplicate groups split across folds: " << f["duplicate_groups_split_across_folds"] << "\n";
  }
  return out.str();
}

}  // namespace brainmri::prep
