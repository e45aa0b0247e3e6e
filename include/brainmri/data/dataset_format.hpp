#pragma once
// The on-disk layout written by brainmri-prep and read by the trainer. docs/dataset-format.md
// describes the same names for Python users; change both together and bump kFormatVersion.

#include <string_view>

namespace brainmri::data::format {

// Version 2 added the original image size (kOriginalWidth, kOriginalHeight). Readers open every
// version from kOldestFormatVersion on; a column a version lacks is reported as unknown.
inline constexpr int kFormatVersion = 2;
inline constexpr int kOldestFormatVersion = 1;
inline constexpr std::string_view kManifestFile = "manifest.json";
inline constexpr std::string_view kAuditFile = "audit.json";

// Datasets in every shard, one row per sample.
inline constexpr const char* kImages = "images";                     // [n,H,W,C] uint8 or float32
inline constexpr const char* kLabels = "labels";                     // [n] int32, index into class_names
inline constexpr const char* kSampleIds = "sample_ids";              // [n] int64, global, contiguous per shard
inline constexpr const char* kSourcePaths = "source_paths";          // [n] string, relative to its root
inline constexpr const char* kSourceRoots = "source_roots";          // [n] int32, index into manifest roots
inline constexpr const char* kSourceSplit = "source_split";          // [n] string, e.g. "Training"
inline constexpr const char* kContentHash = "content_hash";          // [n] 64 hex chars, SHA-256 of decoded pixels
inline constexpr const char* kPerceptualHash = "phash";              // [n] uint64, DCT perceptual hash
inline constexpr const char* kColourDiscarded = "colour_discarded";  // [n] uint8, 1 = colour lost
inline constexpr const char* kOriginalWidth = "original_width";      // [n] int32, pixels (version 2)
inline constexpr const char* kOriginalHeight = "original_height";    // [n] int32, pixels (version 2)

// Attributes on the shard's root group.
inline constexpr const char* kAttrFormatVersion = "format_version";
inline constexpr const char* kAttrClassNames = "class_names";
inline constexpr const char* kAttrImageSize = "image_size";
inline constexpr const char* kAttrChannels = "channels";
inline constexpr const char* kAttrDtype = "dtype";                // "uint8" or "float32"
inline constexpr const char* kAttrScale = "normalization_scale";  // value = stored * scale + offset
inline constexpr const char* kAttrOffset = "normalization_offset";
inline constexpr const char* kAttrToolVersion = "tool_version";
inline constexpr const char* kAttrShardIndex = "shard_index";
inline constexpr const char* kAttrShardCount = "shard_count";
inline constexpr const char* kAttrFirstSampleId = "first_sample_id";

inline constexpr int kContentHashHexLength = 64;

// Fold values in the manifest besides 0..k-1.
inline constexpr int kFoldHeldOut = -1;       // belongs to the held-out test split
inline constexpr int kFoldExcludedLeak = -2;  // training image that duplicates a held-out image

}  // namespace brainmri::data::format
