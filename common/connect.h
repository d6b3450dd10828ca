// Connect-style unary RPC over HTTP: POST /<package>.<Service>/<Method> with a binary protobuf
// body (Content-Type: application/proto); errors are a non-2xx status with a JSON ConnectError
// body {"code", "message", "errno"}. Used by every nighfs daemon and client.
#ifndef NIGHFS_COMMON_CONNECT_H_
#define NIGHFS_COMMON_CONNECT_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "common/retry.h"
#include "google/protobuf/message.h"

namespace nighfs {

// Connect's code names ("not_found") and their HTTP statuses, both ways.
std::string_view ConnectCodeName(absl::StatusCode code);
int ConnectHttpStatus(absl::StatusCode code);
absl::StatusCode ConnectCodeFromName(std::string_view name);

// `s` as valid UTF-8, each byte that is not part of a valid sequence written as "\xNN": for
// text of any bytes (a path, a peer's message) that must go into a protobuf string or JSON,
// both of which take only UTF-8.
std::string ValidUtf8(std::string_view s);

// Encodes a failed status as the response a Connect server sends.
ServerResponse ConnectErrorResponse(const absl::Status& status);

// Server side: maps paths to typed handlers. Thread-safe for Handle() once set up.
class ConnectRouter {
 public:
  using RawHandler = std::function<absl::Status(std::string_view body, std::string* out)>;
  // Called before every handler; a non-OK status is sent back as is (the auth seam: TLS client
  // identity and per-volume tokens plug in here).
  using Authenticator = std::function<absl::Status(const ServerRequest&)>;

  template <class Req, class Resp>
  void Add(std::string path, std::function<absl::StatusOr<Resp>(const Req&)> fn) {
    AddRaw(std::move(path), [fn = std::move(fn)](std::string_view body, std::string* out) {
      Req req;
      if (!req.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
        return absl::InvalidArgumentError("request body is not a valid " + req.GetTypeName());
      }
      absl::StatusOr<Resp> resp = fn(req);
      if (!resp.ok()) return resp.status();
      resp->SerializeToString(out);
      return absl::OkStatus();
    });
  }
  // As Add, with the HTTP request (its headers: credentials) at hand: the hook of an auth
  // layer that checks each decoded request (meta/auth.h).
  template <class Req, class Resp>
  void AddWithRequest(std::string path,
                      std::function<absl::StatusOr<Resp>(const ServerRequest&, const Req&)> fn) {
    handlers_[std::move(path)] = [fn = std::move(fn)](const ServerRequest& http,
                                                      std::string* out) -> absl::Status {
      Req req;
      if (!req.ParseFromArray(http.body.data(), static_cast<int>(http.body.size()))) {
        return absl::InvalidArgumentError("request body is not a valid " + req.GetTypeName());
      }
      absl::StatusOr<Resp> resp = fn(http, req);
      if (!resp.ok()) return resp.status();
      resp->SerializeToString(out);
      return absl::OkStatus();
    };
  }
  void AddRaw(std::string path, RawHandler handler);
  void SetAuthenticator(Authenticator auth) { auth_ = std::move(auth); }

  // 404 unknown path, 405 not POST, 415 wrong content type, 400 undecodable body.
  ServerResponse Handle(const ServerRequest& request) const;

 private:
  using ContextHandler = std::function<absl::Status(const ServerRequest&, std::string* out)>;
  std::map<std::string, ContextHandler, std::less<>> handlers_;
  Authenticator auth_;
};

struct ConnectClientOptions {
  std::string base_url;       // e.g. "http://127.0.0.1:7420"
  std::string bearer_token;   // sent as "Authorization: Bearer ..." when set
  // Adds headers to every attempt (read at each attempt: they may change between calls).
  std::function<void(HttpHeaders*)> add_headers;
  absl::Duration call_timeout = absl::Seconds(30);  // one attempt
  // Transport errors and 5xx/429 are retried; retry.deadline bounds the whole call, every
  // attempt and backoff included.
  RetryPolicy retry;
};

class ConnectClient {
 public:
  // `http` must outlive the client.
  ConnectClient(HttpClient* http, ConnectClientOptions options);

  // Calls `path` ("/nighfs.meta.v1.MetaService/Lookup"). A server error comes back as its
  // status, with its errno payload; an unreachable server as Unavailable after retries.
  absl::Status Call(std::string_view path, const google::protobuf::Message& request,
                    google::protobuf::Message* response) const;

  const ConnectClientOptions& options() const { return options_; }

 private:
  absl::Status CallOnce(const std::string& url, const std::string& body, absl::Duration timeout,
                        google::protobuf::Message* response) const;
  HttpClient* http_;
  ConnectClientOptions options_;
};

}  // namespace nighfs

#endif  // NIGHFS_COMMON_CONNECT_H_
