// Helpers shared by the tools tests.
#ifndef NIGHFS_TESTS_TOOLS_TEST_UTIL_H_
#define NIGHFS_TESTS_TOOLS_TEST_UTIL_H_

#include <sys/types.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "status.pb.h"

namespace nighfs::tools {

// Sets an environment variable for the scope, restoring the old value (or its absence) after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name); old != nullptr) {
      old_ = old;
      had_ = true;
    }
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_) {
      ::setenv(name_, old_.c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

inline void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  out.close();
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

// A status file as mount.nighfs writes it: proto3 JSON of MountStatus.
inline std::string StatusJson(const std::string& mount_point, pid_t pid, const std::string& volume,
                              const std::string& meta_address = "127.0.0.1:7420",
                              const std::string& meta_ca_file = "") {
  status::v1::MountStatus s;
  s.set_mount_point(mount_point);
  s.set_volume(volume);
  s.set_volume_id(5);
  s.set_pid(static_cast<uint32_t>(pid));
  s.set_meta_address(meta_address);
  if (!meta_ca_file.empty()) {
    s.set_meta_url("https://" + meta_address);
    s.set_meta_ca_file(meta_ca_file);
  }
  s.set_store_url("file:///srv/blocks");
  s.set_block_size(4 << 20);
  s.set_session_id(77);
  s.set_started_ns(absl::ToUnixNanos(absl::Now() - absl::Minutes(5)));
  s.set_updated_ns(absl::ToUnixNanos(absl::Now()));
  s.set_meta_reachable(true);
  auto* r = s.add_routes();
  r->set_name("direct");
  r->set_kind("store");
  r->set_target("file:///srv/blocks");
  r->set_healthy(true);
  r->set_selected(true);
  r->set_reason("only route");
  s.mutable_stats()->set_block_cache_hits(3);
  s.mutable_stats()->set_block_cache_misses(1);
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(s, &json, options).ok());
  return json;
}

}  // namespace nighfs::tools

#endif  // NIGHFS_TESTS_TOOLS_TEST_UTIL_H_
