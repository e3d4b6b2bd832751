// Crash-safe writes of files and directories.
//
// A file is written to `PATH.tmp.<pid>`, flushed and fsync'ed, renamed over
// PATH, and the containing directory is fsync'ed: a reader (or a process that
// is killed at any moment, or a machine that loses power) sees either the old
// file or the complete new one, never a torn one.
//
// A directory (a checkpoint) is built as `DIR.tmp-<pid>/`, every file in it
// fsync'ed, the directory fsync'ed, then renamed to DIR and the parent
// fsync'ed. An existing DIR is swapped out atomically (renameat2
// RENAME_EXCHANGE) and then removed. Anything named `*.tmp-*` is an unfinished
// leftover of a killed writer and is ignored by readers.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace loom::io {

class AtomicFile {
 public:
  // Creates (truncates) the temporary file next to `path`; the parent
  // directory must exist.
  explicit AtomicFile(std::string path);
  ~AtomicFile();  // removes the temporary file unless commit() succeeded
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  size_t bytes_written() const { return bytes_; }
  const std::string& temp_path() const { return temp_path_; }

  // fsync + close, rename over the final path, fsync the directory.
  void commit();

 private:
  std::string path_, temp_path_;
  int fd_ = -1;
  size_t bytes_ = 0;
  bool committed_ = false;
};

// Writes `contents` to `path` atomically.
void atomic_write_file(const std::string& path, std::string_view contents);

class AtomicDir {
 public:
  // Creates `dir + ".tmp-<pid>"` (removing a stale one of the same name) and
  // the parents of `dir` if they are missing.
  explicit AtomicDir(std::string dir);
  ~AtomicDir();  // removes the temporary directory unless commit() succeeded
  AtomicDir(const AtomicDir&) = delete;
  AtomicDir& operator=(const AtomicDir&) = delete;

  // Where to write the contents (each file via AtomicFile, or fsync'ed).
  const std::string& path() const { return temp_dir_; }
  std::string file(const std::string& name) const { return temp_dir_ + "/" + name; }

  // fsync the temporary directory, rename it to the final name (atomically
  // replacing an existing one), fsync the parent.
  void commit();

 private:
  std::string dir_, temp_dir_;
  bool committed_ = false;
};

// True for names of unfinished writes: "x.tmp-123", "x.tmp-123-old".
bool is_temp_name(std::string_view name);

// fsync of a directory (so that a rename or create inside it is durable).
void fsync_dir(const std::string& dir);

}  // namespace loom::io
