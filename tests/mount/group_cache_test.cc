// The cache of callers' supplementary groups (mount/group_cache.h).
#include "mount/group_cache.h"

#include <unistd.h>

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace nighfs::fs {
namespace {

TEST(GroupCache, ParsesTheGroupsLineOfAStatusText) {
  EXPECT_EQ(ParseStatusGroups("Name:\tx\nUid:\t0 0 0 0\nGroups:\t4 24 1000 \nNgid:\t0\n"),
            (std::vector<uint32_t>{4, 24, 1000}));
  EXPECT_TRUE(ParseStatusGroups("Name:\tx\nGroups:\t\n").empty());
  EXPECT_TRUE(ParseStatusGroups("Name:\tx\n").empty());
  // A status text longer than a page, with more groups than are sent: the first ones.
  std::string big = std::string(5000, 'x') + "\nGroups:";
  for (int g = 0; g < 2 * kMaxCallerGroups; ++g) big += " " + std::to_string(g);
  std::vector<uint32_t> got = ParseStatusGroups(big);
  ASSERT_EQ(got.size(), static_cast<size_t>(kMaxCallerGroups));
  EXPECT_EQ(got.back(), static_cast<uint32_t>(kMaxCallerGroups - 1));
  // This process: what getgroups(2) says.
  std::vector<gid_t> mine(::getgroups(0, nullptr));
  mine.resize(::getgroups(static_cast<int>(mine.size()), mine.data()));
  EXPECT_EQ(ReadProcessGroups(::getpid()), std::vector<uint32_t>(mine.begin(), mine.end()));
  EXPECT_TRUE(ReadProcessGroups(-1).empty());
}

TEST(GroupCache, FetchesOncePerProcessWhileFresh) {
  GroupCache cache(absl::Seconds(1), 2);
  int fetches = 0;
  auto fetch = [&] {
    ++fetches;
    return std::vector<uint32_t>{10, static_cast<uint32_t>(fetches)};
  };
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  EXPECT_EQ(cache.Get(5, 1000, 1000, fetch, t0), (std::vector<uint32_t>{10, 1}));
  EXPECT_EQ(cache.Get(5, 1000, 1000, fetch, t0 + absl::Milliseconds(900)),
            (std::vector<uint32_t>{10, 1}));
  EXPECT_EQ(fetches, 1);
  // Another identity of the same pid (after setuid, or a reused pid) is fetched afresh.
  EXPECT_EQ(cache.Get(5, 1001, 1000, fetch, t0), (std::vector<uint32_t>{10, 2}));
  // Stale after the ttl: setgroups(2) is seen within it.
  EXPECT_EQ(cache.Get(5, 1000, 1000, fetch, t0 + absl::Seconds(1)),
            (std::vector<uint32_t>{10, 3}));
  EXPECT_EQ(fetches, 3);
  // Bounded (2 entries here): a full table is emptied before the next one goes in, and the
  // dropped ones are fetched again.
  const absl::Time t1 = t0 + absl::Seconds(1);
  cache.Get(6, 1000, 1000, fetch, t1);  // table: pid 5, pid 6
  cache.Get(7, 1000, 1000, fetch, t1);  // emptied, then pid 7
  EXPECT_EQ(fetches, 5);
  cache.Get(5, 1000, 1000, fetch, t1);
  EXPECT_EQ(fetches, 6);
}

}  // namespace
}  // namespace nighfs::fs
