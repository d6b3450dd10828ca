// A private temporary folder for one test, removed with everything in it when the test ends
// (also when it fails).
#ifndef NIGHFS_TESTS_PROXY_TEMP_DIR_H_
#define NIGHFS_TESTS_PROXY_TEMP_DIR_H_

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace nighfs::proxy::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "nighfs-proxy-test-XXXXXX");
    path_ = ::mkdtemp(pattern.data()) != nullptr ? pattern : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

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

#endif  // NIGHFS_TESTS_PROXY_TEMP_DIR_H_
