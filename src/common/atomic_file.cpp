#include "brainmri/common/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

namespace brainmri {
namespace {

[[noreturn]] void throw_errno(const std::string& what, const std::filesystem::path& path) {
  throw std::system_error(errno, std::generic_category(), what + " " + path.string());
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

}  // namespace

void fsync_path(const std::filesystem::path& path) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw_errno("cannot open for fsync:", path);
  if (::fsync(fd.get()) != 0) throw_errno("cannot fsync", path);
}

namespace {

std::filesystem::path temporary_for(const std::filesystem::path& destination) {
  auto temporary = destination;
  temporary += ".tmp-" + std::to_string(::getpid());
  return temporary;
}

void rename_into_place(const std::filesystem::path& temporary, const std::filesystem::path& destination) {
  if (::rename(temporary.c_str(), destination.c_str()) != 0) {
    const int saved = errno;
    ::unlink(temporary.c_str());
    errno = saved;
    throw_errno("cannot rename into place:", destination);
  }
  fsync_path(destination.parent_path().empty() ? std::filesystem::path(".") : destination.parent_path());
}

}  // namespace

void replace_file_atomically(const std::filesystem::path& destination,
                             const std::function<void(const std::filesystem::path& temporary)>& write) {
  const auto temporary = temporary_for(destination);
  std::error_code ignored;
  try {
    write(temporary);
    if (!std::filesystem::exists(temporary)) throw std::runtime_error("nothing was written to " + destination.string());
    fsync_path(temporary);
  } catch (...) {
    std::filesystem::remove(temporary, ignored);
    throw;
  }
  rename_into_place(temporary, destination);
}

void write_file_atomically(const std::filesystem::path& destination, std::string_view content) {
  const auto temporary = temporary_for(destination);
  {
    FileDescriptor fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) throw_errno("cannot create", temporary);
    std::size_t written = 0;
    while (written < content.size()) {
      const ssize_t n = ::write(fd.get(), content.data() + written, content.size() - written);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int saved = errno;
        ::unlink(temporary.c_str());
        errno = saved;
        throw_errno("cannot write", temporary);
      }
      written += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0 || ::close(fd.release()) != 0) {
      const int saved = errno;
      ::unlink(temporary.c_str());
      errno = saved;
      throw_errno("cannot flush", temporary);
    }
  }
  rename_into_place(temporary, destination);
}

}  // namespace brainmri
