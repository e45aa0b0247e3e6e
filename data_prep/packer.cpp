#include "packer.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <opencv2/imgproc.hpp>
#include <optional>
#include <thread>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/data/dataset_format.hpp"
#include "brainmri/data/hdf5.hpp"
#include "brainmri/version.hpp"
#include "chunk_codec.hpp"
#include "grouping.hpp"
#include "hashing.hpp"

namespace brainmri::prep {
namespace fs = std::filesystem;
namespace format = data::format;

namespace {

struct Geometry {
  int size;
  int channels;
  bool float32;
  std::size_t element_size() const { return float32 ? 4 : 1; }
  std::size_t bytes_per_image() const { return static_cast<std::size_t>(size) * size * channels * element_size(); }
};

// Everything a worker learns about one candidate; `chunk` is ready for H5Dwrite_chunk.
struct ProcessedSample {
  std::optional<std::string> rejection;
  std::vector<std::uint8_t> chunk;
  std::string content_hash;
  std::uint64_t perceptual_hash = 0;
  bool colour_discarded = false;
};

ProcessedSample process_candidate(const Candidate& candidate, const imaging::PreprocessOptions& preprocess,
                                  const Geometry& geometry, int compression_level) {
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
  } catch (const imaging::ImageRejected& e) {
    result.rejection = e.what();
  } catch (const cv::Exception& e) {
    result.rejection = std::string("OpenCV error: ") + e.what();
  }
  return result;
}

struct SampleRecord {
  int label;
  int split;
  int root;
  std::string source_path;
  std::string content_hash;
  std::uint64_t perceptual_hash;
  bool colour_discarded;
};

// Writes one shard file: images through direct chunk writes, per-sample columns at the end.
class ShardWriter {
 public:
  ShardWriter(fs::path path, const Geometry& geometry, std::size_t capacity, int compression_level)
      : path_(std::move(path)), geometry_(geometry), file_(hdf5::create_file(path_)) {
    const hsize_t extent[4] = {capacity, static_cast<hsize_t>(geometry.size), static_cast<hsize_t>(geometry.size),
                               static_cast<hsize_t>(geometry.channels)};
    const hsize_t max_extent[4] = {H5S_UNLIMITED, extent[1], extent[2], extent[3]};
    const hsize_t chunk[4] = {1, extent[1], extent[2], extent[3]};
    hdf5::Handle space(hdf5::check(H5Screate_simple(4, extent, max_extent), "create image dataspace"), H5Sclose);
    hdf5::Handle properties(hdf5::check(H5Pcreate(H5P_DATASET_CREATE), "create dataset properties"), H5Pclose);
    hdf5::check(H5Pset_chunk(properties, 4, chunk), "set image chunking");
    hdf5::check(H5Pset_shuffle(properties), "enable shuffle filter");
    hdf5::check(H5Pset_deflate(properties, static_cast<unsigned>(compression_level)), "enable deflate filter");
    const hid_t stored_type = geometry.float32 ? H5T_IEEE_F32LE : H5T_STD_U8LE;
    images_ = hdf5::Handle(hdf5::check(H5Dcreate2(file_, format::kImages, stored_type, space, H5P_DEFAULT, properties,
                                                  H5P_DEFAULT),
                                       "create images dataset in " + path_.string()),
                           H5Dclose);
  }

  void append(const std::vector<std::uint8_t>& chunk, SampleRecord record, std::int64_t sample_id) {
    const hsize_t offset[4] = {rows_, 0, 0, 0};
    hdf5::check(H5Dwrite_chunk(images_, H5P_DEFAULT, 0, offset, chunk.size(), chunk.data()),
                "write image " + record.source_path + " to " + path_.string());
    ++rows_;
    sample_ids_.push_back(sample_id);
    records_.push_back(std::move(record));
  }

  std::size_t rows() const { return rows_; }
  const std::vector<SampleRecord>& records() const { return records_; }

  void finish(const data::Manifest& header, int shard_index, int shard_count, std::int64_t first_sample_id,
              const std::vector<std::string>& split_names) {
    const hsize_t extent[4] = {rows_, static_cast<hsize_t>(geometry_.size), static_cast<hsize_t>(geometry_.size),
                               static_cast<hsize_t>(geometry_.channels)};
    hdf5::check(H5Dset_extent(images_, extent), "trim images dataset of " + path_.string());
    images_.close();

    std::vector<std::int32_t> labels, roots;
    std::vector<std::string> paths, splits, hashes;
    std::vector<std::uint64_t> phashes;
    std::vector<std::uint8_t> colour;
    for (const auto& r : records_) {
      labels.push_back(r.label);
      roots.push_back(r.root);
      paths.push_back(r.source_path);
      splits.push_back(split_names[static_cast<std::size_t>(r.split)]);
      hashes.push_back(r.content_hash);
      phashes.push_back(r.perceptual_hash);
      colour.push_back(r.colour_discarded ? 1 : 0);
    }
    hdf5::write_vector(file_, format::kLabels, labels);
    hdf5::write_vector(file_, format::kSampleIds, sample_ids_);
    hdf5::write_strings(file_, format::kSourcePaths, paths);
    hdf5::write_vector(file_, format::kSourceRoots, roots);
    hdf5::write_strings(file_, format::kSourceSplit, splits);
    hdf5::write_fixed_strings(file_, format::kContentHash, hashes, format::kContentHashHexLength);
    hdf5::write_vector(file_, format::kPerceptualHash, phashes);
    hdf5::write_vector(file_, format::kColourDiscarded, colour);

    hdf5::write_attribute(file_, format::kAttrFormatVersion, std::int64_t{format::kFormatVersion});
    hdf5::write_attribute(file_, format::kAttrClassNames, header.class_names);
    hdf5::write_attribute(file_, format::kAttrImageSize, std::int64_t{header.image_size});
    hdf5::write_attribute(file_, format::kAttrChannels, std::int64_t{header.channels});
    hdf5::write_attribute(file_, format::kAttrDtype, header.dtype);
    hdf5::write_attribute(file_, format::kAttrScale, header.normalization_scale);
    hdf5::write_attribute(file_, format::kAttrOffset, header.normalization_offset);
    hdf5::write_attribute(file_, format::kAttrToolVersion, header.tool_version);
    hdf5::write_attribute(file_, format::kAttrShardIndex, std::int64_t{shard_index});
    hdf5::write_attribute(file_, format::kAttrShardCount, std::int64_t{shard_count});
    hdf5::write_attribute(file_, format::kAttrFirstSampleId, first_sample_id);
    hdf5::check(H5Fflush(file_, H5F_SCOPE_GLOBAL), "flush " + path_.string());
    file_.close();
    fsync_path(path_);
  }

 private:
  fs::path path_;
  Geometry geometry_;
  hdf5::Handle file_;
  hdf5::Handle images_;
  hsize_t rows_ = 0;
  std::vector<std::int64_t> sample_ids_;
  std::vector<SampleRecord> records_;
};

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
      : inputs_(inputs), work_(std::move(work)), cancel_(cancel), window_(static_cast<std::size_t>(threads) * 4),
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
    while (!(slots_[index % window_].has_value() || failure_ || cancelled())) result_ready_.wait_for(lock, kPollInterval);
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

data::Manifest manifest_header(const PackOptions& options, const Discovery& discovery, const Geometry& geometry) {
  data::Manifest m;
  m.format_version = format::kFormatVersion;
  m.tool_version = std::string("brainmri-prep ") + kVersion;
  m.command_line = options.command_line;
  for (const auto& root : options.discovery.roots) m.roots.push_back(fs::absolute(root).lexically_normal().string());
  m.class_names = discovery.class_names;
  m.split_names = discovery.split_names;
  m.image_size = geometry.size;
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
  return clean.parent_path() / ("." + clean.filename().string() + ".partial-" + std::to_string(::getpid()));
}

data::Manifest pack_dataset(const PackOptions& options, const std::atomic<bool>* cancel) {
  validate(options);
  const Discovery discovery = discover_dataset(options.discovery);
  if (!options.held_out_split.empty() &&
      std::find(discovery.split_names.begin(), discovery.split_names.end(), options.held_out_split) ==
          discovery.split_names.end()) {
    throw PackError("--holdout-split " + options.held_out_split + " is not one of the packed splits");
  }
  const Geometry geometry{options.preprocess.size, options.preprocess.channels,
                          options.preprocess.output == imaging::PixelType::kFloat32};
  data::Manifest manifest = manifest_header(options, discovery, geometry);

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

  const fs::path final_output = fs::absolute(options.output).lexically_normal();
  TemporaryDirectory temporary(temporary_output_path(options.output));
  std::error_code error;
  fs::remove_all(temporary.path(), error);
  if (!fs::create_directories(temporary.path(), error) || error) {
    throw PackError("cannot create " + temporary.path().string() + ": " + error.message() +
                    " (is the parent of --out writable?)");
  }

  const int threads = options.threads > 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  OrderedPipeline pipeline(
      ordered, threads,
      [&](const Candidate& c) { return process_candidate(c, options.preprocess, geometry, options.compression_level); },
      cancel);

  std::vector<SampleRecord> all_records;
  std::size_t next_input = 0;
  std::size_t last_report = 0;
  for (int shard_index = 0; shard_index < shard_count; ++shard_index) {
    const auto& members = plan[static_cast<std::size_t>(shard_index)];
    const std::string file_name = shard_file_name(shard_index, shard_count);
    const fs::path shard_path = temporary.path() / file_name;
    ShardWriter writer(shard_path, geometry, members.size(), options.compression_level);
    const auto first_sample_id = static_cast<std::int64_t>(all_records.size());
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
      SampleRecord record{candidate.label,        candidate.split_index,  candidate.root_index,
                          candidate.relative_path, std::move(sample.content_hash), sample.perceptual_hash,
                          sample.colour_discarded};
      writer.append(sample.chunk, record, first_sample_id + static_cast<std::int64_t>(writer.rows()));
      all_records.push_back(std::move(record));
      if (options.progress && next_input + 1 >= last_report + std::max<std::size_t>(ordered.size() / 10, 1)) {
        last_report = next_input + 1;
        options.progress("processed " + std::to_string(next_input + 1) + "/" + std::to_string(ordered.size()) +
                         " images");
      }
    }
    writer.finish(manifest, shard_index, shard_count, first_sample_id, discovery.split_names);

    data::ShardEntry entry;
    entry.file = file_name;
    entry.first_sample_id = first_sample_id;
    entry.sample_count = static_cast<std::int64_t>(writer.rows());
    entry.bytes = static_cast<std::int64_t>(fs::file_size(shard_path));
    entry.sha256 = sha256_file(shard_path);
    entry.class_counts.assign(discovery.class_names.size(), 0);
    for (const auto& r : writer.records()) ++entry.class_counts[static_cast<std::size_t>(r.label)];
    manifest.shards.push_back(std::move(entry));
  }

  manifest.sample_count = static_cast<std::int64_t>(all_records.size());
  std::vector<std::int64_t> per_class(discovery.class_names.size(), 0);
  for (const auto& r : all_records) {
    ++manifest.counts_by_split_and_class[discovery.split_names[r.split]][discovery.class_names[r.label]];
    ++per_class[static_cast<std::size_t>(r.label)];
  }
  for (std::size_t c = 0; c < per_class.size(); ++c) {
    if (per_class[c] == 0) {
      throw PackError("class '" + discovery.class_names[c] + "' has no decodable image; see the rejected files");
    }
  }

  std::vector<std::string> hashes;
  std::vector<std::uint64_t> phashes;
  std::vector<int> labels, splits;
  for (const auto& r : all_records) {
    hashes.push_back(r.content_hash);
    phashes.push_back(r.perceptual_hash);
    labels.push_back(r.label);
    splits.push_back(r.split);
  }
  const auto duplicates = find_duplicate_groups(hashes, phashes, options.near_duplicate_bits);
  for (std::size_t g = 0; g < duplicates.groups.size(); ++g) {
    const auto& members = duplicates.groups[g];
    if (members.size() < 2) continue;
    const bool conflict = std::any_of(members.begin(), members.end(),
                                      [&](std::int64_t m) { return labels[m] != labels[members[0]]; });
    manifest.duplicate_groups.push_back({members, duplicates.exact[g], conflict});
  }

  if (options.fold_count >= 2) {
    FoldOptions fold_options{options.fold_count, options.seed, std::nullopt};
    if (!options.held_out_split.empty()) {
      fold_options.held_out_split = static_cast<int>(
          std::find(discovery.split_names.begin(), discovery.split_names.end(), options.held_out_split) -
          discovery.split_names.begin());
    }
    manifest.folds.fold_count = options.fold_count;
    manifest.folds.seed = options.seed;
    manifest.folds.held_out_split = options.held_out_split;
    manifest.folds.fold_of_sample = assign_group_folds(labels, splits, duplicates.group_of_sample,
                                                       static_cast<int>(discovery.class_names.size()), fold_options);
  }

  write_file_atomically(temporary.path() / format::kManifestFile, data::serialize_manifest(manifest));
  fsync_path(temporary.path());

  // Swap into place: an existing output (only with --force) is moved aside first and removed
  // after the new one is in place, so at no moment is there a half-written directory at --out.
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
  return manifest;
}

}  // namespace brainmri::prep
