#include "tests/testing/fault_proxy.h"

#include <strings.h>

#include <optional>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"

namespace nighfs::testing {
namespace {

bool NameIs(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// Headers that describe one hop (RFC 9110 7.6.1) or its framing: each hop's HTTP stack writes
// its own.
bool IsHopByHop(std::string_view name) {
  for (std::string_view h : {"Connection", "Keep-Alive", "Content-Length", "Transfer-Encoding",
                             "Expect", "TE", "Trailer", "Upgrade", "Proxy-Connection",
                             "Proxy-Authenticate", "Proxy-Authorization"}) {
    if (NameIs(name, h)) return true;
  }
  return false;
}

ServerResponse XmlError(int status, std::string_view code, std::string_view message,
                        uint64_t serial) {
  ServerResponse r;
  r.status = status;
  r.content_type = "application/xml";
  r.body = absl::StrCat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>", std::string(code),
      "</Code><Message>", std::string(message), "</Message><RequestId>nighfs-fault-", serial,
      "</RequestId></Error>");
  return r;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FaultProxy>> FaultProxy::Start(std::string upstream_base_url) {
  while (!upstream_base_url.empty() && upstream_base_url.back() == '/') upstream_base_url.pop_back();
  if (upstream_base_url.empty()) return absl::InvalidArgumentError("FaultProxy: empty upstream");
  std::unique_ptr<FaultProxy> proxy(new FaultProxy(std::move(upstream_base_url)));
  HttpServerOptions options;
  options.bind_address = "127.0.0.1";
  options.port = 0;
  // Delayed requests hold an io thread for 2 s; leave plenty for the others.
  options.threads = 16;
  options.max_body_bytes = size_t{1} << 30;
  FaultProxy* self = proxy.get();
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Start(options, [self](const ServerRequest& r) { return self->Handle(r); });
  if (!server.ok()) return server.status();
  proxy->server_ = std::move(*server);
  return proxy;
}

FaultProxy::FaultProxy(std::string upstream)
    : upstream_(std::move(upstream)), client_(HttpClient::Create()) {}

FaultProxy::~FaultProxy() {
  if (server_) server_->Stop();
}

void FaultProxy::InjectNext(Fault f, int count) {
  absl::MutexLock lock(&mu_);
  for (int i = 0; i < count; ++i) faults_.push_back(f);
}

void FaultProxy::ClearFaults() {
  absl::MutexLock lock(&mu_);
  faults_.clear();
}

int FaultProxy::faults_pending() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(faults_.size());
}

int FaultProxy::requests_seen() const {
  absl::MutexLock lock(&mu_);
  return requests_seen_;
}

void FaultProxy::ResetCounters() {
  absl::MutexLock lock(&mu_);
  requests_seen_ = 0;
}

uint16_t FaultProxy::port() const { return server_->port(); }

std::string FaultProxy::url() const { return absl::StrCat("http://127.0.0.1:", port()); }

ServerResponse FaultProxy::Handle(const ServerRequest& request) {
  std::optional<Fault> fault;
  uint64_t serial = 0;
  {
    absl::MutexLock lock(&mu_);
    ++requests_seen_;
    if (!faults_.empty()) {
      fault = faults_.front();
      faults_.pop_front();
      serial = ++fault_serial_;
    }
  }
  if (fault.has_value()) {
    NIGHFS_LOG(DEBUG) << "fault proxy: injecting fault " << static_cast<int>(*fault) << " into "
                      << request.method << " " << request.target;
    switch (*fault) {
      case Fault::kServiceUnavailable:
        return XmlError(503, "SlowDown", "Please reduce your request rate.", serial);
      case Fault::kTooManyRequests:
        return XmlError(429, "TooManyRequests", "Too many requests; slow down.", serial);
      case Fault::kForbidden:
        return XmlError(403, "AccessDenied", "Access Denied", serial);
      case Fault::kDropConnection: {
        ServerResponse r;
        r.close_without_reply = true;
        return r;
      }
      case Fault::kDelay:
        absl::SleepFor(absl::Seconds(2));
        break;
    }
  }
  return Forward(request);
}

ServerResponse FaultProxy::Forward(const ServerRequest& request) {
  HttpRequest out;
  out.method = request.method;
  out.url = upstream_ + request.target;
  for (const auto& [name, value] : request.headers) {
    if (!IsHopByHop(name)) out.headers.emplace_back(name, value);
  }
  out.body = request.body;
  absl::StatusOr<HttpResponse> in = client_->Do(out);
  if (!in.ok()) {
    ServerResponse r;
    r.status = 502;
    r.content_type = "text/plain; charset=utf-8";
    r.body = absl::StrCat("fault proxy: upstream failed: ", in.status().ToString(), "\n");
    return r;
  }
  ServerResponse r;
  r.status = in->status;
  r.content_type.clear();  // only what the upstream sent, relayed among the headers
  for (auto& [name, value] : in->headers) {
    // For HEAD the server keeps a handler's Content-Length as the entity length; otherwise it
    // recomputes it from the body.
    if (NameIs(name, "Content-Length") && request.method == "HEAD") {
      r.headers.emplace_back(std::move(name), std::move(value));
      continue;
    }
    if (IsHopByHop(name)) continue;
    r.headers.emplace_back(std::move(name), std::move(value));
  }
  r.body = std::move(in->body);
  return r;
}

}  // namespace nighfs::testing
