// The fixtures of the nighfs-meta process tests: MetaServerTest starts the real daemon on port 0
// and drives it over HTTP with the real metadata client; MetaAuthTest adds a volume and
// helpers for calls under tokens (meta_server_test.cc, meta_auth_test.cc).
#ifndef NIGHFS_TESTS_META_META_SERVER_FIXTURE_H_
#define NIGHFS_TESTS_META_META_SERVER_FIXTURE_H_

#include <sys/stat.h>
#include <sys/wait.h>

#include <cerrno>
#include <csignal>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/errno_status.h"
#include "common/http_client.h"
#include "common/tls_certs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metadata_client/meta_client.h"
#include "tests/testing/fault_proxy.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"


namespace nighfs::meta_testing {

using ::nighfs::testing::BuildRoot;
using ::nighfs::testing::ChildProcess;
using ::nighfs::testing::ReadFileOrEmpty;
using ::nighfs::testing::TempDir;
using ::nighfs::testing::WaitFor;
using ::testing::HasSubstr;
using ::testing::Not;

class MetaServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::mkdir((dir_.path() + "/blocks").c_str(), 0755), 0);
    store_url_ = "file://" + dir_.path() + "/blocks";
  }

  std::vector<std::string> Argv(const std::string& port_file, const std::string& listen) {
    return {BuildRoot() + "/meta/nighfs-meta", "--listen",     listen,
            "--state-dir",                     state_dir(),    "--port-file",
            port_file,                         "--log-level",  "debug",
            "--allow-file-root",               dir_.path(),    "--token-cache-ttl",
            "1",                               "--gc-tombstone-retention",
            "36h",                             "--insecure-plaintext"};  // last: see TlsOr...
  }

  // Starts nighfs-meta on a free port and waits until it has written its port file.
  void StartServer() {
    const std::string port_file = absl::StrCat(dir_.path(), "/port", ++starts_);
    absl::StatusOr<std::unique_ptr<ChildProcess>> p =
        ChildProcess::Start(Argv(port_file, "127.0.0.1:0"), log_path());
    ASSERT_OK(p);
    server_ = std::move(*p);
    port_ = 0;
    bool up = WaitFor(
        [&] {
          std::string s = ReadFileOrEmpty(port_file);
          return absl::SimpleAtoi(absl::StripAsciiWhitespace(s), &port_) && port_ > 0;
        },
        absl::Seconds(20));
    ASSERT_TRUE(up) << "nighfs-meta did not write its port file; log:\n" << server_->ReadLog();
    // The admin's client (nighfs-meta wrote the token at its first start).
    admin_token_ = std::string(absl::StripAsciiWhitespace(ReadFileOrEmpty(admin_token_file())));
    ASSERT_FALSE(admin_token_.empty());
    client_ = Client(admin_token_);
  }

  // A client of the running server presenting `token` ("" = none).
  std::unique_ptr<MetaApi> Client(const std::string& token,
                                  std::shared_ptr<MetaSessionKey> session_key = nullptr) {
    MetaClientOptions o;
    o.address = absl::StrCat("http://127.0.0.1:", port_);
    o.op_timeout = absl::Seconds(10);
    o.call_timeout = absl::Seconds(10);
    o.bearer_token = token;
    o.session_key = std::move(session_key);
    absl::StatusOr<std::unique_ptr<MetaApi>> c = NewMetaClient(o);
    EXPECT_OK(c);
    return c.ok() ? *std::move(c) : nullptr;
  }
  std::string admin_token_file() const { return state_dir() + "/admin.token"; }

  void StopServer() {
    absl::StatusOr<int> st = server_->Stop(SIGTERM, absl::Seconds(20));
    ASSERT_OK(st);
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0)
        << "wait status " << *st << "; log:\n" << server_->ReadLog();
  }

  std::string state_dir() const { return dir_.path() + "/state"; }
  std::string log_path() const { return dir_.path() + "/meta.log"; }
  std::string base_url() const { return absl::StrCat("http://127.0.0.1:", port_); }

  TempDir dir_;
  std::string store_url_;
  int starts_ = 0;
  int port_ = 0;
  std::unique_ptr<ChildProcess> server_;
  std::string admin_token_;
  std::unique_ptr<MetaApi> client_;  // as admin
};

class MetaAuthTest : public MetaServerTest {
 protected:
  void SetUp() override {
    MetaServerTest::SetUp();
    ASSERT_NO_FATAL_FAILURE(StartServer());
    pb::CreateVolumeRequest cv;
    cv.set_name("v");
    cv.set_store_url(store_url_);
    absl::StatusOr<pb::CreateVolumeResponse> v = client_->CreateVolume(cv);
    ASSERT_OK(v);
    vol_ = v->volume().id();
  }
  void TearDown() override {
    if (server_ != nullptr && server_->Running()) {
      // No secret in the server's log, at debug level: checked after every test.
      const std::string log = server_->ReadLog();
      EXPECT_THAT(log, Not(HasSubstr(admin_token_)));
      for (const std::string& s : secrets_) EXPECT_THAT(log, Not(HasSubstr(s)));
      StopServer();
    }
  }

  absl::StatusOr<pb::CreateTokenResponse> Token(pb::Access access, const std::string& path = "",
                                                int64_t expires_ns = 0,
                                                const std::string& volume = "v") {
    pb::CreateTokenRequest req;
    req.set_volume(volume);
    req.set_access(access);
    req.set_path(path);
    req.set_expires_ns(expires_ns);
    absl::StatusOr<pb::CreateTokenResponse> r = client_->CreateToken(req);
    if (r.ok()) secrets_.push_back(r->secret());
    return r;
  }

  // A raw POST of `request` to `method` with `bearer` ("" = no Authorization header).
  int RawStatus(const std::string& method, const google::protobuf::Message& request,
                const std::string& bearer) {
    std::unique_ptr<HttpClient> http = HttpClient::Create();
    const std::string body = request.SerializeAsString();
    HttpRequest post;
    post.method = "POST";
    post.url = base_url() + "/nighfs.meta.v1.MetaService/" + method;
    post.headers = {{"Content-Type", "application/proto"}};
    if (!bearer.empty()) post.headers.push_back({"Authorization", "Bearer " + bearer});
    post.body = body;
    absl::StatusOr<HttpResponse> r = http->Do(post);
    EXPECT_OK(r);
    return r.ok() ? r->status : -1;
  }

  std::vector<std::string> Names(uint64_t dir) {
    pb::ReadDirRequest rd;
    rd.mutable_caller();  // root: the server checks POSIX permissions for it
    rd.set_volume_id(vol_);
    rd.set_ino(dir);
    absl::StatusOr<pb::ReadDirResponse> r = client_->ReadDir(rd);
    EXPECT_OK(r);
    std::vector<std::string> names;
    if (r.ok()) for (const auto& e : r->entries()) names.push_back(e.name());
    return names;
  }

  pb::Attr Mkdir(uint64_t parent, const std::string& name) {
    absl::StatusOr<pb::EntryResponse> r = client_->Mkdir(MkdirReq(parent, name));
    EXPECT_OK(r);
    return r.ok() ? r->attr() : pb::Attr();
  }

  pb::MkdirRequest MkdirReq(uint64_t parent, const std::string& name) {
    pb::MkdirRequest mk;
    mk.mutable_caller();  // root: the server checks POSIX permissions for it
    mk.set_volume_id(vol_);
    mk.set_parent(parent);
    mk.set_name(name);
    mk.set_mode(0755);
    return mk;
  }

  uint64_t vol_ = 0;
  std::vector<std::string> secrets_;
};

}  // namespace nighfs::meta_testing

#endif  // NIGHFS_TESTS_META_META_SERVER_FIXTURE_H_
