#include "packer.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <map>
#include <mutex>
#include <opencv2/imgproc.hpp>
#include <optional>
#include <thread>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/common/sha256.hpp"
#include "brainmri/data/dataset_format.hpp"
#include "brainmri/data/hdf5.hpp"
#include "brainmri/data/shard_file.hpp"
#include "brainmri/version.hpp"
#include "chunk_codec.hpp"
#include "grouping.hpp"
#include "hashing.hpp"

namespace brainmri::prep {
namespace fs = std::filesystem;
namespace format = data::format;

namespace {

// Everything a worker learns about one candidate; `chunk` is ready for H5Dwrite_chunk.
struct ProcessedSample {
  std::optional<std::string> rejection;
  std::vector<std::uint8_t> chunk;
  std::string content_hash;
  std::uint64_t perceptual_hash = 0;
  bool colour_discarded = false;
  int original_width = 0;
  int original_height = 0;
};

ProcessedSample process_candidate(const Candidate& candidate, const imaging::PreprocessOptions& preprocess,
                                  const data::ShardGeometry& geometry, int compression_level) {
  ProcessedSample result;
  try {
    const auto decoded = imaging::decode_image_file(candidate.absolute_path);
    const auto image = imaging::preprocess(decoded, preprocess);
    const cv::Mat quantized = imaging::to_uint8(image.pixels);
    const auto* begin = image.pixels.ptr<std::uint8_t>(0);
    result.chunk = encode_chunk({begin, geometry.bytes_per_image()}, geometry.element_size(), compression_level);
    result.content_hash = content_hash(decoded.pixels);
    cv::Mat gray;
    if (quantized.channels() == 1) {
      gray = quantized;
    } else {
      cv::cvtColor(quantized, gray, cv::COLOR_RGB2GRAY);
    }
    result.perceptual_hash = perceptual_hash(gray);
    result.colour_discarded = image.colour_discarded;
    result.original_width = image.source_width;
    result.original_height = image.source_height;
  } catch (const imaging::ImageRejected& e) {
    result.rejection = e.what();
  } catch (const cv::Exception& e) {
    result.rejection = std::string("OpenCV error: ") + e.what();
  }
  return result;
}

std::string shard_file_name(int index, int count) {
  char name[64];
  std::snprintf(name, sizeof(name), "shard-%05d-of-%05d.h5", index, count);
  return name;
}

// Runs process_candidate on a pool of threads and hands results to the caller in input order.
// At most `window` results wait at once, so memory stays flat however many images there are.
class OrderedPipeline {
 public:
  OrderedPipeline(const std::vector<const Candidate*>& inputs, int threads,
                  std::function<ProcessedSample(const Candidate&)> work, const std::atomic<bool>* cancel)
      : inputs_(inputs),
        work_(std::move(work)),
        cancel_(cancel),
        window_(static_cast<std::size_t>(threads) * 4),
        slots_(window_) {
    for (int t = 0; t < threads; ++t) workers_.emplace_back([this] { run_worker(); });
  }
  OrderedPipeline(const OrderedPipeline&) = delete;
  OrderedPipeline& operator=(const OrderedPipeline&) = delete;
  ~OrderedPipeline() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    space_freed_.notify_all();
  }

  // Blocks until input `index` (which must be the next one) is processed.
  ProcessedSample take(std::size_t index) {
    std::unique_lock lock(mutex_);
    // Timed waits: a cancellation request arrives from a signal handler, which cannot notify.
    while (!(slots_[index % window_].has_value() || failure_ || cancelled()))
      result_ready_.wait_for(lock, kPollInterval);
    if (failure_) std::rethrow_exception(failure_);
    if (cancelled()) throw PackError("interrupted");
    ProcessedSample sample = std::move(*slots_[index % window_]);
    slots_[index % window_].reset();
    ++consumed_;
    lock.unlock();
    space_freed_.notify_one();  // one more input may now start
    return sample;
  }

 private:
  static constexpr std::chrono::milliseconds kPollInterval{100};
  bool cancelled() const { return cancel_ && cancel_->load(); }

  void run_worker() {
    while (true) {
      const std::size_t index = next_.fetch_add(1);
      if (index >= inputs_.size()) return;
      {
        std::unique_lock lock(mutex_);
        while (!(index < consumed_ + window_ || stopping_ || failure_ || cancelled())) {
          space_freed_.wait_for(lock, kPollInterval);
        }
        if (stopping_ || failure_ || cancelled()) return;
      }
      try {
        ProcessedSample sample = work_(*inputs_[index]);
        std::lock_guard lock(mutex_);
        slots_[index % window_] = std::move(sample);
      } catch (...) {
        std::lock_guard lock(mutex_);
        if (!failure_) failure_ = std::current_exception();
        space_freed_.notify_all();  // the other workers stop too
      }
      result_ready_.notify_one();  // only the consumer waits for results
    }
  }

  const std::vector<const Candidate*>& inputs_;
  std::function<ProcessedSample(const Candidate&)> work_;
  const std::atomic<bool>* cancel_;
  const std::size_t window_;
  std::vector<std::optional<ProcessedSample>> slots_;
  std::atomic<std::size_t> next_{0};
  std::mutex mutex_;
  std::condition_variable result_ready_;  // workers -> consumer
  std::condition_variable space_freed_;   // consumer -> workers
  std::size_t consumed_ = 0;
  bool stopping_ = false;
  std::exception_ptr failure_;
  std::vector<std::jthread> workers_;  // last member: joined before the state above is destroyed
};

// Removes the temporary output unless release() was called.
class TemporaryDirectory {
 public:
  explicit TemporaryDirectory(fs::path path) : path_(std::move(path)) {}
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;
  ~TemporaryDirectory() {
    if (!path_.empty()) {
      std::error_code ignored;
      fs::remove_all(path_, ignored);
    }
  }
  const fs::path& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  fs::path path_;
};

data::Manifest manifest_header(const PackOptions& options, const Discovery& discovery,
                               const data::ShardGeometry& geometry) {
  data::Manifest m;
  m.format_version = format::kFormatVersion;
  m.tool_version = std::string("brainmri-prep ") + kVersion;
  m.command_line = options.command_line;
  for (const auto& root : options.discovery.roots) m.roots.push_back(fs::absolute(root).lexically_normal().string());
  m.class_names = discovery.class_names;
  m.split_names = discovery.split_names;
  m.image_size = geometry.image_size;
  m.channels = geometry.channels;
  m.dtype = geometry.float32 ? "float32" : "uint8";
  m.normalization_scale = geometry.float32 ? 1.0 : 1.0 / 255.0;
  m.normalization_offset = 0.0;
  m.resize_mode = imaging::to_string(options.preprocess.resize);
  m.compression_level = options.compression_level;
  m.near_duplicate_bits = options.near_duplicate_bits;
  return m;
}

void validate(const PackOptions& options) {
  if (options.output.empty()) throw PackError("no output directory given (--out)");
  if (options.preprocess.size < 8 || options.preprocess.size > 4096) {
    throw PackError("--size must be between 8 and 4096, got " + std::to_string(options.preprocess.size));
  }
  if (options.preprocess.channels != 1 && options.preprocess.channels != 3) {
    throw PackError("--channels must be 1 or 3, got " + std::to_string(options.preprocess.channels));
  }
  if (options.compression_level < 0 || options.compression_level > 9) {
    throw PackError("--compression must be 0..9, got " + std::to_string(options.compression_level));
  }
  if (options.near_duplicate_bits < -1 || options.near_duplicate_bits > 32) {
    throw PackError("--near-dup-bits must be -1 (off) or 0..32, got " + std::to_string(options.near_duplicate_bits));
  }
  if (options.fold_count == 1 || options.fold_count < 0) {
    throw PackError("--folds must be 0 (none) or at least 2, got " + std::to_string(options.fold_count));
  }
  if (fs::exists(options.output) && !options.force) {
    throw PackError("output " + options.output.string() + " already exists; choose another --out or pass --force");
  }
}

}  // namespace

fs::path temporary_output_path(const fs::path& output) {
  const fs::path absolute = fs::absolute(output).lexically_normal();
  const fs::path clean = absolute.has_filename() ? absolute : absolute.parent_path();
  // Appended piecewise: GCC 12 at -O3 reports a false -Wrestrict on the chained operator+.
  std::string name = ".";
  name += clean.filename().string();
  name += ".partial-";
  name += std::to_string(::getpid());
  return clean.parent_path() / name;
}

namespace {

// The per-sample facts the whole-dataset analysis needs, indexed by sample id.
struct PackedSamples {
  std::vector<int> labels;
  std::vector<int> splits;
  std::vector<std::string> content_hashes;
  std::vector<std::uint64_t> perceptual_hashes;
};

data::ShardHeader shard_header(const data::Manifest& m, int shard_index, int shard_count, std::int64_t first_id) {
  return {m.format_version,       m.class_names,  m.image_size, m.channels,  m.dtype, m.normalization_scale,
          m.normalization_offset, m.tool_version, shard_index,  shard_count, first_id};
}

// Runs the pipeline over every candidate and writes the shards into `directory`; fills the
// manifest's shard list and rejections.
PackedSamples write_shards(const PackOptions& options, const Discovery& discovery, const data::ShardGeometry& geometry,
                           const fs::path& directory, data::Manifest& manifest, const std::atomic<bool>* cancel) {
  std::vector<int> candidate_labels;
  for (const auto& c : discovery.candidates) candidate_labels.push_back(c.label);
  const int shard_count =
      options.shard_count > 0
          ? options.shard_count
          : default_shard_count(discovery.candidates.size(), geometry.bytes_per_image(), options.shard_target_bytes);
  if (static_cast<std::size_t>(shard_count) > discovery.candidates.size()) {
    throw PackError("--shards " + std::to_string(shard_count) + " is more than the " +
                    std::to_string(discovery.candidates.size()) + " input files");
  }
  const auto plan = plan_stratified_shards(candidate_labels, shard_count);
  std::vector<const Candidate*> ordered;
  for (const auto& shard : plan) {
    for (auto index : shard) ordered.push_back(&discovery.candidates[index]);
  }

  const int threads =
      options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  OrderedPipeline pipeline(
      ordered, threads,
      [&](const Candidate& c) { return process_candidate(c, options.preprocess, geometry, options.compression_level); },
      cancel);

  PackedSamples packed;
  std::size_t next_input = 0;
  std::optional<ProgressMeter> meter;
  if (options.progress && options.progress_style != ProgressStyle::None) {
    meter.emplace("packing", static_cast<std::int64_t>(ordered.size()), "images", options.progress_style,
                  options.progress_seconds, [&](const std::string& text, bool in_place) {
                    if (!in_place) return options.progress(text);
                    std::fprintf(stderr, "\rbrainmri-prep: %s\033[K", text.c_str());
                    std::fflush(stderr);
                  });
  }
  for (int shard_index = 0; shard_index < shard_count; ++shard_index) {
    const auto& members = plan[static_cast<std::size_t>(shard_index)];
    const std::string file_name = shard_file_name(shard_index, shard_count);
    const fs::path shard_path = directory / file_name;
    data::ShardWriter writer(shard_path, geometry, members.size(), options.compression_level);
    data::ShardColumns columns;
    const auto first_sample_id = static_cast<std::int64_t>(packed.labels.size());
    for (std::size_t k = 0; k < members.size(); ++k, ++next_input) {
      ProcessedSample sample = pipeline.take(next_input);
      const Candidate& candidate = *ordered[next_input];
      if (sample.rejection) {
        if (options.strict) {
          throw PackError("--strict: " + candidate.absolute_path.string() + ": " + *sample.rejection);
        }
        manifest.rejected.push_back({candidate.absolute_path.string(), *sample.rejection});
        continue;
      }
      writer.append_encoded(sample.chunk);
      columns.labels.push_back(candidate.label);
      columns.sample_ids.push_back(first_sample_id + static_cast<std::int64_t>(columns.sample_ids.size()));
      columns.source_paths.push_back(candidate.relative_path);
      columns.source_roots.push_back(candidate.root_index);
      columns.source_split.push_back(discovery.split_names[static_cast<std::size_t>(candidate.split_index)]);
      columns.content_hash.push_back(sample.content_hash);
      columns.phash.push_back(sample.perceptual_hash);
      columns.colour_discarded.push_back(sample.colour_discarded ? 1 : 0);
      columns.original_width.push_back(sample.original_width);
      columns.original_height.push_back(sample.original_height);
      packed.labels.push_back(candidate.label);
      packed.splits.push_back(candidate.split_index);
      packed.content_hashes.push_back(std::move(sample.content_hash));
      packed.perceptual_hashes.push_back(sample.perceptual_hash);
      if (meter) meter->advance(1);
    }
    writer.finish(shard_header(manifest, shard_index, shard_count, first_sample_id), columns);

    data::ShardEntry entry;
    entry.file = file_name;
    entry.first_sample_id = first_sample_id;
    entry.sample_count = static_cast<std::int64_t>(writer.rows());
    entry.bytes = static_cast<std::int64_t>(fs::file_size(shard_path));
    entry.sha256 = sha256_file(shard_path);
    entry.class_counts.assign(discovery.class_names.size(), 0);
    for (const auto label : columns.labels) ++entry.class_counts[static_cast<std::size_t>(label)];
    manifest.shards.push_back(std::move(entry));
  }
  if (meter) meter->finish();
  return packed;
}

// Counts, duplicate groups and the fold assignment: everything that needs all samples at once.
void analyse_dataset(const PackOptions& options, const Discovery& discovery, const PackedSamples& packed,
                     data::Manifest& manifest) {
  manifest.sample_count = static_cast<std::int64_t>(packed.labels.size());
  std::vector<std::int64_t> per_class(discovery.class_names.size(), 0);
  for (std::size_t i = 0; i < packed.labels.size(); ++i) {
    const auto label = static_cast<std::size_t>(packed.labels[i]);
    ++manifest.counts_by_split_and_class[discovery.split_names[static_cast<std::size_t>(packed.splits[i])]]
                                        [discovery.class_names[label]];
    ++per_class[label];
  }
  for (std::size_t c = 0; c < per_class.size(); ++c) {
    if (per_class[c] == 0) {
      throw PackError("class '" + discovery.class_names[c] + "' has no decodable image; see the rejected files");
    }
  }

  const auto duplicates =
      find_duplicate_groups(packed.content_hashes, packed.perceptual_hashes, options.near_duplicate_bits);
  for (std::size_t g = 0; g < duplicates.groups.size(); ++g) {
    const auto& members = duplicates.groups[g];
    if (members.size() < 2) continue;
    const bool conflict = std::any_of(members.begin(), members.end(), [&](std::int64_t m) {
      return packed.labels[static_cast<std::size_t>(m)] != packed.labels[static_cast<std::size_t>(members[0])];
    });
    manifest.duplicate_groups.push_back({members, duplicates.exact[g], conflict});
  }

  if (options.fold_count >= 2) {
    data::FoldOptions fold_options{options.fold_count, options.seed, std::nullopt, options.holdout_policy};
    if (!options.held_out_split.empty()) {
      fold_options.held_out_split = static_cast<int>(
          std::find(discovery.split_names.begin(), discovery.split_names.end(), options.held_out_split) -
          discovery.split_names.begin());
    }
    manifest.folds.fold_count = options.fold_count;
    manifest.folds.seed = options.seed;
    manifest.folds.held_out_split = options.held_out_split;
    manifest.folds.holdout_policy = options.holdout_policy;
    manifest.folds.fold_of_sample =
        data::assign_group_folds(packed.labels, packed.splits, duplicates.group_of_sample,
                                 static_cast<int>(discovery.class_names.size()), fold_options);
  }
}

// Writes the manifest last and renames the finished directory into place. An existing output
// (only with --force) is moved aside first and removed after the new one is in place, so at no
// moment is there a half-written directory at --out.
void publish(const data::Manifest& manifest, TemporaryDirectory& temporary, const fs::path& final_output) {
  write_file_atomically(temporary.path() / format::kManifestFile, data::serialize_manifest(manifest));
  fsync_path(temporary.path());
  std::optional<TemporaryDirectory> previous;
  if (fs::exists(final_output)) {
    auto aside = temporary.path();
    aside += ".previous";
    fs::rename(final_output, aside);
    previous.emplace(aside);
  }
  fs::rename(temporary.path(), final_output);
  temporary.release();
  fsync_path(final_output.parent_path());
}

}  // namespace

data::Manifest pack_dataset(const PackOptions& options, const std::atomic<bool>* cancel) {
  validate(options);
  const Discovery discovery = discover_dataset(options.discovery);
  if (!options.held_out_split.empty() && std::find(discovery.split_names.begin(), discovery.split_names.end(),
                                                   options.held_out_split) == discovery.split_names.end()) {
    throw PackError("--holdout-split " + options.held_out_split + " is not one of the packed splits");
  }
  const data::ShardGeometry geometry{options.preprocess.size, options.preprocess.channels,
                                     options.preprocess.output == imaging::PixelType::kFloat32};
  data::Manifest manifest = manifest_header(options, discovery, geometry);

  TemporaryDirectory temporary(temporary_output_path(options.output));
  std::error_code error;
  fs::remove_all(temporary.path(), error);
  if (!fs::create_directories(temporary.path(), error) || error) {
    throw PackError("cannot create " + temporary.path().string() + ": " + error.message() +
                    " (is the parent of --out writable?)");
  }
  const PackedSamples packed = write_shards(options, discovery, geometry, temporary.path(), manifest, cancel);
  analyse_dataset(options, discovery, packed, manifest);
  publish(manifest, temporary, fs::absolute(options.output).lexically_normal());
  return manifest;
}

}  // namespace brainmri::prep
