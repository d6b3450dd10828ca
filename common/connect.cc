#include "common/connect.h"

#include <algorithm>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/errno_status.h"
#include "common/logging.h"
#include "error.pb.h"
#include "google/protobuf/stubs/common.h"
#include "google/protobuf/util/json_util.h"

namespace nighfs {
namespace {

struct CodeRow {
  absl::StatusCode code;
  std::string_view name;
  int http;
};

// From the Connect protocol specification's error code table.
constexpr CodeRow kCodes[] = {
    {absl::StatusCode::kCancelled, "canceled", 499},
    {absl::StatusCode::kUnknown, "unknown", 500},
    {absl::StatusCode::kInvalidArgument, "invalid_argument", 400},
    {absl::StatusCode::kDeadlineExceeded, "deadline_exceeded", 504},
    {absl::StatusCode::kNotFound, "not_found", 404},
    {absl::StatusCode::kAlreadyExists, "already_exists", 409},
    {absl::StatusCode::kPermissionDenied, "permission_denied", 403},
    {absl::StatusCode::kResourceExhausted, "resource_exhausted", 429},
    {absl::StatusCode::kFailedPrecondition, "failed_precondition", 400},
    {absl::StatusCode::kAborted, "aborted", 409},
    {absl::StatusCode::kOutOfRange, "out_of_range", 400},
    {absl::StatusCode::kUnimplemented, "unimplemented", 501},
    {absl::StatusCode::kInternal, "internal", 500},
    {absl::StatusCode::kUnavailable, "unavailable", 503},
    {absl::StatusCode::kDataLoss, "data_loss", 500},
    {absl::StatusCode::kUnauthenticated, "unauthenticated", 401},
};

// One past the largest errno a FUSE reply may carry (Linux fs/fuse/dev.c).
constexpr int kMaxFuseErrno = 512;

absl::StatusCode CodeFromHttp(int http) {
  switch (http) {
    case 400: return absl::StatusCode::kInvalidArgument;
    case 401: return absl::StatusCode::kUnauthenticated;
    case 403: return absl::StatusCode::kPermissionDenied;
    case 404: return absl::StatusCode::kUnimplemented;  // no such method: an old server
    case 408: return absl::StatusCode::kDeadlineExceeded;
    case 413: return absl::StatusCode::kInvalidArgument;
    case 429: case 502: case 503: case 504: return absl::StatusCode::kUnavailable;
    default: return http >= 500 ? absl::StatusCode::kInternal : absl::StatusCode::kUnknown;
  }
}

ServerResponse PlainError(int http, absl::StatusCode code, std::string message) {
  return ConnectErrorResponse(absl::Status(code, message));
}

}  // namespace

std::string_view ConnectCodeName(absl::StatusCode code) {
  for (const auto& row : kCodes) if (row.code == code) return row.name;
  return "unknown";
}

int ConnectHttpStatus(absl::StatusCode code) {
  for (const auto& row : kCodes) if (row.code == code) return row.http;
  return 500;
}

absl::StatusCode ConnectCodeFromName(std::string_view name) {
  for (const auto& row : kCodes) if (row.name == name) return row.code;
  return absl::StatusCode::kUnknown;
}

// A ConnectError travels as JSON, and protobuf writes a string with invalid UTF-8 into JSON that
// no JSON reader (protobuf's included) accepts: the client then lost the error's code and
// message and guessed from the HTTP status. Messages quote what a request named (a method, a
// volume, a store URL), which may be any bytes. Found by fuzz/meta_rpc.cc.
std::string ValidUtf8(std::string_view text) {
  absl::string_view s(text.data(), text.size());
  std::string out;
  while (!s.empty()) {
    const size_t valid = static_cast<size_t>(google::protobuf::internal::UTF8SpnStructurallyValid(
        google::protobuf::StringPiece(s.data(), s.size())));
    out.append(s.data(), valid);
    s.remove_prefix(valid);
    if (s.empty()) break;
    absl::StrAppend(&out, "\\x",
                    absl::Hex(static_cast<unsigned char>(s.front()), absl::kZeroPad2));
    s.remove_prefix(1);
  }
  return out;
}

ServerResponse ConnectErrorResponse(const absl::Status& status) {
  rpc::v1::ConnectError err;
  err.set_code(std::string(ConnectCodeName(status.code())));
  err.set_message(ValidUtf8(std::string_view(status.message().data(), status.message().size())));
  // Only a real file-system answer carries an errno: a client treats those as final.
  if (HasErrnoPayload(status)) err.set_posix_errno(StatusToErrno(status));
  ServerResponse resp;
  resp.status = ConnectHttpStatus(status.code());
  resp.content_type = "application/json";
  google::protobuf::util::JsonPrintOptions opts;
  (void)google::protobuf::util::MessageToJsonString(err, &resp.body, opts);
  return resp;
}

void ConnectRouter::AddRaw(std::string path, RawHandler handler) {
  handlers_[std::move(path)] = [handler = std::move(handler)](const ServerRequest& r,
                                                              std::string* out) {
    return handler(r.body, out);
  };
}

ServerResponse ConnectRouter::Handle(const ServerRequest& request) const {
  std::string_view path = request.target;
  if (size_t q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  auto it = handlers_.find(path);
  if (it == handlers_.end()) {
    // Unimplemented, not NotFound: an old server must not look like ENOENT to a new client.
    ServerResponse r = PlainError(404, absl::StatusCode::kUnimplemented,
                                  absl::StrCat("no such method: ", std::string(path)));
    r.status = 404;
    return r;
  }
  if (request.method != "POST") {
    ServerResponse r = PlainError(405, absl::StatusCode::kInvalidArgument,
                                  absl::StrCat("method ", request.method, " not allowed; use POST"));
    r.status = 405;
    r.headers.push_back({"Allow", "POST"});
    return r;
  }
  std::string ctype = absl::AsciiStrToLower(request.Header("content-type"));
  if (ctype.substr(0, ctype.find(';')) != "application/proto") {
    ServerResponse r = PlainError(415, absl::StatusCode::kInvalidArgument,
                                  absl::StrCat("unsupported content type '", ctype,
                                               "'; use application/proto"));
    r.status = 415;
    return r;
  }
  if (auth_) {
    if (absl::Status s = auth_(request); !s.ok()) return ConnectErrorResponse(s);
  }
  ServerResponse resp;
  absl::Status s = it->second(request, &resp.body);
  if (!s.ok()) {
    if (s.code() == absl::StatusCode::kInternal || s.code() == absl::StatusCode::kUnknown) {
      NIGHFS_LOG(ERROR) << path << ": " << s;
    } else {
      NIGHFS_LOG(DEBUG) << path << ": " << s;
    }
    return ConnectErrorResponse(s);
  }
  resp.status = 200;
  resp.content_type = "application/proto";
  return resp;
}

ConnectClient::ConnectClient(HttpClient* http, ConnectClientOptions options)
    : http_(http), options_(std::move(options)) {
  while (absl::EndsWith(options_.base_url, "/")) options_.base_url.pop_back();
}

absl::Status ConnectClient::CallOnce(const std::string& url, const std::string& body,
                                     absl::Duration timeout,
                                     google::protobuf::Message* response) const {
  HttpRequest req;
  req.method = "POST";
  req.url = url;
  req.headers = {{"Content-Type", "application/proto"}, {"Connect-Protocol-Version", "1"}};
  if (!options_.bearer_token.empty()) {
    req.headers.push_back({"Authorization", "Bearer " + options_.bearer_token});
  }
  if (options_.add_headers) options_.add_headers(&req.headers);
  req.body = body;
  req.timeout = timeout;
  absl::StatusOr<HttpResponse> resp = http_->Do(req);
  if (!resp.ok()) return resp.status();
  if (resp->status == 200) {
    if (!response->ParseFromString(resp->body)) {
      return absl::DataLossError(absl::StrCat("undecodable ", response->GetTypeName(), " from ", url));
    }
    return absl::OkStatus();
  }
  rpc::v1::ConnectError err;
  google::protobuf::util::JsonParseOptions jopts;
  jopts.ignore_unknown_fields = true;
  if (absl::StrContains(absl::AsciiStrToLower(resp->Header("content-type")), "json") &&
      google::protobuf::util::JsonStringToMessage(resp->body, &err, jopts).ok() &&
      !err.code().empty()) {
    absl::Status s(ConnectCodeFromName(err.code()), err.message());
    // The errno goes to the kernel as a FUSE reply, which takes only 1..511: the FUSE module
    // refuses any other value and leaves the file-system call waiting forever. A server's
    // answer outside that range is not an errno: the status code alone speaks (found by
    // fuzz/connect_error.cc).
    if (err.posix_errno() > 0 && err.posix_errno() < kMaxFuseErrno) {
      SetErrnoPayload(s, err.posix_errno());
    }
    return s;
  }
  std::string snippet = resp->body.substr(0, 200);
  absl::StripTrailingAsciiWhitespace(&snippet);
  return absl::Status(CodeFromHttp(resp->status),
                      absl::StrCat("HTTP ", resp->status, " from ", url, ": ", snippet));
}

absl::Status ConnectClient::Call(std::string_view path, const google::protobuf::Message& request,
                                 google::protobuf::Message* response) const {
  const std::string url = options_.base_url + std::string(path);
  std::string body;
  if (!request.SerializeToString(&body)) return absl::InternalError("cannot encode request");
  // Only transport-level failures and overload are retried: an answer from the server (ENOENT,
  // EEXIST...) is final. Internal (500) is not retried, so a server bug is not hammered.
  // A decoded error that carries an errno (ENOSPC, EAGAIN...) is the server's answer too.
  absl::Status answer;
  absl::Status s = RetryUntilDeadline(
      options_.retry,
      [&](absl::Time deadline) -> absl::Status {
        // retry.deadline bounds the whole call: an attempt never outlives it.
        const absl::Duration left = deadline - absl::Now();
        if (left <= absl::ZeroDuration()) {
          return absl::DeadlineExceededError(
              absl::StrCat(absl::string_view(path.data(), path.size()), ": out of time"));
        }
        const absl::Duration timeout = options_.call_timeout > absl::ZeroDuration()
                                           ? std::min(options_.call_timeout, left)
                                           : left;
        absl::Status s = CallOnce(url, body, timeout, response);
        if (s.code() == absl::StatusCode::kInternal && !HasErrnoPayload(s)) {
          return absl::Status(absl::StatusCode::kUnknown, s.message());
        }
        if (!s.ok() && HasErrnoPayload(s)) {
          answer = s;
          return absl::OkStatus();
        }
        return s;
      },
      [&](const absl::Status& s, int attempt) {
        // Debug only: the caller reports the final failure once; a warning per attempt turned
        // one unreachable server into a screenful (issue 10).
        NIGHFS_LOG(DEBUG) << "rpc " << path << " failed (attempt " << attempt
                          << "), retrying: " << s.message();
      });
  return s.ok() ? answer : s;
}

}  // namespace nighfs
