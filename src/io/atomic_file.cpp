// Crash-safe file and directory writes: temp name, fsync, rename, fsync of
// the directory (see loom/io/atomic_file.hpp for the guarantees).
#include "loom/io/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "loom/core/error.hpp"

namespace loom::io {

namespace fs = std::filesystem;

namespace {

std::string errno_text() { return std::strerror(errno); }

std::string parent_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// Strips trailing slashes so that "a/b/" and "a/b" name the same directory.
std::string without_trailing_slash(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

void fsync_fd(int fd, const std::string& what) {
  while (::fsync(fd) != 0) {
    if (errno == EINTR) continue;
    LOOM_FAIL("atomic write: fsync of '", what, "' failed: ", errno_text());
  }
}

void remove_tree_quietly(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

}  // namespace

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  LOOM_CHECK(fd >= 0, "atomic write: cannot open directory '", dir, "' to fsync it: ", errno_text());
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some file systems do not support fsync on directories (EINVAL); the rename
  // is then as durable as that file system makes it.
  LOOM_CHECK(rc == 0 || err == EINVAL, "atomic write: fsync of directory '", dir, "' failed: ", std::strerror(err));
}

bool is_temp_name(std::string_view name) {
  return name.find(".tmp-") != std::string_view::npos || name.find(".tmp.") != std::string_view::npos;
}

// ---------------------------------------------------------------------------
// AtomicFile

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  LOOM_CHECK(!path_.empty(), "atomic write: empty file name");
  temp_path_ = path_ + ".tmp." + std::to_string(::getpid());
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  LOOM_CHECK(fd_ >= 0, "atomic write: cannot create '", temp_path_, "' (for '", path_, "'): ", errno_text());
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  LOOM_CHECK(fd_ >= 0, "atomic write: '", path_, "' is already committed");
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      LOOM_FAIL("atomic write: writing '", temp_path_, "' failed after ", bytes_, " bytes: ", errno_text());
    }
    p += w;
    n -= static_cast<size_t>(w);
    bytes_ += static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  LOOM_CHECK(fd_ >= 0, "atomic write: '", path_, "' is already committed");
  fsync_fd(fd_, temp_path_);
  const int rc = ::close(fd_);
  fd_ = -1;
  LOOM_CHECK(rc == 0, "atomic write: closing '", temp_path_, "' failed: ", errno_text());
  LOOM_CHECK(::rename(temp_path_.c_str(), path_.c_str()) == 0, "atomic write: renaming '", temp_path_, "' to '",
             path_, "' failed: ", errno_text());
  committed_ = true;
  fsync_dir(parent_of(path_));
}

void atomic_write_file(const std::string& path, std::string_view contents) {
  AtomicFile f(path);
  f.write(contents);
  f.commit();
}

// ---------------------------------------------------------------------------
// AtomicDir

AtomicDir::AtomicDir(std::string dir) : dir_(without_trailing_slash(std::move(dir))) {
  LOOM_CHECK(!dir_.empty(), "atomic directory: empty directory name");
  temp_dir_ = dir_ + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::create_directories(parent_of(dir_), ec);
  LOOM_CHECK(!ec, "atomic directory: cannot create the parent of '", dir_, "': ", ec.message());
  fs::remove_all(temp_dir_, ec);  // a leftover of an earlier process with our pid
  LOOM_CHECK(!ec, "atomic directory: cannot remove the stale '", temp_dir_, "': ", ec.message());
  LOOM_CHECK(::mkdir(temp_dir_.c_str(), 0755) == 0, "atomic directory: cannot create '", temp_dir_, "': ",
             errno_text());
}

AtomicDir::~AtomicDir() {
  if (!committed_) remove_tree_quietly(temp_dir_);
}

void AtomicDir::commit() {
  LOOM_CHECK(!committed_, "atomic directory: '", dir_, "' is already committed");
  fsync_dir(temp_dir_);
  const std::string parent = parent_of(dir_);
  struct stat st{};
  if (::lstat(dir_.c_str(), &st) != 0) {
    // The common case: a new directory.
    LOOM_CHECK(::rename(temp_dir_.c_str(), dir_.c_str()) == 0, "atomic directory: renaming '", temp_dir_, "' to '",
               dir_, "' failed: ", errno_text());
    committed_ = true;
    fsync_dir(parent);
    return;
  }
  // Replace an existing directory: swap the two atomically, then remove the
  // old one (now under the temporary name, which readers ignore).
  if (::renameat2(AT_FDCWD, temp_dir_.c_str(), AT_FDCWD, dir_.c_str(), RENAME_EXCHANGE) == 0) {
    committed_ = true;
    fsync_dir(parent);
    remove_tree_quietly(temp_dir_);
    return;
  }
  LOOM_CHECK(errno == EINVAL || errno == ENOSYS, "atomic directory: exchanging '", temp_dir_, "' with '", dir_,
             "' failed: ", errno_text());
  // No RENAME_EXCHANGE on this file system: move the old one aside first. A
  // crash between the two renames leaves DIR missing (and DIR.tmp-*-old).
  const std::string old = temp_dir_ + "-old";
  remove_tree_quietly(old);
  LOOM_CHECK(::rename(dir_.c_str(), old.c_str()) == 0, "atomic directory: moving the old '", dir_, "' aside failed: ",
             errno_text());
  LOOM_CHECK(::rename(temp_dir_.c_str(), dir_.c_str()) == 0, "atomic directory: renaming '", temp_dir_, "' to '",
             dir_, "' failed: ", errno_text());
  committed_ = true;
  fsync_dir(parent);
  remove_tree_quietly(old);
}

}  // namespace loom::io
