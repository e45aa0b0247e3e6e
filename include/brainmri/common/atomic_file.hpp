#pragma once
// Crash-safe file output: content goes to a temporary sibling that is fsynced and then renamed
// over the destination, so a reader sees either the old file or the complete new one.

#include <filesystem>
#include <functional>
#include <string_view>

namespace brainmri {

void write_file_atomically(const std::filesystem::path& destination, std::string_view content);

// The same for writers that need a file name of their own (HDF5, LibTorch, PLplot): `write`
// creates the file at the temporary path it is given; it is then fsynced and renamed over
// `destination`. If `write` throws, the temporary file is removed and the exception propagates.
void replace_file_atomically(const std::filesystem::path& destination,
                             const std::function<void(const std::filesystem::path& temporary)>& write);

// Flushes a file or directory entry to stable storage; throws std::system_error naming the path.
void fsync_path(const std::filesystem::path& path);

}  // namespace brainmri
