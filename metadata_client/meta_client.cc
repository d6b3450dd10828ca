#include "metadata_client/meta_client.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace nighfs {

std::string MetaMethodPath(std::string_view method) {
  return "/nighfs.meta.v1.MetaService/" + std::string(method);
}

std::string NormalizeMetaAddress(std::string_view address) {
  if (address.starts_with("http://") || address.starts_with("https://")) {
    return std::string(address);
  }
  return "http://" + std::string(address);
}

namespace {

class HttpMetaClient : public MetaApi {
 public:
  HttpMetaClient(std::unique_ptr<HttpClient> http, ConnectClientOptions options)
      : http_(std::move(http)), rpc_(http_.get(), std::move(options)) {}

#define NIGHFS_DEFINE_META_CALL(M, Req, Resp)                                  \
  absl::StatusOr<pb::Resp> M(const pb::Req& request) override {                \
    static const std::string path = MetaMethodPath(#M);                        \
    pb::Resp response;                                                         \
    absl::Status s = rpc_.Call(path, request, &response);                      \
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
  std::unique_ptr<HttpClient> http = HttpClient::Create(hopts);
  ConnectClientOptions copts;
  copts.base_url = NormalizeMetaAddress(options.address);
  copts.bearer_token = options.bearer_token;
  copts.call_timeout = options.call_timeout;
  copts.retry.max_attempts = 0;
  copts.retry.deadline = options.op_timeout;
  copts.retry.max_backoff = absl::Seconds(2);
  return std::make_unique<HttpMetaClient>(std::move(http), std::move(copts));
}

void RegisterMetaService(MetaApi* api, ConnectRouter* router) {
#define NIGHFS_REGISTER_META_CALL(M, Req, Resp)                                      \
  router->Add<pb::Req, pb::Resp>(MetaMethodPath(#M),                                 \
                                 [api](const pb::Req& r) { return api->M(r); });
  NIGHFS_META_METHODS(NIGHFS_REGISTER_META_CALL)
#undef NIGHFS_REGISTER_META_CALL
}

}  // namespace nighfs
