#include "lane/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace lanegate::lane {

namespace {

// A descriptor closed when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

bool writeAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// A temporary name in the same directory that no other writer uses (and short, whatever
// the length of the name it stands for).
std::string temporaryName() {
  static std::atomic<unsigned> counter{0};
  return ".lanegate-tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
}

}  // namespace

bool FileError::transient() const {
  switch (code) {
    case EMFILE:
    case ENFILE:
    case EIO:
    case EAGAIN:
    case ENOMEM:
    case EINTR:
    case EBUSY:
      return true;
    default:
      return false;
  }
}

std::string printableName(std::string_view name) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  auto escape = [&](unsigned char c) {
    out += "\\x";
    out += kHex[c >> 4];
    out += kHex[c & 15];
  };
  for (std::size_t i = 0; i < name.size();) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f)
        escape(c);
      else
        out += static_cast<char>(c);
      ++i;
      continue;
    }
    // A well-formed UTF-8 sequence (no overlongs, surrogates or values past U+10FFFF) is
    // kept; any other byte is escaped on its own.
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    }
    bool ok = len > 0 && i + len <= name.size();
    for (std::size_t k = 1; ok && k < len; ++k) {
      const auto b = static_cast<unsigned char>(name[i + k]);
      ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xbf);
    }
    if (ok) {
      out.append(name.substr(i, len));
      i += len;
    } else {
      escape(c);
      ++i;
    }
  }
  return out;
}

Dir::~Dir() {
  if (fd_ >= 0) ::close(fd_);
}

Dir::Dir(Dir&& other) noexcept : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

Dir& Dir::operator=(Dir&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

FileError Dir::error(int code, const std::string& name, const std::string& what) const {
  std::string why = code == ELOOP ? "is a symbolic link (not followed)" : std::strerror(code);
  return FileError{code, printableName(path_ + (name.empty() ? "" : "/" + name)) + ": " + what +
                             (what.empty() ? "" : ": ") + why};
}

FileResult<Dir> Dir::open(const std::string& path, bool create) {
  if (create) {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec)
      return tl::unexpected(
          FileError{ec.value(), printableName(path) + ": cannot create: " + ec.message()});
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    return tl::unexpected(FileError{e, printableName(path) + ": " + std::strerror(e)});
  }
  return Dir(fd, path);
}

FileResult<Dir> Dir::sub(const std::string& name, bool create) const {
  if (create && ::mkdirat(fd_, name.c_str(), 0750) != 0 && errno != EEXIST)
    return tl::unexpected(error(errno, name, "cannot create"));
  const int fd = ::openat(fd_, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    // O_DIRECTORY | O_NOFOLLOW on a link fails with ENOTDIR on some kernels: say what it is.
    struct stat st {};
    if (::fstatat(fd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
      return tl::unexpected(error(ELOOP, name, ""));
    return tl::unexpected(error(e, name, ""));
  }
  return Dir(fd, path_ + "/" + name);
}

FileResult<std::string> Dir::read(const std::string& name, std::uint64_t cap) const {
  // O_NONBLOCK: a FIFO planted under the name must not hang the reader in open().
  Fd fd(::openat(fd_, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) return tl::unexpected(error(errno, name, "cannot open"));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return tl::unexpected(error(errno, name, "cannot stat"));
  if (!S_ISREG(st.st_mode))
    return tl::unexpected(
        FileError{EINVAL, printableName(path_ + "/" + name) + ": not a regular file"});
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > cap)
    return tl::unexpected(
        FileError{EFBIG, printableName(path_ + "/" + name) + ": " + std::to_string(size) +
                             " bytes, more than the limit of " + std::to_string(cap)});
  std::string bytes(static_cast<std::size_t>(size), '\0');
  std::size_t at = 0;
  while (at < bytes.size()) {
    const ssize_t n = ::read(fd.get(), bytes.data() + at, bytes.size() - at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return tl::unexpected(error(errno, name, "cannot read"));
    if (n == 0)
      return tl::unexpected(FileError{EIO, printableName(path_ + "/" + name) +
                                               ": shorter than its size (still being written?)"});
    at += static_cast<std::size_t>(n);
  }
  return bytes;
}

FileResult<void> Dir::replace(const std::string& name, std::string_view bytes) const {
  const std::string tmp = temporaryName();
  Fd fd(::openat(fd_, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640));
  if (fd.get() < 0) return tl::unexpected(error(errno, tmp, "cannot create"));
  if (!writeAll(fd.get(), bytes) || ::fsync(fd.get()) != 0) {
    const int e = errno;
    ::unlinkat(fd_, tmp.c_str(), 0);
    return tl::unexpected(error(e, tmp, "cannot write"));
  }
  ::close(fd.release());
  if (::renameat(fd_, tmp.c_str(), fd_, name.c_str()) != 0) {
    const int e = errno;
    ::unlinkat(fd_, tmp.c_str(), 0);
    return tl::unexpected(error(e, name, "cannot rename into place"));
  }
  ::fsync(fd_);
  return {};
}

FileResult<void> Dir::move(const std::string& name, const Dir& to,
                           const std::string& toName) const {
  struct stat st {};
  if (::fstatat(fd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return tl::unexpected(error(errno, name, ""));
  if (S_ISLNK(st.st_mode)) return tl::unexpected(error(ELOOP, name, ""));
  if (::renameat(fd_, name.c_str(), to.fd_, toName.c_str()) == 0) {
    ::fsync(to.fd_);
    return {};
  }
  if (errno != EXDEV) return tl::unexpected(error(errno, name, "cannot move to " + to.path_));
  // Another file system: a copy (in blocks, a TIFF may be large), durable before the
  // original goes.
  Fd in(::openat(fd_, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (in.get() < 0) return tl::unexpected(error(errno, name, "cannot open"));
  const std::string tmp = temporaryName();
  Fd out(::openat(to.fd_, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640));
  if (out.get() < 0) return tl::unexpected(to.error(errno, tmp, "cannot create"));
  std::vector<char> block(1u << 20);
  for (;;) {
    const ssize_t n = ::read(in.get(), block.data(), block.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 ||
        !writeAll(out.get(), std::string_view(block.data(),
                                              static_cast<std::size_t>(std::max<ssize_t>(n, 0))))) {
      const int e = errno;
      ::unlinkat(to.fd_, tmp.c_str(), 0);
      return tl::unexpected(to.error(e, toName, "cannot copy " + path_ + "/" + name + " to"));
    }
    if (n == 0) break;
  }
  if (::fsync(out.get()) != 0 || ::renameat(to.fd_, tmp.c_str(), to.fd_, toName.c_str()) != 0) {
    const int e = errno;
    ::unlinkat(to.fd_, tmp.c_str(), 0);
    return tl::unexpected(to.error(e, toName, "cannot copy into place"));
  }
  ::fsync(to.fd_);
  return remove(name);
}

FileResult<void> Dir::remove(const std::string& name) const {
  if (::unlinkat(fd_, name.c_str(), 0) != 0 && errno != ENOENT)
    return tl::unexpected(error(errno, name, "cannot remove"));
  return {};
}

bool Dir::exists(const std::string& name) const {
  struct stat st {};
  return ::fstatat(fd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

FileResult<std::vector<DirEntry>> Dir::list() const {
  // fdopendir takes over the descriptor it is given: a fresh one for "." of this directory.
  const int fd = ::openat(fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return tl::unexpected(error(errno, "", "cannot list"));
  DIR* d = ::fdopendir(fd);
  if (!d) {
    const int e = errno;
    ::close(fd);
    return tl::unexpected(error(e, "", "cannot list"));
  }
  std::vector<DirEntry> out;
  for (;;) {
    errno = 0;  // readdir's end and its failure differ only in errno
    const dirent* e = ::readdir(d);
    if (!e) break;
    const std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    DirEntry entry;
    entry.name = n;
    struct stat st {};
    if (::fstatat(fd_, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      entry.regular = S_ISREG(st.st_mode);
      entry.directory = S_ISDIR(st.st_mode);
      entry.mtimeNs =
          static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
      entry.size = static_cast<std::uint64_t>(st.st_size);
    }
    out.push_back(std::move(entry));
  }
  const int e = errno;
  ::closedir(d);
  if (e != 0) return tl::unexpected(error(e, "", "cannot list"));
  return out;
}

}  // namespace lanegate::lane
