#include "blockstore/http_store_util.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "blockstore/call_deadline.h"
#include "common/logging.h"

namespace nighfs::blockstore {
namespace {

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// `s` with every occurrence of `secret` replaced; payloads kept.
absl::Status Redact(absl::Status s, std::string_view secret) {
  if (s.ok() || secret.empty() || !absl::StrContains(s.message(), AV(secret))) return s;
  absl::Status out(s.code(), absl::StrReplaceAll(s.message(), {{AV(secret), "<redacted>"}}));
  s.ForEachPayload([&](absl::string_view url, const absl::Cord& p) { out.SetPayload(url, p); });
  return out;
}

}  // namespace

std::string PercentEncode(std::string_view s, Slash slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  for (unsigned char c : s) {
    if (IsUnreserved(c) || (c == '/' && slash == Slash::kKeep)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

std::string CollapseWhitespace(std::string_view value, std::string_view whitespace) {
  std::string out;
  out.reserve(value.size());
  bool pending_space = false;
  for (char c : value) {
    if (whitespace.find(c) != std::string_view::npos) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

std::string ByteRangeHeader(uint64_t offset, uint64_t length) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();  // BlockStore's kToEnd
  if (offset == 0 && length == kMax) return "";
  std::string range = absl::StrCat("bytes=", offset, "-");
  // Closed only when the last byte wanted, offset + length - 1, is itself representable.
  if (length != kMax && length - 1 <= kMax - offset) absl::StrAppend(&range, offset + length - 1);
  return range;
}

absl::StatusOr<std::string> ZeroLengthRead(BlockStore& store, std::string_view key) {
  absl::StatusOr<ObjectInfo> info = store.Head(key);
  if (!info.ok()) return info.status();
  return std::string();
}

absl::StatusCode CodeForHttpStatus(int status) {
  if (status >= 500 || status == 429) return absl::StatusCode::kUnavailable;
  switch (status) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
    case 412:
      return absl::StatusCode::kFailedPrecondition;
    default:
      return absl::StatusCode::kUnknown;
  }
}

std::string FormatHttpError(const HttpStoreOp& op, int status, const ServiceError& error,
                            std::string_view hint) {
  std::string msg =
      absl::StrCat(AV(op.store), " ", AV(op.method), " ", AV(op.what), ": ", status);
  if (!error.code.empty()) absl::StrAppend(&msg, " ", error.code);
  if (!error.message.empty()) absl::StrAppend(&msg, ": ", error.message);
  if (!hint.empty()) absl::StrAppend(&msg, " (", AV(hint), ")");
  if (!error.request_id.empty()) absl::StrAppend(&msg, " (request id ", error.request_id, ")");
  return msg;
}

absl::Status TransportError(const HttpStoreOp& op, const absl::Status& failure) {
  return absl::Status(failure.code(), absl::StrCat(AV(op.store), " ", AV(op.method), " ",
                                                   AV(op.what), ": ", failure.message()));
}

absl::Status SendWithRetries(HttpClient& http, const RetryPolicy& policy, const HttpStoreOp& op,
                             const std::function<HttpRequest()>& make_request,
                             const std::function<absl::Status(HttpResponse&)>& on_response,
                             std::string_view secret) {
  // The caller's deadline (call_deadline.h) bounds the retries and each attempt's timeout;
  // without one the policy alone decides, as before.
  const absl::Time call_deadline = CallDeadline();
  RetryPolicy bounded = policy;
  if (call_deadline != absl::InfiniteFuture()) {
    const absl::Duration left = call_deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat(AV(op.store), " ", AV(op.method), " ", AV(op.what),
                                                      ": the call's deadline passed before it was sent"));
    }
    bounded.deadline = std::min(bounded.deadline, left);
  }
  absl::Status s = RetryUntilDeadline(
      bounded,
      [&](absl::Time give_up) -> absl::Status {
        HttpRequest request = make_request();
        if (call_deadline != absl::InfiniteFuture()) {
          const absl::Duration left = give_up - absl::Now();
          if (left <= absl::ZeroDuration()) {
            return absl::DeadlineExceededError(absl::StrCat(
                AV(op.store), " ", AV(op.method), " ", AV(op.what), ": the call's deadline passed"));
          }
          request.timeout = request.timeout > absl::ZeroDuration()
                                ? std::min(request.timeout, left)
                                : left;
        }
        absl::StatusOr<HttpResponse> r = http.Do(request);
        if (!r.ok()) return TransportError(op, r.status());
        return on_response(*r);
      },
      [&](const absl::Status& failure, int attempt) {
        NIGHFS_LOG(INFO) << "retrying after attempt " << attempt << ": "
                         << Redact(failure, secret);
      });
  return Redact(std::move(s), secret);
}

}  // namespace nighfs::blockstore
