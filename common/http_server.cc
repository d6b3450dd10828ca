// PLACEHOLDER: being written (Boost.Beast). Replaced wholesale by its owner.
#include "common/http_server.h"
namespace nighfs {
std::string ServerRequest::Header(std::string_view) const { return ""; }
absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions&, HttpHandler) {
  return absl::UnimplementedError("http server not built yet");
}
}  // namespace nighfs
