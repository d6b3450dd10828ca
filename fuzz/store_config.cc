// Fuzz target: the configuration text the daemons read: store URLs (blockstore::ParseStoreUrl,
// then the S3/GCS/OCI and Azure stores' own reading of a URL, without contacting anything),
// credentials files (blockstore::LoadCredentials) and sizes (tools::ParseSize). A store URL
// comes from whoever calls CreateVolume and is read again by every mount. The first input byte
// picks what the rest is:
//   0 mod 3: a store URL (bit 7 of that byte: open it with credentials, else without)
//   1 mod 3: a size ("4M", "64KiB")
//   2 mod 3: the contents of a credentials file
//
// Checks beyond the sanitizers: a parsed URL written back (StoreUrl::ToString) parses to the
// same URL, and a store's Describe() is a URL ParseStoreUrl accepts; a parsed size printed in
// decimal parses to the same value; an error about a credentials file says which line is
// wrong and nothing else (never a value from it).
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "blockstore/block_store.h"
#include "common/logging.h"
#include "fuzz/fuzz_util.h"
#include "tools/size.h"

namespace nighfs::fuzz {
namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "store_config: %s\n", what.c_str());
  std::abort();
}

bool SameUrl(const blockstore::StoreUrl& a, const blockstore::StoreUrl& b) {
  return a.scheme == b.scheme && a.authority == b.authority && a.path == b.path &&
         a.params == b.params;
}

void CheckStoreUrl(std::string_view text, bool with_credentials) {
  absl::StatusOr<blockstore::StoreUrl> url = blockstore::ParseStoreUrl(text);
  if (!url.ok()) return;
  const std::string written = url->ToString();
  absl::StatusOr<blockstore::StoreUrl> again = blockstore::ParseStoreUrl(written);
  if (!again.ok() || !SameUrl(*url, *again)) {
    Fail(absl::StrCat("'", std::string(text), "' was written back as '", written,
                      "', which reads as something else: ",
                      again.ok() ? again->ToString() : again.status().ToString()));
  }
  blockstore::StoreCredentials creds;
  if (with_credentials) {
    creds.access_key_id = "AKIDEXAMPLE";
    creds.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    creds.azure_account_key = "a2V5";
  }
  absl::StatusOr<std::unique_ptr<blockstore::BlockStore>> store;
  if (url->scheme == "s3" || url->scheme == "gs" || url->scheme == "oci") {
    store = blockstore::NewS3Store(*url, creds);
  } else if (url->scheme == "azure") {
    store = blockstore::NewAzureStore(*url, creds);
  } else {
    return;  // file:// would create its folder; mem:// has nothing more to read
  }
  if (!store.ok()) return;
  const std::string described = (*store)->Describe();
  if (absl::StatusOr<blockstore::StoreUrl> d = blockstore::ParseStoreUrl(described); !d.ok()) {
    Fail(absl::StrCat("'", std::string(text), "' opens a store described as '", described,
                      "', which is not a store URL: ", d.status().ToString()));
  }
}

void CheckSize(std::string_view text) {
  absl::StatusOr<uint64_t> size = tools::ParseSize(text);
  if (!size.ok()) return;
  (void)tools::FormatBytes(*size);
  absl::StatusOr<uint64_t> again = tools::ParseSize(absl::StrCat(*size));
  if (!again.ok() || *again != *size) {
    Fail(absl::StrCat("size '", std::string(text), "' = ", *size, " does not read back"));
  }
}

void CheckCredentials(std::string_view content) {
  const std::string path = ScratchDir() + "/credentials";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || ::write(fd, content.data(), content.size()) !=
                    static_cast<ssize_t>(content.size())) {
    Fail("cannot write " + path);
  }
  ::close(fd);
  absl::StatusOr<blockstore::StoreCredentials> creds = blockstore::LoadCredentials(path);
  if (creds.ok()) return;
  // The only error a small file can give is a line without '=', and its message names the
  // file and the line and nothing else: then no value of the file can be in it. (Checking
  // for the values themselves does not work: the fuzzer learns the message's own words.)
  absl::string_view message = creds.status().message();
  int line = 0;
  if (!absl::ConsumePrefix(&message, absl::StrCat("credentials file '", path, "' line ")) ||
      !absl::ConsumeSuffix(&message, ": expected KEY=VALUE") ||
      !absl::SimpleAtoi(message, &line) || line < 1) {
    Fail(absl::StrCat("unexpected error for a credentials file: ",
                      creds.status().ToString()));
  }
}

}  // namespace
}  // namespace nighfs::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nighfs::fuzz;  // NOLINT
  static const bool init = [] {
    nighfs::SetLogLevel(nighfs::LogLevel::ERROR);
    // Credentials come from the input only.
    for (const char* name : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                             "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"}) {
      ::unsetenv(name);
    }
    return true;
  }();
  (void)init;
  InputReader in(data, size);
  const uint8_t pick = in.Byte();
  const std::string_view rest = in.Rest();
  switch (pick % 3) {
    case 0: CheckStoreUrl(rest, (pick & 0x80) != 0); break;
    case 1: CheckSize(rest); break;
    case 2: CheckCredentials(rest); break;
  }
  return 0;
}
