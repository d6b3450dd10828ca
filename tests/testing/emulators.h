// Local emulators of the cloud object stores, for tests: s3rver (S3) and Azurite (Azure Blob),
// each a child process on a free 127.0.0.1 port, stopped by its destructor even when a test
// fails. Both come from scripts/setup.sh (NodeToolsDir()/node_modules/.bin).
//
// The accounts below are the emulators' built-in development accounts, published with them:
// they are not secrets, and tests may print them.
#ifndef NIGHFS_TESTS_TESTING_EMULATORS_H_
#define NIGHFS_TESTS_TESTING_EMULATORS_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/testing/process.h"

namespace nighfs::testing {

// s3rver's one account. s3rver checks that a request's access key id is known but does not
// verify Signature V4 (only V2), so any secret passes with kS3rverAccessKey; kS3rverSecret is
// the secret a verifying server would expect.
inline constexpr char kS3rverAccessKey[] = "S3RVER";
inline constexpr char kS3rverSecret[] = "S3RVER";
inline constexpr char kS3rverRegion[] = "us-east-1";

// Azurite's well-known development account (Shared Key, which Azurite does verify).
inline constexpr char kAzuriteAccount[] = "devstoreaccount1";
inline constexpr char kAzuriteKey[] =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

// The emulators' executables, or "" when they are not installed.
std::string S3rverBinary();
std::string AzuriteBinary();

// An s3rver process. Not thread-safe to start or stop; the server itself serves any number of
// concurrent clients.
class S3rver {
 public:
  // Starts s3rver with its objects and log in `dir`, which must exist and outlive the returned
  // object (declare the TempDir before the S3rver). s3rver runs with
  // tests/blockstore/s3rver_fixes.js preloaded, which makes two of its answers match S3 (listing
  // order, ranged GET of an empty object). No bucket exists until CreateBucket().
  // NotFound if s3rver is not installed; Unavailable if it does not come up.
  static absl::StatusOr<std::unique_ptr<S3rver>> Start(const std::string& dir);
  ~S3rver();
  S3rver(const S3rver&) = delete;
  S3rver& operator=(const S3rver&) = delete;

  // "http://127.0.0.1:PORT", the `endpoint=` of an s3:// store URL.
  std::string url() const;
  int port() const { return port_; }
  // Creates bucket `name` with a signed PUT Bucket; OK if this account already owns it.
  absl::Status CreateBucket(const std::string& name);
  // Stops the process (SIGTERM, then SIGKILL). Idempotent; the destructor calls it.
  absl::Status Stop();
  // Starts it again after Stop(), on the same port and with the same objects (they are kept
  // in `dir`): a store that went away and came back.
  absl::Status Restart();
  // The running process (nullptr after Stop()), e.g. to SIGSTOP/SIGCONT it.
  ChildProcess* process() { return process_.get(); }
  std::string log() const;

 private:
  S3rver() = default;
  absl::Status Launch();
  std::string dir_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

// An Azurite blob service, in memory (nothing persists across Start()s).
class Azurite {
 public:
  // Starts azurite-blob with its log in `dir`, which must exist and outlive the returned
  // object. No container exists until CreateContainer(). NotFound if Azurite is not installed;
  // Unavailable if it does not come up.
  static absl::StatusOr<std::unique_ptr<Azurite>> Start(const std::string& dir);
  ~Azurite();
  Azurite(const Azurite&) = delete;
  Azurite& operator=(const Azurite&) = delete;

  // "http://127.0.0.1:PORT/devstoreaccount1", the `endpoint=` of an azure:// store URL (Azurite
  // serves accounts path-style, below the origin).
  std::string endpoint() const;
  // "http://127.0.0.1:PORT".
  std::string origin() const;
  int port() const { return port_; }
  // Creates container `name` with a Shared Key signed request (Azurite verifies it); OK if it
  // already exists.
  absl::Status CreateContainer(const std::string& name);
  // Stops the process. Idempotent; the destructor calls it.
  absl::Status Stop();
  std::string log() const;

 private:
  Azurite() = default;
  std::string dir_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace nighfs::testing

#endif  // NIGHFS_TESTS_TESTING_EMULATORS_H_
