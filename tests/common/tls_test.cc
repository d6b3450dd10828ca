// HttpServer with TLS against HttpClient (libcurl) and raw sockets, with lab certificates made
// by common/tls_certs: trust, refusal without retries, host names, plain HTTP and silent peers
// on a TLS port, and the server's limits over TLS.
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/connect.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "common/tls_certs.h"
#include "error.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/raw_connection.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Three lab CAs, made once: the one servers use, another, and one whose server certificate
// names only "nighfs.invalid".
class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dirs_ = new testing::TempDir();
    ASSERT_OK(WriteLabTls(Lab()));
    ASSERT_OK(WriteLabTls(Other()));
    LabTlsOptions o;
    o.add_local_names = false;
    o.hosts = {"nighfs.invalid"};
    ASSERT_OK(WriteLabTls(WrongName(), o));
  }
  static void TearDownTestSuite() {
    delete dirs_;
    dirs_ = nullptr;
  }
  static std::string Lab() { return dirs_->path() + "/lab"; }
  static std::string Other() { return dirs_->path() + "/other"; }
  static std::string WrongName() { return dirs_->path() + "/wrong-name"; }

  void StartServer(const std::string& tls_dir, HttpServerOptions options = {}) {
    options.tls_cert_file = tls_dir + "/server.pem";
    options.tls_key_file = tls_dir + "/server.key";
    absl::StatusOr<std::unique_ptr<HttpServer>> s =
        HttpServer::Start(options, [this](const ServerRequest& r) {
          ++calls_;
          ServerResponse resp;
          resp.body = r.body.empty() ? "hello" : r.body;
          return resp;
        });
    ASSERT_OK(s);
    server_ = std::move(*s);
  }
  std::string Url(const std::string& host = "127.0.0.1") const {
    return absl::StrCat("https://", host, ":", server_->port(), "/x");
  }
  static std::unique_ptr<HttpClient> Client(const std::string& ca_dir) {
    HttpClientOptions o;
    if (!ca_dir.empty()) o.ca_file = ca_dir + "/ca.pem";
    return HttpClient::Create(o);
  }
  static absl::StatusOr<HttpResponse> Get(HttpClient& c, const std::string& url,
                                          std::string_view body = {}) {
    HttpRequest r;
    r.method = body.empty() ? "GET" : "POST";
    r.url = url;
    r.body = body;
    return c.Do(r);
  }

  static testing::TempDir* dirs_;
  std::atomic<int> calls_{0};
  std::unique_ptr<HttpServer> server_;
};
testing::TempDir* TlsTest::dirs_ = nullptr;

TEST_F(TlsTest, TrustedClientIsAnsweredOnOneKeptAliveConnection) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Lab()));
  std::unique_ptr<HttpClient> client = Client(Lab());
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<HttpResponse> r = Get(*client, Url());
    ASSERT_OK(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "hello");
    // The first request paid the TCP and TLS handshakes; the others reused the connection
    // (a latency probe subtracts connect_time).
    if (i == 0) {
      EXPECT_GT(r->connect_time, absl::ZeroDuration());
    } else {
      EXPECT_EQ(r->connect_time, absl::ZeroDuration()) << "request " << i;
    }
  }
  const std::string big(1 << 20, 'b');
  absl::StatusOr<HttpResponse> r = Get(*client, Url(), big);
  ASSERT_OK(r);
  EXPECT_EQ(r->body, big);
  EXPECT_EQ(server_->load().connections, 1) << "keep-alive does not work over TLS";
  // The certificate names localhost too.
  r = Get(*client, Url("localhost"));
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
}

// The mount must fail at once when the CA is wrong: the failure is final, so the retry loop
// of the RPC layer (60 s by default) does not run.
TEST_F(TlsTest, ClientWithAnotherCaFailsAtOnceAndIsNotRetried) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Lab()));
  std::unique_ptr<HttpClient> client = Client(Other());
  absl::StatusOr<HttpResponse> r = Get(*client, Url());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("certificate verification failed"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("check ca_file"));

  ConnectClientOptions o;
  o.base_url = absl::StrCat("https://127.0.0.1:", server_->port());
  o.retry.deadline = absl::Seconds(30);
  ConnectClient rpc(client.get(), o);
  rpc::v1::ConnectError req, resp;
  const absl::Time start = absl::Now();
  absl::Status s = rpc.Call("/svc/M", req, &resp);
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("attempts"))) << s;
  EXPECT_LT(took, absl::Milliseconds(500)) << s;
  EXPECT_EQ(calls_.load(), 0);

  // No ca_file: the system store does not know the lab CA either.
  r = Get(*Client(""), Url());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  // An unreadable ca_file is the same kind of mistake.
  HttpClientOptions missing;
  missing.ca_file = Lab() + "/no-such-ca.pem";
  r = Get(*HttpClient::Create(missing), Url());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_EQ(calls_.load(), 0);
}

TEST_F(TlsTest, HostNameNotInTheCertificateFails) {
  ASSERT_NO_FATAL_FAILURE(StartServer(WrongName()));
  absl::StatusOr<HttpResponse> r = Get(*Client(WrongName()), Url());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("127.0.0.1"));
  EXPECT_EQ(calls_.load(), 0);
}

TEST_F(TlsTest, PlainHttpAndGarbageGetNoHandlerCallAndDoNotWedgeTheServer) {
  HttpServerOptions options;
  options.threads = 1;
  ASSERT_NO_FATAL_FAILURE(StartServer(Lab(), options));
  // Plain HTTP: a 400 in words, never the handler.
  absl::StatusOr<HttpResponse> r =
      Get(*Client(""), absl::StrCat("http://127.0.0.1:", server_->port(), "/x"), "payload");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_THAT(r->body, HasSubstr("HTTPS only"));
  // Bytes that are neither HTTP nor TLS, and a ClientHello cut short by a close.
  for (std::string junk : {std::string("\x00\x01\x02\x03garbage", 11),
                           std::string("\x16\x03\x01\x00\xff\x01\x00", 7)}) {
    RawConnection c(server_->port());
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.Send(junk));
  }  // closed by us, mid-request
  RawConnection c(server_->port());
  ASSERT_TRUE(c.Send(std::string("\x00\x01\x02\x03garbage", 11)));
  bool eof = false;
  c.ReadAll(&eof);
  EXPECT_TRUE(eof) << "a non-TLS peer was not disconnected";
  EXPECT_EQ(calls_.load(), 0);
  // Still serving TLS.
  r = Get(*Client(Lab()), Url());
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(calls_.load(), 1);
}

// A TLS handshake with the server by a client held to `version` and, when not empty, to the
// TLS 1.2 `ciphers`. 0 when it completed, else the reason code of the first OpenSSL error
// (e.g. SSL_R_TLSV1_ALERT_PROTOCOL_VERSION: an alert the server sent).
unsigned long Handshake(uint16_t port, int version, const char* ciphers) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  // Security level 0, so this client is able to offer what the server must refuse.
  SSL_CTX_set_security_level(ctx, 0);
  SSL_CTX_set_min_proto_version(ctx, version);
  SSL_CTX_set_max_proto_version(ctx, version);
  if (ciphers != nullptr) SSL_CTX_set_cipher_list(ctx, ciphers);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  unsigned long reason = ~0ul;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    ERR_clear_error();
    reason = SSL_connect(ssl) == 1 ? 0 : ERR_GET_REASON(ERR_peek_error());
    SSL_free(ssl);
  }
  ::close(fd);
  SSL_CTX_free(ctx);
  return reason;
}

// The server speaks TLS 1.2 with ECDHE and AEAD ciphers, and TLS 1.3: older versions and CBC
// suites get the server's alert, which a client able to offer them receives.
TEST_F(TlsTest, OldProtocolVersionsAndNonAeadCiphersAreRefused) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Lab()));
  const uint16_t port = server_->port();
  EXPECT_EQ(Handshake(port, TLS1_3_VERSION, nullptr), 0u);
  EXPECT_EQ(Handshake(port, TLS1_2_VERSION, nullptr), 0u);
  EXPECT_EQ(Handshake(port, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256"), 0u);
  EXPECT_EQ(Handshake(port, TLS1_1_VERSION, "DEFAULT:@SECLEVEL=0"),
            static_cast<unsigned long>(SSL_R_TLSV1_ALERT_PROTOCOL_VERSION));
  EXPECT_EQ(Handshake(port, TLS1_VERSION, "DEFAULT:@SECLEVEL=0"),
            static_cast<unsigned long>(SSL_R_TLSV1_ALERT_PROTOCOL_VERSION));
  EXPECT_EQ(Handshake(port, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA"),
            static_cast<unsigned long>(SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE));
  EXPECT_EQ(calls_.load(), 0);
}

TEST_F(TlsTest, SilentPeersDoNotBlockOthersAndAreDroppedAfterTheHandshakeTimeout) {
  HttpServerOptions options;
  options.threads = 1;
  options.tls_handshake_timeout = absl::Seconds(1);
  ASSERT_NO_FATAL_FAILURE(StartServer(Lab(), options));
  std::vector<std::unique_ptr<RawConnection>> silent;
  for (int i = 0; i < 8; ++i) {
    silent.push_back(std::make_unique<RawConnection>(server_->port()));
    ASSERT_TRUE(silent.back()->connected());
  }
  // One more that starts a handshake and stops halfway.
  silent.push_back(std::make_unique<RawConnection>(server_->port()));
  ASSERT_TRUE(silent.back()->Send(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)));

  const absl::Time start = absl::Now();
  absl::StatusOr<HttpResponse> r = Get(*Client(Lab()), Url());
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(900)) << "the silent peers held the server";
  for (auto& c : silent) {
    bool eof = false;
    c->ReadAll(&eof);  // returns at the server's close, or fails after 10 s
    EXPECT_TRUE(eof);
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "silent peers were not dropped";
  // A session is forgotten when its last handler returns, just after the socket closes.
  EXPECT_TRUE(testing::WaitFor([&] { return server_->load().connections == 0; },
                               absl::Seconds(2)))
      << server_->load().connections;
}

TEST_F(TlsTest, BodyLimitAndConnectionCapsHoldOverTls) {
  HttpServerOptions options;
  options.max_body_bytes = 1000;
  options.max_connections = 1;
  ASSERT_NO_FATAL_FAILURE(StartServer(Lab(), options));
  std::unique_ptr<HttpClient> first = Client(Lab());
  absl::StatusOr<HttpResponse> r = Get(*first, Url());  // holds the one slot, kept alive
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
  r = Get(*Client(Lab()), Url());  // a second connection while the first is open
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_FALSE(r->Header("Retry-After").empty());
  r = Get(*first, Url(), std::string(2000, 'x'));  // on the kept-alive connection
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(calls_.load(), 1);
}

TEST_F(TlsTest, StartRefusesBadTlsFilesClearly) {
  auto start = [](const std::string& cert, const std::string& key) {
    HttpServerOptions o;
    o.tls_cert_file = cert;
    o.tls_key_file = key;
    return HttpServer::Start(o, [](const ServerRequest&) { return ServerResponse{}; }).status();
  };
  absl::Status s = start(Lab() + "/server.pem", "");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  s = start(Lab() + "/missing.pem", Lab() + "/server.key");
  EXPECT_THAT(std::string(s.message()), HasSubstr("missing.pem"));
  s = start(Lab() + "/server.pem", Other() + "/server.key");
  EXPECT_THAT(std::string(s.message()), HasSubstr("does not belong"));
  s = start(Lab() + "/server.key", Lab() + "/server.key");
  EXPECT_THAT(std::string(s.message()), HasSubstr("not a PEM certificate"));
  testing::TempDir tmp;
  ASSERT_OK(WriteLabTls(tmp.path()));
  ASSERT_EQ(::chmod((tmp.path() + "/server.key").c_str(), 0644), 0);
  s = start(tmp.path() + "/server.pem", tmp.path() + "/server.key");
  EXPECT_THAT(std::string(s.message()), HasSubstr("mode 0644"));
}

TEST_F(TlsTest, LabFilesAreWrittenOnceAndPrivate) {
  testing::TempDir tmp;
  const std::string dir = tmp.path() + "/tls";
  const mode_t old = ::umask(0);
  absl::Status s = WriteLabTls(dir);
  ::umask(old);
  ASSERT_OK(s);
  struct stat st;
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  for (const char* key : {kLabCaKey, kLabServerKey}) {
    ASSERT_EQ(::stat((dir + "/" + key).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << key;
  }
  EXPECT_EQ(WriteLabTls(dir).code(), absl::StatusCode::kFailedPrecondition);
  LabTlsOptions force;
  force.overwrite = true;
  EXPECT_OK(WriteLabTls(dir, force));
  std::vector<std::string> names = LabTlsNames({.hosts = {"a.example", "10.0.0.1", "localhost"}});
  EXPECT_THAT(names, ::testing::IsSupersetOf({"localhost", "127.0.0.1", "::1", "a.example",
                                              "10.0.0.1"}));
  EXPECT_EQ(std::count(names.begin(), names.end(), "localhost"), 1);
}

// Figures for the report: small requests per second on kept-alive connections, TLS against
// plain HTTP, and with a new client (new TLS context, connection and full handshake) per
// request.
TEST_F(TlsTest, KeptAliveTlsRidesOneConnection) {
  // Requests per second for 500 ms, and how many of them opened a connection.
  struct Rate {
    double rps = 0;
    int requests = 0;
    int connects = 0;
  };
  auto rate = [](HttpClient& c, const std::string& url, bool fresh) {
    Rate out;
    const absl::Time end = absl::Now() + absl::Milliseconds(500);
    HttpClientOptions o;
    o.ca_file = Lab() + "/ca.pem";
    const absl::Time start = absl::Now();
    while (absl::Now() < end) {
      std::unique_ptr<HttpClient> own = fresh ? HttpClient::Create(o) : nullptr;
      absl::StatusOr<HttpResponse> r = Get(fresh ? *own : c, url);
      if (!r.ok() || r->status != 200) return Rate();
      ++out.requests;
      if (r->connect_time > absl::ZeroDuration()) ++out.connects;
    }
    out.rps = out.requests / absl::ToDoubleSeconds(absl::Now() - start);
    return out;
  };
  absl::StatusOr<std::unique_ptr<HttpServer>> plain =
      HttpServer::Start({}, [](const ServerRequest&) {
        ServerResponse r;
        r.body = "hello";
        return r;
      });
  ASSERT_OK(plain);
  ASSERT_NO_FATAL_FAILURE(StartServer(Lab()));
  std::unique_ptr<HttpClient> tls_client = Client(Lab());
  std::unique_ptr<HttpClient> plain_client = Client("");
  const std::string plain_url = absl::StrCat("http://127.0.0.1:", (*plain)->port(), "/x");
  const Rate plain_rate = rate(*plain_client, plain_url, false);
  const Rate tls_rate = rate(*tls_client, Url(), false);
  const Rate handshake_rate = rate(*tls_client, Url(), true);
  // The rates go into docs/BENCHMARKS.md ("Security costs") and depend on the machine's load;
  // what is checked is why kept-alive TLS is cheap: one handshake for all its requests.
  std::printf("small requests/s, kept-alive: plain %.0f, TLS %.0f; TLS with a handshake each: "
              "%.0f (%.2f ms per request)\n",
              plain_rate.rps, tls_rate.rps, handshake_rate.rps,
              handshake_rate.rps > 0 ? 1000.0 / handshake_rate.rps : 0);
  ASSERT_GT(plain_rate.requests, 0);
  ASSERT_GT(tls_rate.requests, 1);
  ASSERT_GT(handshake_rate.requests, 0);
  EXPECT_EQ(plain_rate.connects, 1);
  EXPECT_EQ(tls_rate.connects, 1) << "TLS requests do not reuse their connection";
  EXPECT_EQ(handshake_rate.connects, handshake_rate.requests);
}

}  // namespace
}  // namespace nighfs
