// Files under a directory handle (lane/files.h): links are refused or replaced, never
// followed; a move across file systems is a copy; names are made printable.
#include "lane/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>
#include <filesystem>

#include "tests/support/harness.h"

namespace lanegate::lane {
namespace {

namespace fs = std::filesystem;
using test::readFile;
using test::TempDir;
using test::writeFile;

TEST(Files, ReplaceOverALinkReplacesTheLinkNotItsTarget) {
  TempDir dir;
  writeFile(dir.file("precious"), "keep me");
  fs::create_directories(dir.file("d"));
  fs::create_symlink(dir.file("precious"), dir.file("d/name"));
  auto d = Dir::open(dir.file("d"), false);
  ASSERT_TRUE(d) << d.error().message;
  ASSERT_TRUE(d->replace("name", "new text"));
  EXPECT_EQ(readFile(dir.file("precious")), "keep me");
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(dir.file("d/name"))));
  EXPECT_EQ(readFile(dir.file("d/name")), "new text");
}

TEST(Files, ReadRefusesLinksFifosAndFilesBeyondTheCap) {
  TempDir dir;
  writeFile(dir.file("target"), "secret");
  fs::create_symlink(dir.file("target"), dir.file("link"));
  ASSERT_EQ(::mkfifo(dir.file("fifo").c_str(), 0600), 0);
  writeFile(dir.file("big"), std::string(100, 'x'));
  auto d = Dir::open(dir.path(), false);
  ASSERT_TRUE(d);
  auto link = d->read("link", 1000);
  ASSERT_FALSE(link);
  EXPECT_EQ(link.error().code, ELOOP);
  EXPECT_NE(link.error().message.find("link: cannot open: is a symbolic link (not followed)"),
            std::string::npos)
      << link.error().message;
  auto fifo = d->read("fifo", 1000);  // must not hang
  ASSERT_FALSE(fifo);
  EXPECT_NE(fifo.error().message.find("not a regular file"), std::string::npos);
  auto big = d->read("big", 99);
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("100 bytes, more than the limit of 99"), std::string::npos);
  EXPECT_FALSE(big.error().transient());
  EXPECT_EQ(d->read("big", 100).value(), std::string(100, 'x'));
}

TEST(Files, ASubdirectoryThatIsALinkIsRefused) {
  TempDir dir;
  fs::create_directories(dir.file("real"));
  fs::create_symlink(dir.file("real"), dir.file("linked"));
  auto d = Dir::open(dir.path(), false);
  ASSERT_TRUE(d);
  auto sub = d->sub("linked", true);
  ASSERT_FALSE(sub);
  EXPECT_NE(sub.error().message.find("linked: is a symbolic link (not followed)"),
            std::string::npos)
      << sub.error().message;
  EXPECT_TRUE(d->sub("fresh", true));
  EXPECT_TRUE(fs::is_directory(dir.file("fresh")));
}

TEST(Files, AMoveAcrossFileSystemsCopiesThenRemoves) {
  TempDir dir;
  const std::string shm = "/dev/shm/lanegate-files-test-" + std::to_string(::getpid());
  std::error_code ec;
  fs::create_directories(shm, ec);
  struct stat a {
  }, b{};
  if (ec || ::stat(shm.c_str(), &a) != 0 || ::stat(dir.path().c_str(), &b) != 0 ||
      a.st_dev == b.st_dev)
    GTEST_SKIP() << "no second file system at /dev/shm";
  const std::string payload(3u << 20, 'z');  // more than one copy block
  writeFile(dir.file("scan.tiff"), payload);
  auto from = Dir::open(dir.path(), false);
  auto to = Dir::open(shm, false);
  ASSERT_TRUE(from && to);
  auto moved = from->move("scan.tiff", *to, "kept.tiff");
  ASSERT_TRUE(moved) << moved.error().message;
  EXPECT_FALSE(fs::exists(dir.file("scan.tiff")));
  EXPECT_EQ(readFile(shm + "/kept.tiff"), payload);
  fs::create_symlink(dir.file("x"), dir.file("link.tiff"));
  auto link = from->move("link.tiff", *to, "link.tiff");
  ASSERT_FALSE(link);
  EXPECT_EQ(link.error().code, ELOOP);
  fs::remove_all(shm);
}

TEST(Files, PrintableNameEscapesWhatIsNotPrintableUtf8) {
  EXPECT_EQ(printableName("scan-1.json"), "scan-1.json");
  EXPECT_EQ(printableName("caf\xc3\xa9"), "caf\xc3\xa9");        // valid UTF-8 stays
  EXPECT_EQ(printableName("scan-\xff\xfe"), "scan-\\xff\\xfe");  // invalid bytes
  EXPECT_EQ(printableName("a\nb\x7f"), "a\\x0ab\\x7f");          // control characters
  EXPECT_EQ(printableName("\xc3"), "\\xc3");                     // cut short
  EXPECT_EQ(printableName("\xed\xa0\x80"), "\\xed\\xa0\\x80");   // a surrogate
  EXPECT_EQ(printableName("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");   // an overlong
  EXPECT_EQ(printableName(printableName("x\xff")), printableName("x\xff")) << "idempotent";
}

TEST(Files, TransientErrorsAreTheOnesWorthRetrying) {
  for (int code : {EMFILE, ENFILE, EIO, EAGAIN, ENOMEM})
    EXPECT_TRUE((FileError{code, ""}.transient())) << code;
  for (int code : {ELOOP, ENOENT, EACCES, EINVAL, EFBIG})
    EXPECT_FALSE((FileError{code, ""}.transient())) << code;
}

}  // namespace
}  // namespace lanegate::lane
