// One interface for every place a block can live: a local folder, S3 (and GCS/OCI through
// their S3-compatible APIs), Azure Blob, and later a proxy-group member. Blocks are immutable
// objects addressed by key; a key is written once and never overwritten.
#ifndef NIGHFS_BLOCKSTORE_BLOCK_STORE_H_
#define NIGHFS_BLOCKSTORE_BLOCK_STORE_H_

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nighfs::blockstore {

inline constexpr uint64_t kToEnd = std::numeric_limits<uint64_t>::max();

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
};

struct ListPage {
  std::vector<ObjectInfo> objects;  // ascending key order
  std::string next_token;           // empty when this is the last page
};

// All methods are safe to call concurrently from many threads. Keys are relative to the
// store's root (bucket prefix, folder) and consist of [A-Za-z0-9._/-].
class BlockStore {
 public:
  virtual ~BlockStore() = default;

  // Bytes [offset, offset + length) of `key`; fewer if the object ends first (length kToEnd
  // reads to the end). An offset at or past the end returns "". NotFound if there is no object.
  virtual absl::StatusOr<std::string> Get(std::string_view key, uint64_t offset = 0,
                                          uint64_t length = kToEnd) = 0;
  // Stores `data` under `key`. Atomic: a reader sees the whole object or NotFound.
  virtual absl::Status Put(std::string_view key, std::string_view data) = 0;
  // Put, and where the object now waits: the address ("HOST:PORT") of a proxy that
  // acknowledged it and may not have flushed it to the object store yet, or "" when the object
  // store itself has it. A writer records the address in the block map (Block.holder) so that a
  // reader going elsewhere can still find an unflushed block. Stores that write to the object
  // store directly keep this default.
  virtual absl::StatusOr<std::string> PutAndLocate(std::string_view key, std::string_view data) {
    if (absl::Status s = Put(key, data); !s.ok()) return s;
    return std::string();
  }
  // Removes `key`; OK if it was already gone.
  virtual absl::Status Delete(std::string_view key) = 0;
  // Size of `key`; NotFound if absent.
  virtual absl::StatusOr<ObjectInfo> Head(std::string_view key) = 0;
  // Up to `max_keys` objects whose keys start with `prefix`, after `page_token` ("" = first).
  // A page may hold fewer than `max_keys` objects even when more remain (S3 caps pages at
  // 1000): only an empty `next_token` means the listing is complete. `max_keys` must be >= 1.
  // The token is opaque to callers; pass it back unchanged with the same prefix.
  virtual absl::StatusOr<ListPage> List(std::string_view prefix, std::string_view page_token,
                                        int max_keys = 1000) = 0;
  // Cheap round trip proving the store is reachable, the container exists and the credentials
  // are accepted (used at mount and volume-creation time). A clear message when not.
  virtual absl::Status Check() = 0;
  // The store's URL without secrets, for logs and status output.
  virtual std::string Describe() const = 0;
};

// OK if `key` is a valid object key: 1 to 1024 characters from [A-Za-z0-9._/-], '/'-separated
// segments that are neither empty, "." nor "..", and no segment starting with ".nighfs-tmp"
// (reserved for a folder store's in-flight writes). InvalidArgument naming the problem
// otherwise. Every implementation checks keys with this before touching storage.
absl::Status ValidateKey(std::string_view key);

// The object key of block `id`: "blk/<low byte>/<16 hex digits>", spreading a folder store's
// files over 256 directories.
std::string BlockKey(uint64_t id);

// A parsed store URL: scheme://authority/path?k=v&k2=v2.
//   file:///srv/blocks                      authority "", path "/srv/blocks"
//   s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&style=path
//   gs://bucket/prefix     oci://namespace/bucket/prefix?region=...     azure://account/container/prefix?endpoint=...
struct StoreUrl {
  std::string scheme;
  std::string authority;
  std::string path;  // without the leading '/' for cloud stores; absolute for file://
  std::map<std::string, std::string> params;
  std::string Param(std::string_view name, std::string_view fallback = "") const;
  std::string ToString() const;
};
absl::StatusOr<StoreUrl> ParseStoreUrl(std::string_view url);

// Secrets for cloud stores. Never part of a URL, a log line or an error message.
struct StoreCredentials {
  std::string access_key_id;      // S3, GCS HMAC access id, OCI customer secret key id
  std::string secret_access_key;
  std::string session_token;      // optional (S3 temporary credentials)
  std::string azure_account_key;  // base64, Shared Key
  std::string azure_sas_token;    // a SAS query string (without '?'), alternative to the key
};

// Reads KEY=VALUE lines ('#' comments) from `path`: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN, AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN. The file must not be readable by
// group or others (like ssh keys): FailedPrecondition otherwise. Then the same names from the
// environment fill what the file left empty. `path` "" reads the environment only.
absl::StatusOr<StoreCredentials> LoadCredentials(const std::string& path);

// Opens the store a URL names. Schemes: file, s3, gs, oci, azure (and mem, an in-process store
// for tests). Does not contact the store: call Check() for that.
absl::StatusOr<std::unique_ptr<BlockStore>> OpenBlockStore(std::string_view url,
                                                           const StoreCredentials& credentials);

// Implementations, each in its own file.
absl::StatusOr<std::unique_ptr<BlockStore>> NewLocalStore(const StoreUrl& url);
absl::StatusOr<std::unique_ptr<BlockStore>> NewS3Store(const StoreUrl& url,
                                                       const StoreCredentials& credentials);
absl::StatusOr<std::unique_ptr<BlockStore>> NewAzureStore(const StoreUrl& url,
                                                          const StoreCredentials& credentials);
// A fresh, empty in-memory store ("mem://anonymous-<n>").
std::unique_ptr<BlockStore> NewMemoryStore();
// A fresh, empty in-memory store that describes itself as "mem://<name>". OpenBlockStore keeps
// one per name for the life of the process, so every open of mem://x shares the same data.
std::unique_ptr<BlockStore> NewMemoryStore(std::string_view name);

}  // namespace nighfs::blockstore

#endif  // NIGHFS_BLOCKSTORE_BLOCK_STORE_H_
