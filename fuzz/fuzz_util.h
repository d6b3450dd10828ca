// What the fuzz targets share: reading a structured input from the fuzzer's bytes, and a
// private scratch folder per process. Header-only: each target is one .cc linked on its own.
#ifndef NIGHFS_FUZZ_FUZZ_UTIL_H_
#define NIGHFS_FUZZ_FUZZ_UTIL_H_

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

namespace nighfs::fuzz {

// Takes fields off the front of the input. Every read succeeds: past the end it yields zeros
// and empty strings, so any byte string is a valid input.
class InputReader {
 public:
  InputReader(const uint8_t* data, size_t size)
      : rest_(reinterpret_cast<const char*>(data), size) {}

  bool empty() const { return rest_.empty(); }
  uint8_t Byte() {
    if (rest_.empty()) return 0;
    const uint8_t b = static_cast<uint8_t>(rest_[0]);
    rest_.remove_prefix(1);
    return b;
  }
  // Little-endian.
  uint16_t U16() { return static_cast<uint16_t>(Byte() | (Byte() << 8)); }
  // At most `n` bytes.
  std::string_view Bytes(size_t n) {
    const std::string_view out = rest_.substr(0, n);
    rest_.remove_prefix(out.size());
    return out;
  }
  std::string_view Rest() { return Bytes(rest_.size()); }

 private:
  std::string_view rest_;
};

// A fresh folder for this process, in /dev/shm when there is one (databases and files the
// targets write then cost no disk I/O), removed at exit. The fuzzer may kill the process on a
// crash or timeout, which leaves it behind: its name says what it is.
inline const std::string& ScratchDir() {
  static const std::string* const dir = [] {
    std::string base = "/dev/shm";
    if (::access(base.c_str(), W_OK) != 0) {
      const char* tmp = std::getenv("TMPDIR");
      base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
    }
    std::string tmpl = base + "/nighfs-fuzz-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("nighfs fuzz: mkdtemp");
      std::abort();
    }
    auto* d = new std::string(tmpl);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(*dir, ec);
    });
    return d;
  }();
  return *dir;
}

}  // namespace nighfs::fuzz

#endif  // NIGHFS_FUZZ_FUZZ_UTIL_H_
