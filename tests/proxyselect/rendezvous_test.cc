#include "proxyselect/rendezvous.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "blockstore/block_store.h"
#include "gtest/gtest.h"

namespace nighfs::proxyselect {
namespace {

constexpr int kIds = 100000;

std::vector<uint64_t> Hashes(int n, int first = 0) {
  std::vector<uint64_t> h;
  for (int i = first; i < first + n; ++i) h.push_back(MemberHash(absl::StrCat("proxy", i, ":7430")));
  return h;
}

// The block ids a mount really hashes: FNV of the block keys of sequential block ids.
uint64_t Id(int i) { return KeyId(blockstore::BlockKey(static_cast<uint64_t>(i))); }

int Home(const std::vector<uint64_t>& hashes, uint64_t id) {
  return RendezvousHome(hashes, id, [](size_t) { return true; });
}

// The weights are a contract between mounts (and versions): pin them.
TEST(RendezvousTest, HashesAreTheDocumentedOnes) {
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ULL);
  EXPECT_EQ(Mix64(0), 0u);
  // Written out from the definition in rendezvous.h, independently of the helpers.
  const uint64_t member = Fnv1a64("p1:7430");
  const uint64_t id = Fnv1a64("blk/2a/000000000000002a");
  uint64_t z = id + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdULL;
  z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ULL;
  z ^= z >> 33;
  uint64_t w = member ^ z;
  w = (w ^ (w >> 33)) * 0xff51afd7ed558ccdULL;
  w = (w ^ (w >> 33)) * 0xc4ceb9fe1a85ec53ULL;
  w ^= w >> 33;
  EXPECT_EQ(RendezvousWeight(MemberHash("p1:7430"), KeyId("blk/2a/000000000000002a")), w);
}

TEST(RendezvousTest, OrderStartsWithHomeAndListsEveryMemberOnce) {
  const std::vector<uint64_t> h = Hashes(7);
  for (int i = 0; i < 1000; ++i) {
    const std::vector<size_t> order = RendezvousOrder(h, Id(i));
    ASSERT_EQ(order.size(), h.size());
    EXPECT_EQ(static_cast<int>(order[0]), Home(h, Id(i)));
    std::vector<size_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    for (size_t k = 0; k < sorted.size(); ++k) EXPECT_EQ(sorted[k], k);
    for (size_t k = 1; k < order.size(); ++k) {
      EXPECT_GT(RendezvousWeight(h[order[k - 1]], Id(i)), RendezvousWeight(h[order[k]], Id(i)));
    }
  }
}

TEST(RendezvousTest, SpreadIsEvenWithinAFewPercent) {
  for (int n : {2, 3, 5, 8, 16}) {
    const std::vector<uint64_t> h = Hashes(n);
    std::vector<int> count(n);
    for (int i = 0; i < kIds; ++i) ++count[Home(h, Id(i))];
    const double even = static_cast<double>(kIds) / n;
    for (int m = 0; m < n; ++m) {
      EXPECT_NEAR(count[m] / even, 1.0, 0.05) << "member " << m << " of " << n;
    }
  }
}

TEST(RendezvousTest, RemovingAMemberMovesOnlyItsShareToTheNextHighest) {
  for (int n : {3, 5, 8}) {
    const std::vector<uint64_t> h = Hashes(n);
    for (int gone = 0; gone < n; ++gone) {
      int moved = 0;
      for (int i = 0; i < kIds; ++i) {
        const uint64_t id = Id(i);
        const std::vector<size_t> order = RendezvousOrder(h, id);
        const int after = RendezvousHome(h, id, [&](size_t k) { return static_cast<int>(k) != gone; });
        if (static_cast<int>(order[0]) == gone) {
          ++moved;
          ASSERT_EQ(after, static_cast<int>(order[1])) << "to the next-highest member";
        } else {
          ASSERT_EQ(after, static_cast<int>(order[0])) << "a block of another member moved";
        }
      }
      EXPECT_NEAR(static_cast<double>(moved) / kIds, 1.0 / n, 0.05 / n) << n << " members";
    }
  }
}

TEST(RendezvousTest, AddingAMemberTakesOnlyItsShare) {
  for (int n : {2, 4, 7}) {
    const std::vector<uint64_t> before = Hashes(n);
    std::vector<uint64_t> after = before;
    after.push_back(MemberHash("newcomer.example:7430"));
    int moved = 0;
    for (int i = 0; i < kIds; ++i) {
      const int a = Home(before, Id(i));
      const int b = Home(after, Id(i));
      if (a != b) {
        ++moved;
        ASSERT_EQ(b, n) << "a block moved between two old members";
      }
    }
    EXPECT_NEAR(static_cast<double>(moved) / kIds, 1.0 / (n + 1), 0.05 / (n + 1));
  }
}

TEST(RendezvousTest, MemberOrderInTheConfigurationDoesNotMatter) {
  std::vector<uint64_t> h = Hashes(5);
  std::vector<uint64_t> reversed(h.rbegin(), h.rend());
  for (int i = 0; i < 10000; ++i) {
    EXPECT_EQ(h[Home(h, Id(i))], reversed[Home(reversed, Id(i))]);
  }
}

TEST(RendezvousTest, NoEligibleMemberIsMinusOne) {
  EXPECT_EQ(RendezvousHome(Hashes(3), 42, [](size_t) { return false; }), -1);
  EXPECT_EQ(RendezvousHome({}, 42, [](size_t) { return true; }), -1);
}

}  // namespace
}  // namespace nighfs::proxyselect
