// A BlockStore that reaches a volume's blocks through one nighfs-proxy (issue 12), over the
// proxy's S3-shaped block API: `/{volume}/{key}` with `Authorization: Bearer <volume token>`,
// PUT bodies carrying `x-amz-checksum-crc32c`, GET with Range, HEAD, DELETE, and `GET /ping`
// for round-trip times. One ProxyStore per proxy address; ProxyStores keeps one per address for
// a mount (the holder of an unflushed block; later every member of a proxy group).
//
// Requests go over a pool of kept-alive connections (common/http_client.h). 5xx, 429 (503
// SlowDown is the proxy's back-pressure when its dirty data is at quota) and transport failures
// are retried with backoff (common/retry.h); 401/403 are PermissionDenied, 404 NotFound, 400
// BadDigest DataLoss, and other 4xx fail at once.
#ifndef NIGHFS_BLOCKSTORE_PROXY_STORE_H_
#define NIGHFS_BLOCKSTORE_PROXY_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "blockstore/block_store.h"
#include "common/retry.h"

namespace nighfs::blockstore {

// The header a PUT carries (and its reply echoes): base64 of the big-endian CRC32C, as S3 does.
inline constexpr char kChecksumCrc32cHeader[] = "x-amz-checksum-crc32c";
// The PUT reply header naming the proxy that holds the acknowledged block (its --advertise).
inline constexpr char kHolderHeader[] = "x-nighfs-holder";

// The value of kChecksumCrc32cHeader for a CRC32C: base64 of its 4 big-endian bytes.
std::string Crc32cHeaderValue(uint32_t crc32c);
// The CRC32C a kChecksumCrc32cHeader value encodes; nullopt if it is not base64 of 4 bytes.
std::optional<uint32_t> ParseCrc32cHeader(std::string_view value);

// A proxy address as users write it, normalized to the URL requests go to: "HOST:PORT" and
// "https://HOST:PORT" -> "https://HOST:PORT", "http://HOST:PORT" stays, "HOST" gets the
// default port 7430. InvalidArgument, naming the problem, for anything with a path, user info,
// another scheme or a bad port.
absl::StatusOr<std::string> NormalizeProxyAddress(std::string_view address);

struct ProxyStoreOptions {
  // "HOST:PORT" (https), "https://HOST:PORT" or "http://HOST:PORT" (plain text).
  std::string address;
  // The volume NAME: the first segment of every block URL.
  std::string volume;
  // The bearer secret sent with every block request (a volume token, or the admin token).
  // Never logged, never part of a message.
  std::string token;
  // PEM file to verify the proxy's certificate with; "" = the system store.
  std::string ca_file;
  // Block requests: attempts and backoff for retryable failures (503 SlowDown, 5xx,
  // transport). Bounded by time, not attempts: a proxy at its dirty quota answers SlowDown
  // until its flush catches up, and a writer should wait that out rather than fail a close.
  // A `Retry-After` of the proxy (at most max_backoff) is waited before the next attempt, so
  // a block body is not sent again sooner than the proxy asked.
  RetryPolicy retry = {.max_attempts = 0,
                       .initial_backoff = absl::Milliseconds(100),
                       .max_backoff = absl::Seconds(2),
                       .deadline = absl::Seconds(30)};
  // One attempt of a block request at most.
  absl::Duration request_timeout = absl::Seconds(30);
  absl::Duration connect_timeout = absl::Seconds(5);
  // One GET /ping at most (no retries: a lost ping is a measurement).
  absl::Duration ping_timeout = absl::Seconds(2);
};

// Thread-safe.
class ProxyStore : public BlockStore {
 public:
  // Does not contact the proxy (Check() and Ping() do). InvalidArgument for a bad address or
  // an empty volume name.
  static absl::StatusOr<std::unique_ptr<ProxyStore>> Create(const ProxyStoreOptions& options);

  // The normalized address: "https://HOST:PORT" or "http://HOST:PORT".
  virtual const std::string& url() const = 0;
  // One `GET /ping` (no auth; the proxy touches neither disk nor store) on a kept-alive
  // connection of its own, so its time is a round trip, not a handshake or a wait behind
  // block transfers; its round-trip time. At most one ping is in flight: a call while another
  // runs returns Unavailable at once (a ping still unanswered is itself the measurement).
  // A ping that opened the connection reports its time without the TCP/TLS handshake.
  virtual absl::StatusOr<absl::Duration> Ping() = 0;

  // Get: `Range` for a part. Put: as PutAndLocate, the holder dropped. PutAndLocate: the
  // proxy's `x-nighfs-holder` reply header, "" when the reply has none (the proxy wrote the
  // block through to the store before answering). List: Unimplemented (a proxy serves blocks
  // by key; list the object store itself). Check: `GET /ping`, then one authenticated HEAD
  // of a block key that never exists: 404 = the token is accepted for the volume; 401/403
  // PermissionDenied; a 5xx (the store behind the proxy is down) passes with a warning, since
  // the proxy accepts and holds writes until the store is back.
  // Describe: "proxy https://HOST:PORT" (no token).
};

// One ProxyStore per address, all made with the same volume, token, CA and policies, kept for
// the life of this object (their connection pools with them). Thread-safe.
class ProxyStores {
 public:
  // `base.address` is ignored: each store gets the address it is asked for.
  explicit ProxyStores(ProxyStoreOptions base) : base_(std::move(base)) {}
  ProxyStores(const ProxyStores&) = delete;
  ProxyStores& operator=(const ProxyStores&) = delete;

  // The store for `address`, made on first use. The pointer stays valid while this lives.
  absl::StatusOr<ProxyStore*> For(std::string_view address);

 private:
  const ProxyStoreOptions base_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<ProxyStore>> stores_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nighfs::blockstore

#endif  // NIGHFS_BLOCKSTORE_PROXY_STORE_H_
