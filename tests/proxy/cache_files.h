// Counting the block files of a cache folder (tests/testing/process.h has the TempDir).
#ifndef NIGHFS_TESTS_PROXY_CACHE_FILES_H_
#define NIGHFS_TESTS_PROXY_CACHE_FILES_H_

#include <filesystem>
#include <string>

namespace nighfs::proxy::testing {

// Number of regular files under `dir` (recursively) whose name does not start with "proxy.db".
inline int CountBlockFiles(const std::string& dir) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
    if (e.is_regular_file() && e.path().filename().string().rfind("proxy.db", 0) != 0) ++n;
  }
  return n;
}

}  // namespace nighfs::proxy::testing

#endif  // NIGHFS_TESTS_PROXY_CACHE_FILES_H_
