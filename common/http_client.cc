// PLACEHOLDER: being written (libcurl pool). Replaced wholesale by its owner.
#include "common/http_client.h"
namespace nighfs {
std::string HttpResponse::Header(std::string_view) const { return ""; }
std::unique_ptr<HttpClient> HttpClient::Create(const HttpClientOptions&) { return nullptr; }
}  // namespace nighfs
