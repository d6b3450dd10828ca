// Azure Blob Storage as a BlockStore, with the knobs NewAzureStore(url, credentials) leaves at
// their defaults (retry policy and HTTP timeouts), for tests and tuning.
//
// URL: azure://<account>/<container>[/<prefix>][?endpoint=<url>]
//   endpoint defaults to https://<account>.blob.core.windows.net. An emulator endpoint names
//   the account in its path, e.g. endpoint=http://127.0.0.1:10000/devstoreaccount1.
// Credentials: azure_account_key (Shared Key) or, if no key is set, azure_sas_token.
#ifndef NIGHFS_BLOCKSTORE_AZURE_STORE_H_
#define NIGHFS_BLOCKSTORE_AZURE_STORE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "blockstore/block_store.h"
#include "common/http_client.h"
#include "common/retry.h"

namespace nighfs::blockstore {

// The x-ms-version every request carries.
inline constexpr char kAzureApiVersion[] = "2021-08-06";

struct AzureStoreOptions {
  // Applied to each operation; 5xx, 429, timeouts and dropped connections are retried,
  // authorization and other client errors are not.
  RetryPolicy retry;
  HttpClientOptions http;
};

// Each store owns one HttpClient (one connection pool). The store is safe for concurrent use.
absl::StatusOr<std::unique_ptr<BlockStore>> NewAzureStore(const StoreUrl& url,
                                                          const StoreCredentials& credentials,
                                                          const AzureStoreOptions& options);

}  // namespace nighfs::blockstore

#endif  // NIGHFS_BLOCKSTORE_AZURE_STORE_H_
