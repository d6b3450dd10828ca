#include "tests/testing/emulators.h"

#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "blockstore/azure_auth.h"
#include "blockstore/azure_store.h"
#include "blockstore/sigv4.h"
#include "common/http_client.h"

namespace nighfs::testing {
namespace {

std::string NodeBinary(const std::string& name) {
  const std::string dir = NodeToolsDir();
  if (dir.empty()) return "";
  std::string bin = absl::StrCat(dir, "/node_modules/.bin/", name);
  return ::access(bin.c_str(), X_OK) == 0 ? bin : "";
}

// FreeLoopbackPort() hands out a port that was free a moment ago; another process may take it
// before the emulator binds it. Then the emulator exits (EADDRINUSE): try again on a new port.
constexpr int kStartAttempts = 3;

// Waits until `proc` accepts connections on `port`, or exits, or `timeout` passes.
bool WaitListening(ChildProcess* proc, int port, absl::Duration timeout) {
  bool listening = false;
  WaitFor(
      [&] {
        listening = WaitForTcpPort(port, absl::Milliseconds(200)).ok();
        return listening || !proc->Running();
      },
      timeout);
  return listening && proc->Running();
}

absl::StatusOr<HttpResponse> Send(const HttpRequest& request) {
  std::unique_ptr<HttpClient> client = HttpClient::Create();
  if (client == nullptr) return absl::InternalError("cannot create an HTTP client");
  return client->Do(request);
}

}  // namespace

std::string S3rverBinary() { return NodeBinary("s3rver"); }
std::string AzuriteBinary() { return NodeBinary("azurite-blob"); }

// ---------------------------------------------------------------------------------------------
// s3rver

absl::StatusOr<std::unique_ptr<S3rver>> S3rver::Start(const std::string& dir) {
  if (S3rverBinary().empty()) {
    return absl::NotFoundError("s3rver is not installed (run scripts/setup.sh)");
  }
  std::unique_ptr<S3rver> server(new S3rver);
  server->dir_ = dir;
  absl::Status last;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    server->port_ = FreeLoopbackPort();
    last = server->Launch();
    if (last.ok()) return server;
  }
  return last;
}

absl::Status S3rver::Launch() {
  absl::StatusOr<std::unique_ptr<ChildProcess>> proc = ChildProcess::Start(
      {S3rverBinary(), "-d", dir_ + "/s3rver-data", "-a", "127.0.0.1", "-p",
       std::to_string(port_), "--silent"},
      dir_ + "/s3rver.log",
      // DES continuation tokens need OpenSSL's legacy provider under Node 17+; without it
      // every truncated listing is a 500.
      {{"NODE_OPTIONS", absl::StrCat("--openssl-legacy-provider --require \"", SourceRoot(),
                                     "/tests/blockstore/s3rver_fixes.js\"")}});
  if (!proc.ok()) return proc.status();
  if (WaitListening(proc->get(), port_, absl::Seconds(30))) {
    process_ = std::move(*proc);
    return absl::OkStatus();
  }
  return absl::UnavailableError(absl::StrCat("s3rver did not start on port ", port_, "; log:\n",
                                             (*proc)->ReadLog()));
}

absl::Status S3rver::Restart() {
  if (process_ != nullptr) return absl::FailedPreconditionError("s3rver is running");
  absl::Status last;
  // The port was ours a moment ago; another process may have taken it meanwhile.
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    last = Launch();
    if (last.ok()) return last;
    absl::SleepFor(absl::Milliseconds(200));
  }
  return last;
}

S3rver::~S3rver() { (void)Stop(); }

std::string S3rver::url() const { return absl::StrCat("http://127.0.0.1:", port_); }

std::string S3rver::log() const { return ReadFileOrEmpty(dir_ + "/s3rver.log"); }

absl::Status S3rver::Stop() {
  if (process_ == nullptr) return absl::OkStatus();
  absl::StatusOr<int> st = process_->Stop();
  process_.reset();
  return st.status();
}

absl::Status S3rver::CreateBucket(const std::string& name) {
  const std::string host = absl::StrCat("127.0.0.1:", port_);
  const std::string path = "/" + name;
  HttpHeaders headers = {{"host", host}, {"Content-Length", "0"}};
  blockstore::sigv4::SignS3Request("PUT", path, {}, blockstore::sigv4::kEmptyPayloadSha256,
                                   {kS3rverAccessKey, kS3rverSecret, ""}, kS3rverRegion,
                                   absl::Now(), &headers);
  HttpRequest req;
  req.method = "PUT";
  req.url = absl::StrCat("http://", host, blockstore::sigv4::CanonicalUri(path));
  req.headers = std::move(headers);
  req.timeout = absl::Seconds(30);
  absl::StatusOr<HttpResponse> r = Send(req);
  if (!r.ok()) return r.status();
  // s3rver has one account, so a bucket that exists is ours: S3 would answer
  // BucketAlreadyOwnedByYou, s3rver 3.7.1 answers BucketAlreadyExists.
  if (r->status == 200 ||
      (r->status == 409 && (r->body.find("BucketAlreadyOwnedByYou") != std::string::npos ||
                            r->body.find("BucketAlreadyExists") != std::string::npos))) {
    return absl::OkStatus();
  }
  return absl::InternalError(
      absl::StrCat("PUT Bucket ", name, ": HTTP ", r->status, " ", r->body));
}

// ---------------------------------------------------------------------------------------------
// Azurite

absl::StatusOr<std::unique_ptr<Azurite>> Azurite::Start(const std::string& dir) {
  const std::string bin = AzuriteBinary();
  if (bin.empty()) {
    return absl::NotFoundError("azurite-blob is not installed (run scripts/setup.sh)");
  }
  std::unique_ptr<Azurite> server(new Azurite);
  server->dir_ = dir;
  absl::Status last;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    server->port_ = FreeLoopbackPort();
    absl::StatusOr<std::unique_ptr<ChildProcess>> proc = ChildProcess::Start(
        // In memory: faster than its on-disk store (listing thousands of keys is dominated by
        // the emulator), and nothing to clean up. (Azurite refuses --location with it.)
        {bin, "--blobHost", "127.0.0.1", "--blobPort", std::to_string(server->port_),
         "--inMemoryPersistence", "--skipApiVersionCheck", "--loose", "--silent",
         // Azurite otherwise reports usage to Microsoft: tests stay on loopback.
         "--disableTelemetry"},
        dir + "/azurite.log");
    if (!proc.ok()) return proc.status();
    if (WaitListening(proc->get(), server->port_, absl::Seconds(60))) {
      server->process_ = std::move(*proc);
      return server;
    }
    last = absl::UnavailableError(absl::StrCat("Azurite did not start on port ", server->port_,
                                               "; log:\n", (*proc)->ReadLog()));
  }
  return last;
}

Azurite::~Azurite() { (void)Stop(); }

std::string Azurite::origin() const { return absl::StrCat("http://127.0.0.1:", port_); }

std::string Azurite::endpoint() const { return absl::StrCat(origin(), "/", kAzuriteAccount); }

std::string Azurite::log() const { return ReadFileOrEmpty(dir_ + "/azurite.log"); }

absl::Status Azurite::Stop() {
  if (process_ == nullptr) return absl::OkStatus();
  absl::StatusOr<int> st = process_->Stop();
  process_.reset();
  return st.status();
}

absl::Status Azurite::CreateContainer(const std::string& name) {
  absl::StatusOr<blockstore::azure::SharedKeySigner> signer =
      blockstore::azure::SharedKeySigner::Create(kAzuriteAccount, kAzuriteKey);
  if (!signer.ok()) return signer.status();
  blockstore::azure::AzureRequest req;
  req.method = "PUT";
  req.path = absl::StrCat("/", kAzuriteAccount, "/", name);
  req.query = {{"restype", "container"}};
  req.headers = {{"x-ms-version", blockstore::kAzureApiVersion}, {"Content-Length", "0"}};
  signer->Sign(absl::Now(), &req);
  HttpRequest http;
  http.method = req.method;
  http.url = absl::StrCat(origin(), req.path, "?", blockstore::azure::BuildQueryString(req));
  http.headers = req.headers;
  http.timeout = absl::Seconds(30);
  absl::StatusOr<HttpResponse> r = Send(http);
  if (!r.ok()) return r.status();
  // 409 ContainerAlreadyExists: created before.
  if (r->status != 201 && r->status != 409) {
    return absl::InternalError(
        absl::StrCat("Create Container ", name, ": HTTP ", r->status, " ", r->body));
  }
  return absl::OkStatus();
}

}  // namespace nighfs::testing
