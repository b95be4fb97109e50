#pragma once
// Files under a directory handle, safe against links planted by whoever else can write
// there (a scanner's inbox writer, a careless neighbour): every name is opened relative
// to an open directory (openat) and never through a symbolic link (O_NOFOLLOW); new files
// are created exclusively (O_EXCL); a file is replaced by writing a temporary, fsync and
// renameat, which replaces a link at the name instead of following it. Errors carry
// errno, so a caller can tell a transient failure (retry later) from a permanent one.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

namespace lanegate::lane {

/// Why a file operation failed.
struct FileError {
  int code = 0;         ///< errno
  std::string message;  ///< names the file and the problem (printable: see printableName)
  /// True for what may pass by itself (EMFILE, ENFILE, EIO, EAGAIN, ENOMEM, EINTR, EBUSY):
  /// worth retrying later; anything else is about the file itself.
  [[nodiscard]] bool transient() const;
};

/// A value, or why not.
template <class T>
using FileResult = tl::expected<T, FileError>;

/// One entry of a directory, as lstat sees it (a link is a link, not what it points to).
struct DirEntry {
  std::string name;          ///< raw bytes, as the file system holds them
  bool regular = false;      ///< a regular file
  bool directory = false;    ///< a directory
  std::int64_t mtimeNs = 0;  ///< modification time, ns since the epoch
  std::uint64_t size = 0;    ///< bytes
};

/// An open directory. Move-only; closes its descriptor when it goes.
class Dir {
 public:
  Dir() = default;
  ~Dir();
  Dir(Dir&& other) noexcept;
  Dir& operator=(Dir&& other) noexcept;
  Dir(const Dir&) = delete;
  Dir& operator=(const Dir&) = delete;

  /// Opens the directory at `path` (from the configuration: links among its own
  /// components are the administrator's), creating it and its parents when `create`.
  static FileResult<Dir> open(const std::string& path, bool create);
  /// The subdirectory `name`, created (mode 0750) when `create`; a link there is refused.
  [[nodiscard]] FileResult<Dir> sub(const std::string& name, bool create) const;

  /// A regular file's bytes, at most `cap` of them (checked before anything is allocated);
  /// a link, a FIFO or a device is refused, never opened through.
  [[nodiscard]] FileResult<std::string> read(const std::string& name, std::uint64_t cap) const;
  /// Replaces `name` with `bytes` atomically: a temporary created with O_EXCL, fsync,
  /// renameat over the name (a link there is replaced, not followed), fsync of the directory.
  [[nodiscard]] FileResult<void> replace(const std::string& name, std::string_view bytes) const;
  /// Moves `name` to `toName` in `to` (replacing it): renameat, or across file systems a
  /// copy (as replace does) and then the original's removal. A link is refused.
  [[nodiscard]] FileResult<void> move(const std::string& name, const Dir& to,
                                      const std::string& toName) const;
  /// Removes the file `name` (a link itself, never what it points to); a missing file is fine.
  [[nodiscard]] FileResult<void> remove(const std::string& name) const;
  /// True when something (anything, a link included) has the name `name`.
  [[nodiscard]] bool exists(const std::string& name) const;
  /// The entries, "." and ".." left out.
  [[nodiscard]] FileResult<std::vector<DirEntry>> list() const;

  /// The path it was opened as, for messages.
  [[nodiscard]] const std::string& path() const { return path_; }
  /// True when open.
  [[nodiscard]] bool isOpen() const { return fd_ >= 0; }

 private:
  Dir(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  [[nodiscard]] FileError error(int code, const std::string& name, const std::string& what) const;
  int fd_ = -1;
  std::string path_;
};

/// `name` with every byte that is not printable UTF-8 (invalid sequences, control
/// characters) written as \xNN: safe in a log line, a message and JSON. Idempotent.
std::string printableName(std::string_view name);

}  // namespace lanegate::lane
