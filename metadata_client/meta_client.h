// The mount's client of nighfs-meta over HTTP (Connect-style unary calls on pooled, kept-alive
// libcurl connections), retrying transport failures with backoff up to a deadline.
#ifndef NIGHFS_METADATA_CLIENT_META_CLIENT_H_
#define NIGHFS_METADATA_CLIENT_META_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/connect.h"
#include "metadata_client/meta_api.h"

namespace nighfs {

// The session key a mount got from Mount, sent with every later call (header
// Nighfs-Session, hex). Thread-safe: the mount sets it again when it re-registers.
class MetaSessionKey {
 public:
  void Set(std::string key) {
    absl::MutexLock lock(&mu_);
    key_ = std::move(key);
  }
  std::string Get() const {
    absl::MutexLock lock(&mu_);
    return key_;
  }

 private:
  mutable absl::Mutex mu_;
  std::string key_ ABSL_GUARDED_BY(mu_);
};

struct MetaClientOptions {
  // "https://host:port", "host:port" (the same: TLS unless said otherwise) or
  // "http://host:port" (plain HTTP, for a server started with --insecure-plaintext).
  std::string address;
  // PEM file of the CA(s) that signed the server's certificate; empty: the system store.
  // The server's chain and host name are always verified; a failure is final (not retried).
  std::string ca_file;
  // The admin token or a volume token, sent as "Authorization: Bearer ..."; empty for none
  // (the server then refuses every call).
  std::string bearer_token;
  // Set by the mount after Mount; null = no session header.
  std::shared_ptr<MetaSessionKey> session_key;
  // How long one operation keeps retrying an unreachable or silent server before failing
  // (EIO). A hard bound: every attempt is cut to the time left.
  absl::Duration op_timeout = absl::Seconds(60);
  // One attempt at most (less when op_timeout runs out first).
  absl::Duration call_timeout = absl::Seconds(30);
};

// Normalizes "host:port" to "https://host:port"; explicit http:// and https:// stay as given.
std::string NormalizeMetaAddress(std::string_view address);

absl::StatusOr<std::unique_ptr<MetaApi>> NewMetaClient(const MetaClientOptions& options);


}  // namespace nighfs

#endif  // NIGHFS_METADATA_CLIENT_META_CLIENT_H_
