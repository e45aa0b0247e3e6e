#pragma once
// Crash-safe file output: content goes to a temporary sibling that is fsynced and then renamed
// over the destination, so a reader sees either the old file or the complete new one.

#include <filesystem>
#include <string_view>

namespace brainmri {

void write_file_atomically(const std::filesystem::path& destination, std::string_view content);

// Flushes a file or directory entry to stable storage; throws std::system_error naming the path.
void fsync_path(const std::filesystem::path& path);

}  // namespace brainmri
