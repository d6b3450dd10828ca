// Runs a fuzz target's LLVMFuzzerTestOneInput once per file in the folders named on the command
// line (the seed corpus and the regressions: inputs that crashed it once), one gtest case per
// file, so the normal unit suite (gcc, no libFuzzer) replays them. A folder that does not exist
// is skipped: a target need not have regressions yet. A crash or a failed check in the target
// aborts the process, which fails the test.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gtest/gtest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

class ReplayOne : public ::testing::Test {
 public:
  explicit ReplayOne(fs::path path) : path_(std::move(path)) {}
  void TestBody() override {
    std::ifstream in(path_, std::ios::binary);
    ASSERT_TRUE(in) << "cannot read " << path_;
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // A copy of exactly the file's size, as libFuzzer passes it, so ASan sees reads past it.
    std::vector<uint8_t> data(bytes.begin(), bytes.end());
    EXPECT_EQ(LLVMFuzzerTestOneInput(data.data(), data.size()), 0) << path_;
  }

 private:
  fs::path path_;
};

std::string TestName(const fs::path& dir, const fs::path& file) {
  std::string name = dir.filename().string() + "_" + file.filename().string();
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  int files = 0;
  for (int i = 1; i < argc; ++i) {
    const fs::path dir(argv[i]);
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> paths;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.is_regular_file() && entry.path().filename().string()[0] != '.') {
        paths.push_back(entry.path());
      }
    }
    std::sort(paths.begin(), paths.end());
    const std::string suite = dir.parent_path().filename().string() == "regressions"
                                  ? "FuzzRegression"
                                  : "FuzzCorpus";
    for (const fs::path& p : paths) {
      ++files;
      ::testing::RegisterTest(suite.c_str(), TestName(dir, p).c_str(), nullptr, nullptr,
                              __FILE__, __LINE__, [p]() -> ::testing::Test* {
                                return new ReplayOne(p);
                              });
    }
  }
  if (files == 0) {
    std::fprintf(stderr, "replay: no input files in the folders given\n");
    return 1;
  }
  return RUN_ALL_TESTS();
}
