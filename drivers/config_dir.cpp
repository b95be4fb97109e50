#include "drivers/config_dir.h"

#include <filesystem>
#include <system_error>

namespace lanegate {

std::string defaultConfigDir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec && exe.parent_path() == std::filesystem::path(LANEGATE_INSTALLED_BINDIR))
    return LANEGATE_INSTALLED_CONFIG_DIR;
  return LANEGATE_SOURCE_CONFIG_DIR;
}

}  // namespace lanegate
