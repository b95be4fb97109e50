#pragma once
// TIFF files no encoder would write, for the hostile-input tests (the decoder's unit tests
// and the daemon's inbox tests use the same ones).

#include <cstdint>
#include <string>
#include <vector>

namespace lanegate::test {

/// A little-endian TIFF built entry by entry: data blocks after the header, then one
/// directory.
class TiffBuilder {
 public:
  /// Appends raw bytes; their offset in the file.
  std::uint32_t data(const std::string& bytes) {
    const auto at = static_cast<std::uint32_t>(8 + data_.size());
    data_ += bytes;
    if (data_.size() % 2) data_ += '\0';
    return at;
  }
  /// One directory entry (value inline, or the offset of its data).
  void entry(unsigned tag, unsigned type, std::uint32_t count, std::uint32_t value) {
    entries_ += u16(tag) + u16(type) + u32(count) +
                (type == 3 && count == 1 ? u16(value) + u16(0) : u32(value));
    ++count_;
  }
  /// The file.
  [[nodiscard]] std::string build() const {
    return "II" + u16(42) + u32(static_cast<std::uint32_t>(8 + data_.size())) + data_ +
           u16(count_) + entries_ + u32(0);
  }

 private:
  static std::string u16(unsigned v) {
    return {static_cast<char>(v & 0xff), static_cast<char>((v >> 8) & 0xff)};
  }
  static std::string u32(std::uint32_t v) { return u16(v & 0xffff) + u16(v >> 16); }
  std::string data_, entries_;
  unsigned count_ = 0;
};

/// A 64x64 page whose StripOffsets and StripByteCounts are each listed `repeats` times, all
/// pointing at one array of `arrayLength` LONGs: the walker used to collect every copy
/// (256 x 64K: 256 MB of offsets from 256 KB).
inline std::string repeatedStripTags(unsigned repeats = 256, std::uint32_t arrayLength = 65536) {
  TiffBuilder b;
  const std::uint32_t array = b.data(std::string(arrayLength * 4u, '\0'));
  b.entry(256, 4, 1, 64);
  b.entry(257, 4, 1, 64);
  b.entry(258, 3, 1, 16);
  b.entry(277, 3, 1, 1);
  b.entry(278, 4, 1, 1);
  for (unsigned i = 0; i < repeats; ++i) {
    b.entry(273, 4, arrayLength, array);
    b.entry(279, 4, arrayLength, array);
  }
  return b.build();
}

/// A page claiming width x height pixels (LONGs), one strip of 2 bytes.
inline std::string claimedSize(std::uint32_t width, std::uint32_t height) {
  TiffBuilder b;
  const std::uint32_t strip = b.data(std::string(2, '\0'));
  b.entry(256, 4, 1, width);
  b.entry(257, 4, 1, height);
  b.entry(258, 3, 1, 16);
  b.entry(273, 4, 1, strip);
  b.entry(277, 3, 1, 1);
  b.entry(278, 4, 1, height);
  b.entry(279, 4, 1, 2);
  return b.build();
}

}  // namespace lanegate::test
