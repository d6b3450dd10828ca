// The nighfs-meta daemon as a process: started on port 0, driven over HTTP with the real
// metadata client, stopped with SIGTERM and started again on the same state.
#include <sys/stat.h>
#include <sys/wait.h>

#include <csignal>
#include <string>
#include <vector>

#include "tests/meta/meta_server_fixture.h"

namespace nighfs::meta_testing {
namespace {

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
  // Anonymous: 401 before anything else, also for a method that does not exist.
  absl::StatusOr<HttpResponse> r = http->Do(post);
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 401);
  post.url = base_url() + "/nighfs.meta.v1.MetaService/NoSuchMethod";
  r = http->Do(post);
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 401);
  post.url = base_url() + "/nighfs.meta.v1.MetaService/Lookup";
  post.headers.push_back({"Authorization", "Bearer " + admin_token_});
  r = http->Do(post);
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
                                     dir_.path() + "/state2", "--insecure-plaintext"};
    absl::StatusOr<std::unique_ptr<ChildProcess>> p =
        ChildProcess::Start(argv, dir_.path() + "/third.log");
    ASSERT_OK(p);
    absl::StatusOr<int> st = (*p)->Wait(absl::Seconds(20));
    ASSERT_OK(st);
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 1);
    EXPECT_THAT((*p)->ReadLog(), HasSubstr("cannot listen"));
  }
  // A tombstone retention that is no duration.
  for (const std::string bad : {"0", "7x", "-1d", "d"}) {
    std::vector<std::string> argv = {BuildRoot() + "/meta/nighfs-meta", "--listen",
                                     "127.0.0.1:0", "--state-dir", dir_.path() + "/state3",
                                     "--gc-tombstone-retention", bad, "--insecure-plaintext"};
    absl::StatusOr<std::unique_ptr<ChildProcess>> p =
        ChildProcess::Start(argv, dir_.path() + "/fourth.log");
    ASSERT_OK(p);
    absl::StatusOr<int> st = (*p)->Wait(absl::Seconds(20));
    ASSERT_OK(st);
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 1) << bad;
    EXPECT_THAT((*p)->ReadLog(), HasSubstr("--gc-tombstone-retention")) << bad;
  }
  ASSERT_NO_FATAL_FAILURE(StopServer());
}

// TLS is the default: a server given neither a certificate nor --insecure-plaintext refuses to
// start and says which flags to pass; a private key others can read is refused; with the lab
// pair it serves https to a client that trusts the lab CA; --insecure-plaintext is a warning.
TEST_F(MetaServerTest, TlsOrAnExplicitPlaintextFlag) {
  auto run_to_exit = [&](std::vector<std::string> argv, const std::string& log) {
    absl::StatusOr<std::unique_ptr<ChildProcess>> p = ChildProcess::Start(argv, log);
    EXPECT_OK(p);
    if (!p.ok()) return std::string();
    absl::StatusOr<int> st = (*p)->Wait(absl::Seconds(20));
    EXPECT_OK(st);
    EXPECT_TRUE(st.ok() && WIFEXITED(*st) && WEXITSTATUS(*st) == 1) << (*p)->ReadLog();
    return (*p)->ReadLog();
  };
  const std::string meta = BuildRoot() + "/meta/nighfs-meta";
  std::string log = run_to_exit({meta, "--listen", "127.0.0.1:0", "--state-dir", state_dir()},
                                dir_.path() + "/none.log");
  EXPECT_THAT(log, HasSubstr("--tls-cert FILE --tls-key FILE"));
  EXPECT_THAT(log, HasSubstr("--insecure-plaintext"));
  EXPECT_THAT(log, HasSubstr("nighfs configure init tls"));

  const std::string tls = dir_.path() + "/tls";
  ASSERT_OK(WriteLabTls(tls));
  const std::string cert = tls + "/server.pem", key = tls + "/server.key";
  ASSERT_EQ(::chmod(key.c_str(), 0640), 0);
  log = run_to_exit({meta, "--listen", "127.0.0.1:0", "--state-dir", state_dir(), "--tls-cert",
                     cert, "--tls-key", key},
                    dir_.path() + "/mode.log");
  EXPECT_THAT(log, HasSubstr("mode 0640"));
  EXPECT_THAT(log, HasSubstr("chmod 600"));
  ASSERT_EQ(::chmod(key.c_str(), 0600), 0);

  const std::string port_file = dir_.path() + "/tls.port";
  std::vector<std::string> argv = Argv(port_file, "127.0.0.1:0");
  argv.pop_back();  // --insecure-plaintext
  argv.insert(argv.end(), {"--tls-cert", cert, "--tls-key", key});
  absl::StatusOr<std::unique_ptr<ChildProcess>> p = ChildProcess::Start(argv, log_path());
  ASSERT_OK(p);
  server_ = std::move(*p);
  ASSERT_TRUE(WaitFor(
      [&] {
        return absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFileOrEmpty(port_file)), &port_) &&
               port_ > 0;
      },
      absl::Seconds(20)))
      << server_->ReadLog();
  MetaClientOptions o;
  o.address = absl::StrCat("127.0.0.1:", port_);  // bare host:port is https
  o.ca_file = tls + "/ca.pem";
  o.bearer_token = std::string(absl::StripAsciiWhitespace(ReadFileOrEmpty(admin_token_file())));
  o.op_timeout = absl::Seconds(10);
  absl::StatusOr<std::unique_ptr<MetaApi>> c = NewMetaClient(o);
  ASSERT_OK(c);
  EXPECT_OK((*c)->ListVolumes(pb::ListVolumesRequest()));
  // Plain HTTP to the TLS port: a clear, final refusal.
  o.address = absl::StrCat("http://127.0.0.1:", port_);
  c = NewMetaClient(o);
  ASSERT_OK(c);
  absl::StatusOr<pb::ListVolumesResponse> plain = (*c)->ListVolumes(pb::ListVolumesRequest());
  EXPECT_FALSE(plain.ok());
  EXPECT_THAT(std::string(plain.status().message()), HasSubstr("HTTPS only"));
  // Logged just after the port file is written.
  EXPECT_TRUE(WaitFor([&] { return absl::StrContains(server_->ReadLog(), "serving https"); },
                      absl::Seconds(10)))
      << server_->ReadLog();
  ASSERT_NO_FATAL_FAILURE(StopServer());

  ASSERT_NO_FATAL_FAILURE(StartServer());  // --insecure-plaintext
  // Logged at warning level ("W" lines), just after the port file is written.
  WaitFor([&] { return absl::StrContains(server_->ReadLog(), "serving http "); },
          absl::Seconds(10));
  EXPECT_THAT(server_->ReadLog(),
              ::testing::ContainsRegex("W[0-9]+ [0-9:.]+ main.cc:[0-9]+\\] --insecure-plaintext: "
                                       "serving plain HTTP"));
  ASSERT_NO_FATAL_FAILURE(StopServer());
}
}  // namespace
}  // namespace nighfs::meta_testing
