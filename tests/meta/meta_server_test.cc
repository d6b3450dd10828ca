// The nighfs-meta daemon as a process: started on port 0, driven over HTTP with the real
// metadata client, stopped with SIGTERM and started again on the same state.
#include <sys/stat.h>
#include <sys/wait.h>

#include <cerrno>
#include <csignal>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/errno_status.h"
#include "common/http_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metadata_client/meta_client.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs {
namespace {

using ::nighfs::testing::BuildRoot;
using ::nighfs::testing::ChildProcess;
using ::nighfs::testing::ReadFileOrEmpty;
using ::nighfs::testing::TempDir;
using ::nighfs::testing::WaitFor;
using ::testing::HasSubstr;

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
            "--allow-file-root",               dir_.path()};
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
    o.address = absl::StrCat("127.0.0.1:", port_);
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

TEST_F(MetaServerTest, ServesTheApiAndKeepsStateAcrossRestarts) {
  ASSERT_NO_FATAL_FAILURE(StartServer());

  pb::CreateVolumeRequest cv;
  cv.set_name("v");
  cv.set_store_url(store_url_);
  absl::StatusOr<pb::CreateVolumeResponse> vol = client_->CreateVolume(cv);
  ASSERT_OK(vol);
  EXPECT_EQ(vol->volume().block_size(), 4u << 20);
  pb::MountRequest mr;
  mr.set_volume_name("v");
  mr.set_hostname("test");
  absl::StatusOr<pb::MountResponse> m = client_->Mount(mr);
  ASSERT_OK(m);
  const uint64_t vid = m->volume().id();
  EXPECT_EQ(m->root().ino(), 1u);

  pb::MkdirRequest mk;
  mk.set_volume_id(vid);
  mk.set_parent(1);
  mk.set_name("dir");
  mk.set_mode(0750);
  absl::StatusOr<pb::EntryResponse> d = client_->Mkdir(mk);
  ASSERT_OK(d);
  EXPECT_EQ(d->attr().mode(), static_cast<uint32_t>(S_IFDIR | 0750));

  // File-system errors keep their errno across the wire.
  pb::LookupRequest lk;
  lk.set_volume_id(vid);
  lk.set_parent(1);
  lk.set_name("missing");
  EXPECT_EQ(StatusToErrno(client_->Lookup(lk).status()), ENOENT);
  EXPECT_EQ(StatusToErrno(client_->Mkdir(mk).status()), EEXIST);
  pb::GetXattrRequest gx;
  gx.set_volume_id(vid);
  gx.set_ino(1);
  gx.set_name("user.none");
  EXPECT_EQ(StatusToErrno(client_->GetXattr(gx).status()), ENODATA);
  pb::MountRequest bad;
  bad.set_volume_name("nope");
  absl::StatusOr<pb::MountResponse> nm = client_->Mount(bad);
  EXPECT_THAT(nm, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(std::string(nm.status().message()), HasSubstr("no volume named nope"));

  ASSERT_NO_FATAL_FAILURE(StopServer());
  ASSERT_NO_FATAL_FAILURE(StartServer());

  lk.set_name("dir");
  absl::StatusOr<pb::EntryResponse> again = client_->Lookup(lk);
  ASSERT_OK(again);
  EXPECT_EQ(again->attr().ino(), d->attr().ino());
  EXPECT_EQ(again->attr().mode(), d->attr().mode());
  pb::HeartbeatRequest hb;
  hb.set_session_id(m->session_id());
  EXPECT_OK(client_->Heartbeat(hb));
  ASSERT_NO_FATAL_FAILURE(StopServer());
}

TEST_F(MetaServerTest, HealthAndMalformedRequests) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  std::unique_ptr<HttpClient> http = HttpClient::Create();
  ASSERT_NE(http, nullptr);

  HttpRequest health;
  health.method = "GET";
  health.url = base_url() + "/healthz";
  absl::StatusOr<HttpResponse> h = http->Do(health);
  ASSERT_OK(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(h->body, "ok");
  EXPECT_THAT(h->Header("content-type"), HasSubstr("text/plain"));

  const std::string garbage = "\xff\xff\xff\xff not a protobuf";
  HttpRequest post;
  post.method = "POST";
  post.url = base_url() + "/nighfs.meta.v1.MetaService/Lookup";
  post.headers = {{"Content-Type", "application/proto"}};
  post.body = garbage;
  absl::StatusOr<HttpResponse> r = http->Do(post);
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_THAT(r->body, HasSubstr("invalid_argument"));
  EXPECT_THAT(r->body, HasSubstr("LookupRequest"));

  post.url = base_url() + "/nighfs.meta.v1.MetaService/NoSuchMethod";
  r = http->Do(post);
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 404);

  // Still serving after all that.
  pb::ListVolumesRequest lv;
  EXPECT_OK(client_->ListVolumes(lv));
  ASSERT_NO_FATAL_FAILURE(StopServer());
}

TEST_F(MetaServerTest, StateIsPrivateInAPreExistingFolder) {
  // A folder made by a package or an admin, and a permissive umask.
  ASSERT_EQ(::mkdir(state_dir().c_str(), 0755), 0);
  const mode_t old_mask = ::umask(022);
  StartServer();
  ::umask(old_mask);
  ASSERT_FALSE(HasFatalFailure());
  pb::CreateVolumeRequest cv;
  cv.set_name("v");
  cv.set_store_url(store_url_);
  ASSERT_OK(client_->CreateVolume(cv));
  struct stat st;
  ASSERT_EQ(::stat(state_dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  for (const char* name : {"meta.db", "meta.db-wal", "meta.db-shm", "meta.db.lock", "admin.token"}) {
    const std::string path = state_dir() + "/" + name;
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << path;
  }
  // mem:// volumes need --allow-test-stores.
  cv.set_name("m");
  cv.set_store_url("mem://scratch");
  absl::StatusOr<pb::CreateVolumeResponse> r = client_->CreateVolume(cv);
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("--allow-test-stores"));
  ASSERT_NO_FATAL_FAILURE(StopServer());
}

TEST_F(MetaServerTest, StartupErrorsAreClearAndExitOne) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  // The same database while the first server has it.
  {
    absl::StatusOr<std::unique_ptr<ChildProcess>> p =
        ChildProcess::Start(Argv(dir_.path() + "/p2", "127.0.0.1:0"), dir_.path() + "/second.log");
    ASSERT_OK(p);
    absl::StatusOr<int> st = (*p)->Wait(absl::Seconds(20));
    ASSERT_OK(st);
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 1);
    EXPECT_THAT((*p)->ReadLog(), HasSubstr("in use"));
  }
  // The port of the first server, with another state directory.
  {
    std::vector<std::string> argv = {BuildRoot() + "/meta/nighfs-meta", "--listen",
                                     absl::StrCat("127.0.0.1:", port_), "--state-dir",
                                     dir_.path() + "/state2"};
    absl::StatusOr<std::unique_ptr<ChildProcess>> p =
        ChildProcess::Start(argv, dir_.path() + "/third.log");
    ASSERT_OK(p);
    absl::StatusOr<int> st = (*p)->Wait(absl::Seconds(20));
    ASSERT_OK(st);
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 1);
    EXPECT_THAT((*p)->ReadLog(), HasSubstr("cannot listen"));
  }
  ASSERT_NO_FATAL_FAILURE(StopServer());
}

}  // namespace
}  // namespace nighfs
