// Fuzz target: how a client (the mount, the nighfs CLI) reads a metadata server's reply:
// ConnectClient::Call (common/connect.h) over an HttpClient that returns the fuzzer's reply
// instead of going to the network. The input is
//   [u8 status pick][u8 content-type pick][body...]
// A 200 body must decode as the response message; any other status is read as a Connect error
// (JSON ConnectError {"code", "message", "errno"}) or, failing that, mapped from the HTTP status.
//
// Checks beyond the sanitizers: a call never succeeds on a non-200 reply; an errno taken from a
// reply is one the mount can hand to the kernel (1..511; the FUSE kernel module rejects others
// and leaves the file-system call waiting forever); a JSON error with a known code keeps it.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/connect.h"
#include "common/errno_status.h"
#include "common/logging.h"
#include "fuzz/fuzz_util.h"
#include "meta.pb.h"

namespace nighfs::fuzz {
namespace {

constexpr int kStatuses[] = {200, 400, 401, 403, 404, 405, 408, 409, 413, 415, 429,
                             499, 500, 501, 502, 503, 504, 301, 204, 418};
constexpr const char* kContentTypes[] = {"application/json", "application/proto",
                                         "text/plain", "application/json; charset=utf-8",
                                         "APPLICATION/JSON", ""};

// Returns the reply it was given, once per call.
class CannedHttpClient : public HttpClient {
 public:
  explicit CannedHttpClient(HttpResponse reply) : reply_(std::move(reply)) {}
  absl::StatusOr<HttpResponse> Do(const HttpRequest&) override { return reply_; }

 private:
  HttpResponse reply_;
};

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "connect_error: %s\n", what.c_str());
  std::abort();
}

}  // namespace
}  // namespace nighfs::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nighfs::fuzz;  // NOLINT
  static const bool quiet = [] {
    nighfs::SetLogLevel(nighfs::LogLevel::ERROR);
    return true;
  }();
  (void)quiet;
  InputReader in(data, size);
  nighfs::HttpResponse reply;
  reply.status = kStatuses[in.Byte() % std::size(kStatuses)];
  const char* content_type = kContentTypes[in.Byte() % std::size(kContentTypes)];
  if (*content_type != '\0') reply.headers.push_back({"Content-Type", content_type});
  reply.body = std::string(in.Rest());

  CannedHttpClient http(reply);
  nighfs::ConnectClientOptions options;
  options.base_url = "http://meta.invalid:7420/";
  options.retry.max_attempts = 1;  // one reply per input: no retries, no backoff sleeps
  options.retry.deadline = absl::Seconds(30);
  nighfs::ConnectClient client(&http, options);
  nighfs::meta::v1::LookupRequest request;
  request.set_volume_id(1);
  request.set_parent(1);
  request.set_name("f");
  nighfs::meta::v1::EntryResponse response;
  const absl::Status s =
      client.Call("/nighfs.meta.v1.MetaService/Lookup", request, &response);
  const std::string what = absl::StrCat("HTTP ", reply.status, " '", content_type, "' ",
                                        reply.body.substr(0, 200), " -> ", s.ToString());
  if (s.ok() && reply.status != 200) Fail("a non-200 reply was taken for success: " + what);
  if (nighfs::HasErrnoPayload(s)) {
    const int err = nighfs::StatusToErrno(s);
    if (err < 1 || err > 511) Fail(absl::StrCat("errno ", err, " from the wire: ", what));
  }
  return 0;
}
