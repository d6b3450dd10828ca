// The BlockStore conformance suite: one set of TEST_P cases every implementation must pass
// (memory, local folder, S3 via s3rver, Azure via Azurite).
//
// To run it against a store, link `blockstore_conformance_lib` with link_whole (see
// tests/blockstore/meson.build) and instantiate it in your test file:
//
//   INSTANTIATE_TEST_SUITE_P(
//       S3, BlockStoreConformance,
//       ::testing::Values(StoreFactory{"s3rver", [] { return OpenMyTestStore(); }}),
//       StoreFactoryName);
//
// `make` is called once per test case and may return the same bucket every time: each case
// works below its own random key prefix, so cases never see each other's objects.
#ifndef NIGHFS_TESTS_BLOCKSTORE_CONFORMANCE_H_
#define NIGHFS_TESTS_BLOCKSTORE_CONFORMANCE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "blockstore/block_store.h"
#include "gtest/gtest.h"

namespace nighfs::blockstore::conformance {

struct StoreFactory {
  std::string name;  // shown in test names; non-identifier characters become '_'
  // A store ready for use (Check() passes). nullptr fails the case: print why before returning.
  std::function<std::unique_ptr<BlockStore>()> make;
  // Whether to run the 64 MiB case (slow against emulators on small machines).
  bool run_large = true;
};

// gtest parameter printing and test naming: "BlockStoreConformance.PutGet/local_folder".
void PrintTo(const StoreFactory& factory, std::ostream* os);
std::string StoreFactoryName(const ::testing::TestParamInfo<StoreFactory>& info);

class BlockStoreConformance : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override;

  // `suffix` below this case's private prefix.
  std::string Key(std::string_view suffix) const;

  std::unique_ptr<BlockStore> store_;
  std::string prefix_;  // "conformance/<case>-<random>/"
};

// Helpers for store-specific tests (retries against a server injecting 503s, dropped
// connections, rejected credentials...). They report through gtest, so wrap calls in
// ASSERT_NO_FATAL_FAILURE(...) when later steps depend on them.

// `size` bytes that differ for different seeds and at every position (not a repeated pattern
// that would hide an offset bug).
std::string TestData(size_t size, uint64_t seed);

// A fresh key prefix ("conformance/<test name>-<16 hex>/") for sharing one bucket between
// test cases and runs.
std::string UniqueTestPrefix();

// Calls body(0) ... body(threads - 1), each on its own thread, and joins them all.
void RunConcurrently(int threads, const std::function<void(int)>& body);

// Put, Head, full and ranged Get, List and Delete of `size` bytes at `key`, checking every
// result byte for byte. Run it while the server misbehaves to prove the store's retries hide
// transient failures (503, a dropped connection) from callers.
void ExpectRoundTrip(BlockStore& store, const std::string& key, size_t size);

// Every operation (Get, Put, Delete, Head, List, Check) against `store` fails with `code`
// (e.g. PermissionDenied for rejected credentials, Unavailable for a dead endpoint), and no
// error message contains any of `secrets`.
void ExpectEveryOpFails(BlockStore& store, absl::StatusCode code, const std::string& key,
                        const std::vector<std::string>& secrets = {});

}  // namespace nighfs::blockstore::conformance

#endif  // NIGHFS_TESTS_BLOCKSTORE_CONFORMANCE_H_
