// A failure-injecting reverse HTTP proxy for tests: put it between a client under test and a
// real server (nighfs-meta, s3rver, Azurite) and make the next requests fail the way networks and
// object stores fail (throttling, auth errors, dropped connections, slow answers), to test retry
// and error paths against real protocol code.
//
//   auto proxy = FaultProxy::Start("http://127.0.0.1:" + std::to_string(s3rver_port));
//   ... point the client at (*proxy)->url() ...
//   (*proxy)->InjectNext(FaultProxy::Fault::kServiceUnavailable);
//   ... one call, which the client should retry ...
//   EXPECT_EQ((*proxy)->requests_seen(), 2);
//
// Forwarding: every request is sent to `upstream_base_url` + its target (path and query) with
// its method, body and headers. The Host header is forwarded unchanged: a signed S3 or Azure
// request was signed for the proxy's host:port, and rewriting Host would break signatures that
// cover it (s3rver ignores signatures; Azurite's Shared Key does not cover Host). Hop-by-hop and
// framing headers (Connection, Keep-Alive, Content-Length, Transfer-Encoding, Expect, TE,
// Upgrade, Proxy-*) are not forwarded; the proxy's own HTTP stack frames each hop. The
// upstream's status, headers and body are relayed back (for HEAD, with the upstream's
// Content-Length). An upstream that cannot be reached yields 502. Redirects are relayed, not
// followed.
//
// Thread-safe: requests are served concurrently; InjectNext() and the counters may be called
// from any thread.
#ifndef NIGHFS_TESTS_TESTING_FAULT_PROXY_H_
#define NIGHFS_TESTS_TESTING_FAULT_PROXY_H_

#include <deque>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/http_client.h"
#include "common/http_server.h"

namespace nighfs::testing {

class FaultProxy {
 public:
  enum class Fault {
    kServiceUnavailable,  // 503 with an S3-style <Error><Code>SlowDown</Code>... body
    kTooManyRequests,     // 429 with an <Error><Code>TooManyRequests</Code>... body
    kForbidden,           // 403 with an S3-style <Error><Code>AccessDenied</Code>... body
    kDropConnection,      // the request is read, then the connection closed without a reply
    kDelay,               // the request is forwarded after a 2 s pause
  };

  // Listens on 127.0.0.1 (a free port) and forwards to `upstream_base_url`, e.g.
  // "http://127.0.0.1:9000" (a trailing '/' is ignored). Faulted requests never reach upstream.
  static absl::StatusOr<std::unique_ptr<FaultProxy>> Start(std::string upstream_base_url);
  ~FaultProxy();  // stops serving; waits for requests in flight
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  // The next `count` requests (in arrival order) get `f` instead of, or in the case of kDelay
  // before, being forwarded. Calls queue up behind faults not yet consumed.
  void InjectNext(Fault f, int count = 1);
  // Drops the faults not yet consumed.
  void ClearFaults();
  // Faults still queued.
  int faults_pending() const;

  // Requests received since start or the last ResetCounters(), faulted ones included.
  int requests_seen() const;
  // Zeroes requests_seen(). Queued faults are kept (ClearFaults() drops them).
  void ResetCounters();

  // "http://127.0.0.1:PORT": the base URL clients should use instead of the upstream's.
  std::string url() const;
  uint16_t port() const;

 private:
  explicit FaultProxy(std::string upstream);
  ServerResponse Handle(const ServerRequest& request);
  ServerResponse Forward(const ServerRequest& request);

  const std::string upstream_;
  std::unique_ptr<HttpClient> client_;
  mutable absl::Mutex mu_;
  std::deque<Fault> faults_ ABSL_GUARDED_BY(mu_);
  int requests_seen_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t fault_serial_ ABSL_GUARDED_BY(mu_) = 0;
  // Last member: destroyed (stopped, threads joined) first, while the rest is still valid.
  std::unique_ptr<HttpServer> server_;
};

}  // namespace nighfs::testing

#endif  // NIGHFS_TESTS_TESTING_FAULT_PROXY_H_
