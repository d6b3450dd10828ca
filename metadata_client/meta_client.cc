#include "metadata_client/meta_client.h"

#include <cstdint>
#include <cstring>

#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace nighfs {

std::string MetaMethodPath(std::string_view method) {
  return "/nighfs.meta.v1.MetaService/" + std::string(method);
}

std::string NormalizeMetaAddress(std::string_view address) {
  if (address.starts_with("http://") || address.starts_with("https://")) {
    return std::string(address);
  }
  return "https://" + std::string(address);
}

namespace {

// Exactly-once (proto/meta.proto): a request with an empty `request_id` field gets 16 random
// bytes, chosen once per call before the retry loop, so every retry of it carries the same id
// and the server answers a retry of an applied mutation with the recorded reply. Returns
// `request` itself when it has no such field or its caller chose an id already.
const google::protobuf::Message& WithRequestId(
    const google::protobuf::Message& request,
    std::unique_ptr<google::protobuf::Message>* copy) {
  const google::protobuf::FieldDescriptor* field =
      request.GetDescriptor()->FindFieldByName("request_id");
  if (field == nullptr || field->is_repeated() ||
      field->type() != google::protobuf::FieldDescriptor::TYPE_BYTES) {
    return request;
  }
  const google::protobuf::Reflection* reflection = request.GetReflection();
  if (!reflection->GetString(request, field).empty()) return request;
  thread_local absl::BitGen gen;
  char id[16];
  for (int i = 0; i < 2; ++i) {
    const uint64_t word = absl::Uniform<uint64_t>(gen);
    std::memcpy(id + 8 * i, &word, sizeof(word));
  }
  copy->reset(request.New());
  (*copy)->CopyFrom(request);
  reflection->SetString(copy->get(), field, std::string(id, sizeof(id)));
  return **copy;
}

class HttpMetaClient : public MetaApi {
 public:
  HttpMetaClient(std::unique_ptr<HttpClient> http, ConnectClientOptions options)
      : http_(std::move(http)), rpc_(http_.get(), std::move(options)) {}

#define NIGHFS_DEFINE_META_CALL(M, Req, Resp)                                  \
  absl::StatusOr<pb::Resp> M(const pb::Req& request) override {                \
    static const std::string path = MetaMethodPath(#M);                        \
    pb::Resp response;                                                         \
    std::unique_ptr<google::protobuf::Message> with_id;                        \
    absl::Status s = rpc_.Call(path, WithRequestId(request, &with_id), &response); \
    if (!s.ok()) return s;                                                     \
    return response;                                                           \
  }
  NIGHFS_META_METHODS(NIGHFS_DEFINE_META_CALL)
#undef NIGHFS_DEFINE_META_CALL

 private:
  std::unique_ptr<HttpClient> http_;
  ConnectClient rpc_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MetaApi>> NewMetaClient(const MetaClientOptions& options) {
  if (options.address.empty()) return absl::InvalidArgumentError("no metadata server address");
  HttpClientOptions hopts;
  hopts.default_timeout = options.call_timeout;
  hopts.ca_file = options.ca_file;
  std::unique_ptr<HttpClient> http = HttpClient::Create(hopts);
  ConnectClientOptions copts;
  copts.base_url = NormalizeMetaAddress(options.address);
  copts.bearer_token = options.bearer_token;
  if (options.session_key != nullptr) {
    copts.add_headers = [key = options.session_key](HttpHeaders* headers) {
      const std::string k = key->Get();
      if (!k.empty()) headers->push_back({"Nighfs-Session", absl::BytesToHexString(k)});
    };
  }
  copts.call_timeout = options.call_timeout;
  copts.retry.max_attempts = 0;
  copts.retry.deadline = options.op_timeout;
  copts.retry.max_backoff = absl::Seconds(2);
  return std::make_unique<HttpMetaClient>(std::move(http), std::move(copts));
}

}  // namespace nighfs
